//! Loaded modules: the `modules` list of `struct module`, each with its
//! core memory (`mem[MOD_TEXT]` and the other core regions on 6.4+, else
//! `core_layout`) and its symbols (`kallsyms`: an ELF symbol table, its
//! string table and their nm type letters in `typetab`, where the kernel
//! keeps one).

use crate::error::{Error, Result};
use crate::kallsyms::KernelSymbol;
use crate::model::{ModuleInfo, Partial};
use crate::view::{Env, Object, Reader};
use crate::warning;
use hangscope_x64::VirtAddr;

/// Most modules walked.
pub const MAX_MODULES: usize = 1 << 14;
/// Most symbols read from one module.
pub const MAX_MODULE_SYMS: u64 = 1 << 20;
/// Longest symbol name read.
const MAX_NAME: usize = 512;

/// The core (non-init) memory types of 6.4+'s `enum mod_mem_type`, and
/// their values in include/linux/module.h, used only when the type
/// information lacks the enum (BTF keeps an enum only if some type uses
/// it by name).
const CORE_MEM: [(&str, i64); 4] = [
    ("MOD_TEXT", 0),
    ("MOD_DATA", 1),
    ("MOD_RODATA", 2),
    ("MOD_RO_AFTER_INIT", 3),
];

/// Loaded modules, in list order.
pub fn modules(env: &Env<'_>) -> Result<Partial<ModuleInfo>> {
    let r = env.r;
    let head = env.symbol("modules")?;
    let mut out = Partial::default();
    for m in r.iter_list(head, "module", "list", MAX_MODULES)? {
        match m.and_then(|m| read_module(&r, m)) {
            Ok(info) => out.items.push(info),
            Err(e) => {
                out.warnings.push(warning(&e));
                if !e.is_missing_symbol() {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// The `mem[]` element of a memory type, by the enum's value.
fn mem_region(r: &Reader<'_>, m: &Object<'_>, (ty, value): (&str, i64)) -> Option<(u64, u64)> {
    let i = r.types.enum_value("mod_mem_type", ty).unwrap_or(value);
    let base = m.uint(&format!("mem[{i}].base")).ok()?;
    let size = m.uint(&format!("mem[{i}].size")).ok()?;
    Some((base, size))
}

fn read_module(r: &Reader<'_>, addr: VirtAddr) -> Result<ModuleInfo> {
    let m = r.object("module", addr);
    let name = m.char_array("name")?;
    let (base, size) = if r.has_field("module", "mem") {
        let text = mem_region(r, &m, CORE_MEM[0]);
        let size: u64 = CORE_MEM
            .iter()
            .filter_map(|&t| mem_region(r, &m, t))
            .map(|(_, s)| s)
            .sum();
        (text.map(|(b, _)| VirtAddr(b)), Some(size))
    } else if r.has_field("module", "core_layout.base") {
        (
            m.ptr("core_layout.base").ok(),
            m.uint("core_layout.size").ok(),
        )
    } else {
        (m.ptr("module_core").ok(), m.uint("core_size").ok())
    };
    let symbol_count = m
        .deref("kallsyms", "mod_kallsyms")
        .and_then(|ks| ks.uint("num_symtab"))
        .ok();
    Ok(ModuleInfo {
        module: addr,
        name,
        base,
        size,
        symbol_count,
    })
}

/// Largest module BTF read.
const MAX_MODULE_BTF: u64 = 16 << 20;

/// A module's own BTF (split BTF on top of the kernel's), read from
/// memory: `module.btf_data` while the module initialises; after that the
/// kernel clears it and keeps the data in the `struct btf` of the module's
/// entry in `btf_modules` (kernel/bpf/btf.c).
pub fn module_btf(env: &Env<'_>, module: VirtAddr) -> Result<Vec<u8>> {
    let r = env.r;
    let m = r.object("module", module);
    let (mut data, mut len) = (m.ptr("btf_data")?, m.uint("btf_data_size")?);
    if data.0 == 0 {
        let head = env.symbol("btf_modules")?;
        for bm in r.iter_list(head, "btf_module", "list", MAX_MODULES)? {
            let bm = r.object("btf_module", bm?);
            if bm.ptr("module")? == module {
                let btf = bm.deref("btf", "btf")?;
                data = btf.ptr("data")?;
                len = btf.uint("data_size")?;
                break;
            }
        }
    }
    if data.0 == 0 || len == 0 {
        return Err(Error::bad_data(module, "the module carries no BTF"));
    }
    Ok(r.mem.read_vec(data, len, MAX_MODULE_BTF)?)
}

/// A module's symbols from its `kallsyms` (ELF symbols with names in its
/// string table; the type letter from `typetab` when the kernel has one).
pub fn module_symbols(env: &Env<'_>, module: VirtAddr) -> Result<Vec<KernelSymbol>> {
    let r = env.r;
    let ks = r
        .object("module", module)
        .deref("kallsyms", "mod_kallsyms")?;
    let n = ks.uint("num_symtab")?;
    if n > MAX_MODULE_SYMS {
        return Err(Error::bad_data(ks.addr, format!("{n} module symbols")));
    }
    let symtab = ks.ptr("symtab")?;
    let strtab = ks.ptr("strtab")?;
    let typetab = ks.ptr("typetab").ok().filter(|p| p.0 != 0);
    let sym_ty = if r.types.has_type("elf64_sym") {
        "elf64_sym"
    } else {
        "Elf64_Sym"
    };
    let sym_size = r.size_of_struct(sym_ty)?;
    let name_off = r.offset(sym_ty, "st_name")?;
    let value_off = r.offset(sym_ty, "st_value")?;
    let bytes = r
        .mem
        .read_vec(symtab, n * sym_size, MAX_MODULE_SYMS * sym_size)?;
    let types = match typetab {
        Some(t) => r.mem.read_vec(t, n, MAX_MODULE_SYMS).ok(),
        None => None,
    };
    let mut out = Vec::new();
    for i in 0..n {
        let at = (i * sym_size) as usize;
        let name_at = at + name_off as usize;
        let value_at = at + value_off as usize;
        let (Some(nb), Some(vb)) = (
            bytes.get(name_at..name_at + 4),
            bytes.get(value_at..value_at + 8),
        ) else {
            break;
        };
        let st_name = u32::from_le_bytes(nb.try_into().unwrap_or([0; 4]));
        let value = u64::from_le_bytes(vb.try_into().unwrap_or([0; 8]));
        if st_name == 0 || value == 0 {
            continue;
        }
        let Ok(name) = r.mem.read_cstr(
            VirtAddr(strtab.0.wrapping_add(u64::from(st_name))),
            MAX_NAME,
        ) else {
            continue;
        };
        let kind = types
            .as_ref()
            .and_then(|t| t.get(i as usize))
            .map_or('?', |&c| c as char);
        out.push(KernelSymbol {
            name: String::from_utf8_lossy(&name).into_owned(),
            addr: value,
            kind,
        });
    }
    Ok(out)
}
