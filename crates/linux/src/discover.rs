//! Finding the kernel: its page tables and its kallsyms tables, from
//! VMCOREINFO when the dump has it, else by scanning memory.

use crate::error::{Error, Result};
use crate::kallsyms::KallsymsTables;
use crate::space::{self, SpaceChoice};
use crate::vmcoreinfo::VmcoreInfo;
use hangscope_dump::Dump;
use hangscope_x64::VirtAddr;

/// What discovery found.
#[derive(Debug, Clone)]
pub struct Found {
    /// The page tables.
    pub space: SpaceChoice,
    /// The kallsyms tables.
    pub tables: KallsymsTables,
    /// How, step by step (for `info`).
    pub steps: Vec<String>,
    /// Where the scan saw banners in the image, one of which kallsyms'
    /// `linux_banner` must name (empty when VMCOREINFO vouches for the
    /// tables).
    pub banners: Vec<VirtAddr>,
}

/// Find the kernel in `dump`.
pub fn find(dump: &Dump, vi: Option<&VmcoreInfo>) -> Result<Found> {
    let Some(vi) = vi else {
        return crate::discover::scan::find(dump);
    };
    let mut steps = vec![format!(
        "VMCOREINFO: release {}, KERNELOFFSET {}, phys_base {}",
        vi.osrelease.as_deref().unwrap_or("?"),
        vi.kernel_offset.map_or("?".into(), |o| format!("{o:#x}")),
        vi.phys_base().map_or("?".into(), |p| p.to_string()),
    )];
    for n in &vi.notes {
        steps.push(n.clone());
    }
    let choice = space::choose_with_vmcoreinfo(dump.memory.as_ref(), &dump.cpus, vi)?;
    steps.push(format!(
        "page tables: {} at physical {:#x}, {} levels",
        choice.source,
        choice.dtb.0 .0,
        choice.paging.top_level()
    ));
    let sym = |n: &str| {
        vi.symbol(n)
            .map(VirtAddr)
            .ok_or_else(|| Error::not_found(format!("VMCOREINFO has no SYMBOL({n})")))
    };
    let tables = (|| {
        Ok::<_, Error>(KallsymsTables {
            num_syms: sym("kallsyms_num_syms")?,
            names: sym("kallsyms_names")?,
            token_table: sym("kallsyms_token_table")?,
            token_index: sym("kallsyms_token_index")?,
            offsets: sym("kallsyms_offsets")?,
            relative_base: sym("kallsyms_relative_base")?,
        })
    })();
    let tables = match tables {
        Ok(t) => {
            steps.push("kallsyms tables from VMCOREINFO".into());
            t
        }
        Err(e) => {
            steps.push(format!(
                "{e}; scanning the kernel image for the kallsyms tables"
            ));
            let space = hangscope_x64::AddressSpace::new(dump.memory.as_ref(), choice.dtb)
                .with_paging(choice.paging);
            scan::find_kallsyms(&space)?
        }
    };
    Ok(Found {
        space: choice,
        tables,
        steps,
        banners: Vec::new(),
    })
}

pub mod scan;
