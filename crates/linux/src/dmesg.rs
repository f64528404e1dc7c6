//! The printk ring buffer (`prb`, kernel 5.10 and later): a ring of
//! descriptors (`desc_ring`: `descs` and their `infos`) and a ring of text
//! blocks (`text_data_ring`). Each descriptor's `state_var` holds its id
//! and a two-bit state; a record is read when its descriptor is
//! committed or finalized and still carries the id being read. Text
//! blocks start with the id (an `unsigned long`) and may wrap to the
//! ring's start.

use crate::error::{Error, ErrorKind, Result};
use crate::model::{DmesgRecord, Partial};
use crate::view::{Env, Object};
use crate::vmcoreinfo::VmcoreInfo;
use crate::warning;
use hangscope_symbols::SymbolTable;

/// Largest descriptor count believed (`CONFIG_LOG_BUF_SHIFT` is at most
/// 25, with one descriptor per 32 bytes of text).
const MAX_COUNT_BITS: u64 = 22;
/// Largest text ring believed (2^25 bytes, plus the boot-time
/// `log_buf_len=` up to 2^31 is not read whole).
const MAX_SIZE_BITS: u64 = 28;
/// The state bits of `state_var` are its top two (`DESC_SV_BITS`).
const DESC_FLAGS_SHIFT: u32 = 62;
/// `desc_committed`.
const DESC_COMMITTED: u64 = 1;
/// `desc_finalized`.
const DESC_FINALIZED: u64 = 2;

/// An unsigned field that may be an `atomic_long_t` (read its counter).
fn counter(o: &Object<'_>, path: &str) -> Result<u64> {
    o.uint(path).or_else(|_| o.uint(&format!("{path}.counter")))
}

/// The records of the printk ring buffer, oldest first.
pub fn dmesg(env: &Env<'_>) -> Result<Partial<DmesgRecord>> {
    let r = env.r;
    let prb_var = env.symbol("prb").map_err(|_| Error {
        kind: ErrorKind::Unsupported(
            "no printk ring buffer (prb): kernels before 5.10 keep log_buf, which is not read"
                .into(),
        ),
        at: None,
    })?;
    let rb_addr = r.read_ptr(prb_var)?;
    let rb = r.object("printk_ringbuffer", rb_addr);
    let count_bits = rb.uint("desc_ring.count_bits")?;
    let size_bits = rb.uint("text_data_ring.size_bits")?;
    if count_bits > MAX_COUNT_BITS || !(4..=MAX_SIZE_BITS).contains(&size_bits) {
        return Err(Error::bad_data(
            rb_addr,
            format!("printk ring buffer of 2^{count_bits} records and 2^{size_bits} bytes"),
        ));
    }
    let count = 1u64 << count_bits;
    let size = 1u64 << size_bits;
    let descs = rb.ptr("desc_ring.descs")?;
    let infos = rb.ptr("desc_ring.infos")?;
    let data = rb.ptr("text_data_ring.data")?;
    let head = counter(&rb, "desc_ring.head_id")?;
    let tail = counter(&rb, "desc_ring.tail_id")?;
    let desc_size = r.size_of_struct("prb_desc")?;
    let info_size = r.size_of_struct("printk_info")?;
    let mem = r.mem;
    let text = mem.read_vec(data, size, 1 << MAX_SIZE_BITS)?;
    let descs_bytes = mem.read_vec(descs, count * desc_size, count * desc_size)?;
    let infos_bytes = mem.read_vec(infos, count * info_size, count * info_size)?;
    let sv = r.offset("prb_desc", "state_var")?;
    let begin_off = r.offset("prb_desc", "text_blk_lpos.begin")?;
    let next_off = r.offset("prb_desc", "text_blk_lpos.next")?;
    let seq_off = r.offset("printk_info", "seq")?;
    let ts_off = r.offset("printk_info", "ts_nsec")?;
    let (len_off, len_t) = r.field("printk_info", "text_len")?;
    let len_size = r.size_of(&len_t).unwrap_or(2);
    let fac_off = r.offset("printk_info", "facility").ok();
    let level = r.field("printk_info", "level").ok();
    let word = |b: &[u8], at: u64, n: u64| -> Option<u64> {
        if n > 8 {
            return None;
        }
        let s = b.get(at as usize..at.checked_add(n)? as usize)?;
        let mut w = [0u8; 8];
        w[..n as usize].copy_from_slice(s);
        Some(u64::from_le_bytes(w))
    };
    let mut out = Partial::default();
    let n = head.wrapping_sub(tail).wrapping_add(1);
    if n > count {
        out.warnings.push(warning(&Error::bad_data(
            rb_addr,
            format!("head id {head:#x} and tail id {tail:#x} span more than {count} records"),
        )));
    }
    let mut skipped = 0u64;
    for i in 0..n.min(count) {
        let id = tail.wrapping_add(i);
        let idx = id & (count - 1);
        let d = idx * desc_size;
        let inf = idx * info_size;
        let (Some(state_var), Some(begin), Some(next)) = (
            word(&descs_bytes, d + sv, 8),
            word(&descs_bytes, d + begin_off, 8),
            word(&descs_bytes, d + next_off, 8),
        ) else {
            break;
        };
        let state = state_var >> DESC_FLAGS_SHIFT;
        let desc_id = state_var & ((1u64 << DESC_FLAGS_SHIFT) - 1);
        if desc_id != id & ((1u64 << DESC_FLAGS_SHIFT) - 1)
            || !(state == DESC_COMMITTED || state == DESC_FINALIZED)
        {
            skipped += 1;
            continue;
        }
        let seq = word(&infos_bytes, inf + seq_off, 8).unwrap_or(0);
        let ts_ns = word(&infos_bytes, inf + ts_off, 8).unwrap_or(0);
        let text_len = word(&infos_bytes, inf + len_off, len_size).unwrap_or(0);
        let facility = fac_off
            .and_then(|o| word(&infos_bytes, inf + o, 1))
            .map(|f| f as u8);
        let lvl = match &level {
            Some((
                o,
                hangscope_symbols::TypeRef::Bitfield {
                    position, length, ..
                },
            )) => word(&infos_bytes, inf + o, 1)
                .map(|b| (b >> position.min(&7)) & ((1u64 << length.min(&8)) - 1))
                .map(|l| l as u8),
            _ => None,
        };
        let body = block(&text, size, begin, next);
        // The block starts with the descriptor id; another id means the
        // text was overwritten since (the kernel's get_data() checks it).
        if body.len() >= 8 && word(body, 0, 8) != Some(id) {
            skipped += 1;
            continue;
        }
        let t = body.get(8..).unwrap_or(&[]);
        let t = &t[..(text_len as usize).min(t.len())];
        out.items.push(DmesgRecord {
            seq,
            ts_ns,
            level: lvl,
            facility,
            text: String::from_utf8_lossy(t).into_owned(),
        });
    }
    if skipped > 0 {
        log::debug!("printk: {skipped} descriptor(s) not committed or reused");
    }
    Ok(out)
}

/// The printk layout VMCOREINFO publishes (for makedumpfile's
/// `--dump-dmesg`), as a type table: dmesg without BTF or a vmlinux. The
/// offsets and sizes are the kernel's; the scalar types of the fields are
/// those of kernel/printk/printk_ringbuffer.h. `None` when VMCOREINFO
/// lacks an entry.
pub fn vmcoreinfo_types(vi: &VmcoreInfo) -> Option<SymbolTable> {
    let off = |t: &str, f: &str| vi.offset(t, f);
    let size = |t: &str| vi.sizes.get(t).copied();
    let field = |t: &str, f: &str, ty: &str| -> Option<String> {
        Some(format!(r#""{f}":{{"offset":{},"type":{ty}}}"#, off(t, f)?))
    };
    let base = |n: &str| format!(r#"{{"kind":"base","name":"{n}"}}"#);
    let st = |n: &str| format!(r#"{{"kind":"struct","name":"{n}"}}"#);
    let ptr = r#"{"kind":"pointer","subtype":{"kind":"base","name":"void"}}"#.to_string();
    let ty = |name: &str, fields: Vec<Option<String>>| -> Option<String> {
        let fields: Option<Vec<String>> = fields.into_iter().collect();
        Some(format!(
            r#""{name}":{{"kind":"struct","size":{},"fields":{{{}}}}}"#,
            size(name)?,
            fields?.join(",")
        ))
    };
    let types = [
        ty(
            "printk_ringbuffer",
            vec![
                field("printk_ringbuffer", "desc_ring", &st("prb_desc_ring")),
                field("printk_ringbuffer", "text_data_ring", &st("prb_data_ring")),
            ],
        ),
        ty(
            "prb_desc_ring",
            vec![
                field("prb_desc_ring", "count_bits", &base("unsigned int")),
                field("prb_desc_ring", "descs", &ptr),
                field("prb_desc_ring", "infos", &ptr),
                field("prb_desc_ring", "head_id", &st("atomic_long_t")),
                field("prb_desc_ring", "tail_id", &st("atomic_long_t")),
            ],
        ),
        ty(
            "prb_data_ring",
            vec![
                field("prb_data_ring", "size_bits", &base("unsigned int")),
                field("prb_data_ring", "data", &ptr),
            ],
        ),
        ty(
            "prb_desc",
            vec![
                field("prb_desc", "state_var", &st("atomic_long_t")),
                field("prb_desc", "text_blk_lpos", &st("prb_data_blk_lpos")),
            ],
        ),
        ty(
            "prb_data_blk_lpos",
            vec![
                field("prb_data_blk_lpos", "begin", &base("unsigned long")),
                field("prb_data_blk_lpos", "next", &base("unsigned long")),
            ],
        ),
        ty(
            "printk_info",
            vec![
                field("printk_info", "seq", &base("unsigned long")),
                field("printk_info", "ts_nsec", &base("unsigned long")),
                field("printk_info", "text_len", &base("unsigned short")),
            ],
        ),
        ty(
            "atomic_long_t",
            vec![field("atomic_long_t", "counter", &base("unsigned long"))],
        ),
    ];
    let types: Option<Vec<String>> = types.into_iter().collect();
    let prb = vi.symbol("prb")?;
    let json = format!(
        r#"{{"metadata":{{"format":"6.2.0"}},
"base_types":{{
 "unsigned int":{{"size":4,"signed":false,"kind":"int","endian":"little"}},
 "unsigned short":{{"size":2,"signed":false,"kind":"int","endian":"little"}},
 "unsigned long":{{"size":8,"signed":false,"kind":"int","endian":"little"}},
 "void":{{"size":0,"signed":false,"kind":"void","endian":"little"}},
 "pointer":{{"size":8,"signed":false,"kind":"int","endian":"little"}}}},
"user_types":{{{}}},
"enums":{{}},
"symbols":{{"prb":{{"address":{prb}}}}}}}"#,
        types?.join(",")
    );
    SymbolTable::from_isf_bytes(json.as_bytes(), std::path::Path::new("VMCOREINFO")).ok()
}

/// The bytes of the text block `[begin, next)` in a ring of `size` bytes:
/// a block that would wrap is stored whole at the ring's start. Empty for
/// data-less records (odd positions).
pub fn block(text: &[u8], size: u64, begin: u64, next: u64) -> &[u8] {
    if begin & 1 != 0 || next & 1 != 0 || size == 0 {
        return &[];
    }
    let (start, end) = if begin / size == next / size {
        (begin % size, next % size)
    } else if (begin / size).wrapping_add(1) == next / size {
        (0, next % size)
    } else {
        return &[];
    };
    text.get(start as usize..end as usize).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_wrap_to_the_start() {
        let text: Vec<u8> = (0..64u8).collect();
        assert_eq!(block(&text, 64, 8, 24), &text[8..24]);
        // The same block one lap later.
        assert_eq!(block(&text, 64, 72, 88), &text[8..24]);
        // A block that would cross the end is at the start.
        assert_eq!(block(&text, 64, 56, 80), &text[0..16]);
        // Data-less and nonsense positions.
        assert!(block(&text, 64, 1, 1).is_empty());
        assert!(block(&text, 64, 40, 8).is_empty());
        assert!(block(&text, 0, 0, 8).is_empty());
        assert!(block(&text, 64, 8, 200).is_empty());
    }

    #[test]
    fn a_synthetic_ring_reads_back_in_order() {
        use crate::kallsyms::Kallsyms;
        use crate::synth;
        use crate::view::Reader;
        let mut mem = hangscope_x64::SparseMemory::new();
        let texts: Vec<String> = (0..20)
            .map(|i| format!("line {i}: {}", "x".repeat(i * 5)))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let (vi, prb) = synth::write_printk(&mut mem, &refs);
        let types = vmcoreinfo_types(&VmcoreInfo::parse(&vi)).expect("printk types");
        let kallsyms = Kallsyms::from_symbols(vec![prb], None);
        let env = Env {
            r: Reader {
                mem: &mem,
                types: &types,
            },
            kallsyms: &kallsyms,
            kernel_offset: 0,
        };
        let log = dmesg(&env).unwrap();
        assert!(log.warnings.is_empty(), "{:?}", log.warnings);
        // The last 16 descriptors, those whose text is still in the ring.
        let got: Vec<&str> = log.items.iter().map(|r| r.text.as_str()).collect();
        assert!(got.len() >= 5, "{got:?}");
        assert_eq!(got.last(), Some(&"line 19: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
        for r in &log.items {
            assert_eq!(r.text, texts[r.seq as usize], "seq {}", r.seq);
            assert_eq!(r.ts_ns, r.seq * 1_000_000);
            assert_eq!(r.level, None);
        }
        assert_eq!(
            log.items[0].lines()[0],
            format!(
                "[    0.{:06}] {}",
                log.items[0].seq * 1000,
                texts[log.items[0].seq as usize]
            )
        );
        // Damage: garbage in the ring's geometry and links never panics.
        for (at, v) in [(8u64, u64::MAX), (16, 0), (24, 7), (32, u64::MAX - 3)] {
            let mut m = mem.clone();
            m.write_u64(synth::PRB + 0x100 + at, v);
            let env = Env {
                r: Reader {
                    mem: &m,
                    types: &types,
                },
                ..env
            };
            let _ = dmesg(&env);
        }
    }
}
