//! `hangscope demo`: the seed case with no dump at hand. The lab builds the
//! temp-flood scenario from a real Windows symbol table into a QEMU-style
//! ELF core, exactly as `virsh dump` would write it, and the usual
//! `analyze` runs on that file.

use crate::cli::{DemoArgs, GlobalArgs};
use crate::execute::execute;
use crate::output::emit;
use crate::render::{self, write_html};
use crate::session::{default_symbol_dirs, default_symbols_wanted, open_dump, open_kernel, Guest};
use crate::shell::ShellCommand;
use anyhow::{bail, Context, Result};
use hangscope_lab::{format::Format, BuildOptions, Scenario, Symbols};
use hangscope_symbols::builtin::BuiltinTable;
use hangscope_symbols::PdbIdentity;

/// Build, write, analyse.
pub fn run(g: &GlobalArgs, a: &DemoArgs) -> Result<u8> {
    let scenario = Scenario::builtin(&a.scenario)
        .or_else(|_| Scenario::load(std::path::Path::new(&a.scenario)))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let opts = BuildOptions {
        ram_size: Some(256 << 20),
        seed: 0x5eed,
        build: Some(a.build.clone()),
    };
    let dirs = default_symbol_dirs();
    let symdir = dirs
        .iter()
        .find(|d| hangscope_lab::build::resolve_isf(&a.build, d).is_ok_and(|p| p.is_file()));
    let builtin_table;
    let isf_file = std::path::Path::new(&a.build);
    let symbols = match (symdir, builtin_kernel_table(&a.build)) {
        (Some(d), _) => Symbols::Dir(d),
        (None, _) if isf_file.is_file() => Symbols::File(isf_file),
        (None, Some(t)) => {
            builtin_table = t
                .load()
                .map_err(|e| anyhow::anyhow!("the built-in symbol table: {e}"))?;
            Symbols::Table(&builtin_table)
        }
        (None, None) => bail!(
            "no symbol table found for the demo's build {}: it needs its ISF table \
             (a directory holding windows/ntkrnlmp.pdb/GUID-AGE.json.xz). \
             Put it at ../shared/symbols or name the directory in HANGSCOPE_SYMBOLS \
             (hangscope has win10-19041 built in unless HANGSCOPE_NO_DEFAULT_SYMBOLS=1)",
            a.build
        ),
    };
    let (image, truth) = hangscope_lab::build(&scenario, symbols, &opts)
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
    let kernel = Guest::Windows(open_kernel(g, &path, &dump)?);
    let report = execute(&kernel, &ShellCommand::Analyze)?;
    write_html(&report, a.html.as_deref())?;
    let format = render::Format::from_json_flag(g.json);
    emit(&report.render(format)?, format)?;
    Ok(report.exit_code())
}

/// The table built into hangscope for a lab build (alias or `GUID-AGE`),
/// unless `HANGSCOPE_NO_DEFAULT_SYMBOLS=1` asks for only what the user
/// named.
fn builtin_kernel_table(build: &str) -> Option<&'static BuiltinTable> {
    let b = hangscope_lab::builds::find_build(build)?;
    let id = PdbIdentity {
        name: "ntkrnlmp.pdb".into(),
        guid: b.guid.into(),
        age: b.age,
    };
    default_symbols_wanted()
        .then(|| hangscope_symbols::builtin::find(&id))
        .flatten()
}
