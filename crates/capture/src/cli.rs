//! `hangscope capture`: the command-line face of this crate, ready for the
//! `hangscope` binary to embed as a subcommand (`#[command(flatten)]` or a
//! variant holding [`CaptureArgs`]) and call [`run`].

use crate::{
    capture, install_sigint_handler, CaptureOptions, DumpFormat, Error, ErrorKind, Manifest,
    Target, MANIFEST_FILE,
};
use std::path::PathBuf;
use std::time::Duration;

/// Take memory dumps of a running (or hung) VM through libvirt or QEMU QMP.
///
/// Each dump is written as NAME.partial and renamed when complete; a
/// manifest.json beside the dumps lists domain, host, versions, times,
/// sizes and SHA-256 sums. QEMU stops the guest's vCPUs while it writes a
/// memory-only dump, so every dump is one consistent moment. Ctrl-C aborts
/// the running dump (libvirt) or abandons it (QMP cannot cancel: QEMU
/// finishes into the deleted file) and removes the partial file.
#[derive(Debug, Clone, clap::Args)]
pub struct CaptureArgs {
    /// libvirt domain: name, id or UUID (leave out with --qmp).
    #[arg(required_unless_present = "qmp", conflicts_with = "qmp")]
    pub domain: Option<String>,
    /// Directory for the dumps and manifest.json (created if missing).
    #[arg(
        short = 'o',
        long = "output",
        visible_alias = "out",
        value_name = "DIR"
    )]
    pub out: PathBuf,
    /// Dump format; QEMU 7.2 on Debian writes elf and kdump-zlib.
    #[arg(long, value_enum, default_value_t = DumpFormat::Elf)]
    pub format: DumpFormat,
    /// Talk to QEMU's QMP Unix socket instead of libvirt
    /// (QEMU started with `-qmp unix:SOCKET,server=on,wait=off`).
    #[arg(long, value_name = "SOCKET")]
    pub qmp: Option<PathBuf>,
    /// libvirt URI, as `virsh -c` (default: virsh's own default).
    #[arg(
        short = 'c',
        long = "connect",
        value_name = "URI",
        conflicts_with = "qmp"
    )]
    pub connect: Option<String>,
    /// Number of dumps in the series.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,
    /// Seconds between the starts of two dumps of a series.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub interval: f64,
    /// Suspend the guest before each dump and resume it after (a guest
    /// that was already paused stays paused).
    #[arg(long)]
    pub pause: bool,
    /// File name prefix (default: the domain name).
    #[arg(long)]
    pub prefix: Option<String>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Do not refuse an uncompressed dump larger than the free space.
    #[arg(long)]
    pub no_space_check: bool,
}

impl CaptureArgs {
    /// The library options these arguments stand for.
    pub fn options(&self) -> Result<CaptureOptions, Error> {
        let target = match (&self.qmp, &self.domain) {
            (Some(socket), _) => Target::Qmp {
                socket: socket.clone(),
            },
            (None, Some(domain)) => Target::Libvirt {
                domain: domain.clone(),
                uri: self.connect.clone(),
            },
            (None, None) => {
                return Err(Error::new(ErrorKind::BadOptions(
                    "name a libvirt DOMAIN or give --qmp SOCKET".into(),
                )))
            }
        };
        if !(self.interval.is_finite() && self.interval >= 0.0 && self.interval < 1e9) {
            return Err(Error::new(ErrorKind::BadOptions(format!(
                "--interval {} is not a number of seconds",
                self.interval
            ))));
        }
        let mut o = CaptureOptions::new(target, self.out.clone());
        o.format = self.format;
        o.count = self.count;
        o.interval = Duration::from_secs_f64(self.interval);
        o.pause = self.pause;
        o.progress = !self.no_progress;
        o.check_space = !self.no_space_check;
        o.prefix = self.prefix.clone();
        Ok(o)
    }
}

/// Run `hangscope capture`: Ctrl-C handling, the capture, and one
/// `hangscope: wrote ...` line per dump on stderr. Returns the manifest
/// (also written to `OUT/manifest.json`).
pub fn run(args: &CaptureArgs) -> Result<Manifest, Error> {
    let opts = args.options()?;
    install_sigint_handler();
    let out = opts.out_dir.clone();
    let manifest = capture(&opts, &mut |d| {
        eprintln!(
            "hangscope: wrote {} ({:.1} MiB in {:.1} s, sha256 {})",
            out.join(&d.file).display(),
            d.size as f64 / (1u64 << 20) as f64,
            d.duration_ms as f64 / 1000.0,
            d.sha256
        );
    })?;
    eprintln!(
        "hangscope: {} dump(s) of {}; manifest {}",
        manifest.dumps.len(),
        manifest.domain,
        out.join(MANIFEST_FILE).display()
    );
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: CaptureArgs,
    }

    fn parse(args: &[&str]) -> Result<CaptureArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("capture").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn arguments_map_to_options() {
        Cli::command().debug_assert();
        let a = parse(&[
            "win7",
            "-o",
            "/d",
            "--count",
            "3",
            "--interval",
            "2.5",
            "--pause",
        ])
        .unwrap();
        let o = a.options().unwrap();
        assert_eq!(
            o.target,
            Target::Libvirt {
                domain: "win7".into(),
                uri: None
            }
        );
        assert_eq!(
            (o.count, o.interval, o.pause),
            (3, Duration::from_millis(2500), true)
        );
        assert_eq!(o.format, DumpFormat::Elf);
        let a = parse(&["--qmp", "/run/q.sock", "-o", "/d", "--format", "kdump-zlib"]).unwrap();
        let o = a.options().unwrap();
        assert_eq!(
            o.target,
            Target::Qmp {
                socket: "/run/q.sock".into()
            }
        );
        assert_eq!(o.format, DumpFormat::KdumpZlib);
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse(&["-o", "/d"]).is_err(), "no domain and no --qmp");
        assert!(parse(&["dom", "--qmp", "/s", "-o", "/d"]).is_err());
        assert!(parse(&["dom", "-o", "/d", "--count", "0"]).is_err());
        assert!(parse(&["dom", "-o", "/d", "--format", "raw"]).is_err());
        let a = parse(&["dom", "-o", "/d", "--interval=-1"]).unwrap();
        assert_eq!(a.options().unwrap_err().name(), "BadOptions");
    }
}
