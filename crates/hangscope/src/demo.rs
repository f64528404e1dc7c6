//! `hangscope demo`: the seed case with no dump at hand. The lab builds the
//! temp-flood scenario from a real Windows symbol table into a QEMU-style
//! ELF core, exactly as `virsh dump` would write it, and the usual
//! `analyze` runs on that file.

use crate::cli::{DemoArgs, GlobalArgs};
use crate::execute::execute;
use crate::output::emit;
use crate::render::{self, write_html};
use crate::session::{default_symbol_dirs, open_dump, open_kernel};
use crate::shell::ShellCommand;
use anyhow::{bail, Context, Result};
use hangscope_lab::{format::Format, BuildOptions, Scenario, Symbols};

/// Build, write, analyse.
pub fn run(g: &GlobalArgs, a: &DemoArgs) -> Result<u8> {
    let scenario = Scenario::builtin(&a.scenario)
        .or_else(|_| Scenario::load(std::path::Path::new(&a.scenario)))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let dirs = default_symbol_dirs();
    let Some(symdir) = dirs.first() else {
        bail!(
            "no symbol tables found for the demo: it needs the shared ISF tables \
             (a directory holding windows/ntkrnlmp.pdb/GUID-AGE.json.xz). \
             Put them at ../shared/symbols or name the directory in HANGSCOPE_SYMBOLS"
        );
    };
    let opts = BuildOptions {
        ram_size: Some(256 << 20),
        seed: 0x5eed,
        build: Some(a.build.clone()),
    };
    let (image, truth) = hangscope_lab::build(&scenario, Symbols::Dir(symdir), &opts)
        .map_err(|e| anyhow::anyhow!("building the demo image: {e}"))?;
    let tmp;
    let dir = match &a.keep {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let path = dir.join(format!("{}.elf", a.scenario));
    let progress = crate::output::progress_enabled(g);
    hangscope_lab::format::write(&image, Format::Elf, &path, progress)
        .map_err(|e| anyhow::anyhow!("writing the demo dump: {e}"))?;
    let truth_path = dir.join(format!("{}.elf.truth.json", a.scenario));
    std::fs::write(&truth_path, serde_json::to_string_pretty(&truth)?)?;
    if !g.json {
        eprintln!(
            "hangscope: demo: built the `{}` scenario on Windows build {} ({} MiB ELF core{})",
            a.scenario,
            truth.kernel.build_number,
            image.ram_size() >> 20,
            if a.keep.is_some() {
                format!(" at {}", path.display())
            } else {
                String::new()
            }
        );
    }
    let dump = open_dump(&path)?;
    let kernel = open_kernel(g, &path, &dump)?;
    let report = execute(&kernel, &ShellCommand::Analyze)?;
    write_html(&report, a.html.as_deref())?;
    emit(&report.render(render::Format::from_json_flag(g.json))?)?;
    Ok(report.exit_code())
}
