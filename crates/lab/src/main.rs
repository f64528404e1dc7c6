//! `hangscope-lab`: build a synthetic Windows x64 memory image from a
//! scenario and write it in a dump format, with its ground truth beside
//! it.
//!
//! Exit codes: 0 on success, 2 on any error (bad scenario, unknown build,
//! unwritable output). Diagnostics go to stderr prefixed `hangscope-lab: `.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hangscope_lab::builds::{self, BUILDS};
use hangscope_lab::format::{self, Format};
use hangscope_lab::{BuildOptions, Scenario, Symbols};

/// Synthetic but faithful Windows x64 kernel memory images, in every dump
/// format, with the ground truth a correct analyzer must find.
#[derive(Debug, Parser)]
#[command(name = "hangscope-lab", version, about, long_about = None)]
#[command(after_help = "Exit codes: 0 success, 2 error.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an image and write it with `<OUT>.truth.json` beside it.
    Build(BuildArgs),
    /// Compile the lab's real driver (`hsflt.sys`, needs clang, lld-link
    /// and llvm-dlltool) into DIR with its PDB filed in a symbol store
    /// (DIR/symbols) and the `av-filter.toml` scenario that loads it.
    Driver {
        /// Output directory.
        #[arg(value_name = "DIR")]
        out: PathBuf,
    },
    /// List the built-in scenarios.
    Scenarios,
    /// List the known Windows builds.
    Builds {
        /// Symbols directory to check for each build's ISF.
        #[arg(long, value_name = "DIR")]
        symbols: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct BuildArgs {
    /// Built-in scenario name, or a scenario TOML file.
    #[arg(long, value_name = "NAME|PATH", required_unless_present = "series")]
    scenario: Option<String>,
    /// Windows build: an alias (`win7sp1`), a `GUID-AGE`, or an ISF file.
    /// Default: the scenario's `machine.build`.
    #[arg(long, value_name = "ALIAS|GUID-AGE|ISF")]
    build: Option<String>,
    /// Dump format.
    #[arg(long, value_name = "FORMAT", value_parser = parse_format)]
    format: Format,
    /// RAM size (`4G`, `256MiB`, bytes). Default: the scenario's.
    #[arg(long, value_name = "SIZE", value_parser = parse_ram)]
    ram: Option<u64>,
    /// Seed for every random choice (addresses, pages, filler).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Directory holding `windows/ntkrnlmp.pdb/GUID-AGE.json.xz`.
    /// Default: $HANGSCOPE_SYMBOLS, else `../shared/symbols` beside the
    /// workspace.
    #[arg(long, value_name = "DIR")]
    symbols: Option<PathBuf>,
    /// Do not draw a progress bar (it is drawn only on a terminal anyway).
    #[arg(long)]
    no_progress: bool,
    /// Build a moment of this built-in series (stuck, busy, slow) instead
    /// of `--scenario`: moment 0 is the base scenario, 1.. the later ones.
    #[arg(long, value_name = "NAME")]
    series: Option<String>,
    /// The moment of `--series` to build.
    #[arg(long, default_value_t = 0, requires = "series")]
    moment: usize,
    /// Output dump file.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: PathBuf,
}

fn cmd_driver(out: &Path) -> Result<(), String> {
    let (files, store) = hangscope_lab::driver::build_lab_driver(out).map_err(|e| e.to_string())?;
    let scenario = out.join("av-filter.toml");
    println!("driver   {}", files.sys.display());
    println!("pdb      {}", files.pdb.display());
    println!("store    {}", store.display());
    println!("scenario {}", scenario.display());
    println!(
        "next: hangscope-lab build --scenario {} --format elf -o av.elf\n      hangscope -y \"<kernel symbols>;{}\" stacks av.elf",
        scenario.display(),
        store.display()
    );
    Ok(())
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

/// Accepts `4G`, `512M`, `64K` as well as the scenario forms (`4GiB`,
/// bytes).
fn parse_ram(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = match t.chars().last() {
        Some('G' | 'M' | 'K') => format!("{t}iB"),
        _ => t.to_string(),
    };
    hangscope_lab::scenario::parse_size(&t)
}

/// The default symbols directory: `$HANGSCOPE_SYMBOLS`, else the shared
/// directory beside the workspace ([`builds::symbols_dir`]).
fn default_symbols_dir() -> PathBuf {
    builds::symbols_dir()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => cmd_build(&args),
        Command::Driver { out } => cmd_driver(&out),
        Command::Scenarios => cmd_scenarios(),
        Command::Builds { symbols } => cmd_builds(symbols),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("hangscope-lab: error: {msg}");
            ExitCode::from(2)
        }
    }
}

fn load_scenario(arg: &str) -> Result<Scenario, String> {
    let path = Path::new(arg);
    let looks_like_file = path.exists() || arg.ends_with(".toml") || arg.contains('/');
    let sc = if looks_like_file {
        Scenario::load(path)
    } else {
        Scenario::builtin(arg)
    };
    sc.map_err(|e| e.to_string())
}

fn cmd_build(args: &BuildArgs) -> Result<(), String> {
    let scenario = match &args.series {
        Some(name) => hangscope_lab::series::builtin_series(name)
            .and_then(|sc| sc.at_moment(args.moment))
            .map_err(|e| e.to_string())?,
        None => load_scenario(args.scenario.as_deref().unwrap_or_default())?,
    };
    let symbols_dir = args.symbols.clone().unwrap_or_else(default_symbols_dir);
    let opts = BuildOptions {
        ram_size: args.ram,
        seed: args.seed,
        build: args.build.clone(),
    };
    let (image, truth) = hangscope_lab::build(&scenario, Symbols::Dir(&symbols_dir), &opts)
        .map_err(|e| e.to_string())?;
    let progress = !args.no_progress && std::io::stderr().is_terminal();
    let stats =
        format::write(&image, args.format, &args.output, progress).map_err(|e| e.to_string())?;
    let mut truth_path = args.output.as_os_str().to_owned();
    truth_path.push(".truth.json");
    let truth_path = PathBuf::from(truth_path);
    let json = serde_json::to_vec_pretty(&truth).map_err(|e| format!("ground truth: {e}"))?;
    std::fs::write(&truth_path, json)
        .map_err(|e| format!("cannot write {}: {e}", truth_path.display()))?;
    eprintln!(
        "hangscope-lab: wrote {} ({}, {} MiB of RAM in {} pages, {:.1} s, {:.0} MB/s) and {}",
        args.output.display(),
        stats.format,
        image.ram_size() >> 20,
        stats.pages_written,
        stats.elapsed.as_secs_f64(),
        stats.mb_per_second(),
        truth_path.display()
    );
    Ok(())
}

fn cmd_scenarios() -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    for name in Scenario::builtin_names() {
        let sc = Scenario::builtin(name).map_err(|e| e.to_string())?;
        let line = sc
            .description
            .split(". ")
            .next()
            .unwrap_or("")
            .lines()
            .collect::<Vec<_>>()
            .join(" ");
        let line = line.trim_end_matches('.');
        if writeln!(out, "{name:<16} {line}.").is_err() {
            break; // Broken pipe: stop quietly.
        }
    }
    Ok(())
}

fn cmd_builds(symbols: Option<PathBuf>) -> Result<(), String> {
    let dir = symbols.unwrap_or_else(default_symbols_dir);
    let mut out = std::io::stdout().lock();
    for b in BUILDS {
        let id = format!("{}-{}", b.guid, b.age);
        let have = if builds::isf_path(&dir, b).exists() {
            ""
        } else {
            "  (ISF missing)"
        };
        if writeln!(
            out,
            "{:<12} {id}  {}.{} build {:<5}  {}{have}",
            b.aliases.first().copied().unwrap_or(""),
            b.major,
            b.minor,
            b.build,
            b.product
        )
        .is_err()
        {
            break;
        }
    }
    Ok(())
}
