//! Loaded modules (`lm`) and structure display (`dt`).
//!
//! Fields read: `_LDR_DATA_TABLE_ENTRY.{InLoadOrderLinks, DllBase,
//! SizeOfImage, BaseDllName, FullDllName}` on `PsLoadedModuleList`.

use crate::error::{Result, Warning};
use crate::kernel::Kernel;
use crate::model::*;
use hangscope_symbols::TypeRef;
use hangscope_x64::VirtAddr;
use std::sync::OnceLock;

/// Most modules walked.
pub const MAX_MODULES: usize = 1 << 14;

/// A type as WinDbg's `dt` names it (`Ptr64 _KTHREAD`, `Uint4B`).
pub fn windbg_type_name(t: &TypeRef) -> String {
    match t {
        TypeRef::Base(n) => match n.as_str() {
            "unsigned char" => "UChar".into(),
            "char" => "Char".into(),
            "unsigned short" => "Uint2B".into(),
            "short" => "Int2B".into(),
            "unsigned long" | "unsigned int" => "Uint4B".into(),
            "long" | "int" => "Int4B".into(),
            "unsigned long long" | "unsigned __int64" => "Uint8B".into(),
            "long long" | "__int64" => "Int8B".into(),
            "wchar_t" => "Wchar".into(),
            "void" => "Void".into(),
            "bool" => "Bool".into(),
            "double" => "Float8B".into(),
            "float" => "Float4B".into(),
            other => other.to_string(),
        },
        TypeRef::Pointer(inner) => format!("Ptr64 {}", windbg_type_name(inner)),
        TypeRef::Array { count, element } => format!("[{count}] {}", windbg_type_name(element)),
        TypeRef::Struct(n) | TypeRef::Enum(n) => n.clone(),
        TypeRef::Bitfield {
            position, length, ..
        } => format!(
            "Pos {position}, {length} Bit{}",
            if *length == 1 { "" } else { "s" }
        ),
        TypeRef::Function => "Function".into(),
        _ => "?".into(),
    }
}

/// The module list, walked once per kernel: every stack walker (`stacks`,
/// the scheduler, push-lock holders, the wait graph) starts from it.
#[derive(Debug, Default)]
struct Cache {
    modules: OnceLock<Partial<ModuleInfo>>,
}

impl<'d> Kernel<'d> {
    /// Loaded modules on `PsLoadedModuleList`, in load order.
    pub fn modules(&self) -> &Partial<ModuleInfo> {
        self.caches
            .get::<Cache>()
            .modules
            .get_or_init(|| self.walk_modules())
    }

    fn walk_modules(&self) -> Partial<ModuleInfo> {
        let mut out = Partial::default();
        let head = match self.symbol("PsLoadedModuleList") {
            Ok(h) => h,
            Err(e) => {
                out.warnings.push(Warning::from_error("module list", &e));
                return out;
            }
        };
        let it = match self.reader().iter_list(
            head,
            "_LDR_DATA_TABLE_ENTRY",
            "InLoadOrderLinks",
            MAX_MODULES,
        ) {
            Ok(it) => it,
            Err(e) => {
                out.warnings.push(Warning::from_error("module list", &e));
                return out;
            }
        };
        for m in it {
            let m = m.and_then(|a| {
                let e = self.object("_LDR_DATA_TABLE_ENTRY", a)?;
                Ok(ModuleInfo {
                    base: e.ptr("DllBase")?,
                    size: e.u64("SizeOfImage")?,
                    name: e.unicode_string("BaseDllName")?,
                    path: e.unicode_string("FullDllName").unwrap_or_default(),
                })
            });
            match m {
                Ok(m) => out.items.push(m),
                Err(e) => out.warnings.push(Warning::from_error("module list", &e)),
            }
        }
        out
    }

    /// `dt TYPE ADDR`: every field with offset, type and value.
    pub fn dt(&self, type_name: &str, addr: VirtAddr) -> Result<DtOutput> {
        let addr = addr.0;
        let name = type_name
            .trim()
            .trim_start_matches("nt!")
            .trim_start_matches("ntkrnlmp!");
        let r = self.reader();
        let ty = r.ty(name).or_else(|_| r.ty(&format!("_{name}")))?;
        let mut fields = Vec::new();
        for f in &ty.fields {
            let a = VirtAddr(addr.wrapping_add(f.offset));
            let mut d = DtField {
                offset: f.offset,
                name: f.name.clone(),
                type_name: windbg_type_name(&f.ty),
                ..Default::default()
            };
            if let TypeRef::Bitfield {
                position, length, ..
            } = &f.ty
            {
                d.bits = Some((*position, *length));
            }
            match &f.ty {
                TypeRef::Struct(n) if n == "_UNICODE_STRING" => match r.unicode_string_at(a) {
                    Ok(s) => d.text = Some(format!("\"{s}\"")),
                    Err(e) => d.error = Some(e.to_string()),
                },
                TypeRef::Struct(n) if n == "_LIST_ENTRY" => {
                    match (r.read_ptr(a), r.read_ptr(VirtAddr(a.0.wrapping_add(8)))) {
                        (Ok(fl), Ok(bl)) => d.text = Some(format!("[ {:#x} - {:#x} ]", fl.0, bl.0)),
                        (Err(e), _) | (_, Err(e)) => d.error = Some(e.to_string()),
                    }
                }
                TypeRef::Struct(_) | TypeRef::Array { .. } | TypeRef::Function => {}
                t => match r.read_scalar(a, t) {
                    Ok(v) => d.value = Some(v),
                    Err(e) => d.error = Some(e.to_string()),
                },
            }
            fields.push(d);
        }
        Ok(DtOutput {
            type_name: ty.name.clone(),
            address: VirtAddr(addr),
            size: ty.size,
            fields,
        })
    }
}
