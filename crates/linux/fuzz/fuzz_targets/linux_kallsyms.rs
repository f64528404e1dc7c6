//! The kallsyms decoder over arbitrary tables. The input is laid out as
//! the kernel lays the tables out (offsets, base, count, names, token
//! table, token index), each part taken from the input in turn, and the
//! decoder must end with symbols or an error: no panic, no hang, no
//! allocation beyond its caps.
#![no_main]

use hangscope_linux::kallsyms::{decode_names, Kallsyms, KallsymsTables};
use hangscope_x64::{SparseMemory, VirtAddr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    // The pure decoder: a count, then tokens from the input's tail.
    let n = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) % 4096;
    let tokens: Vec<Vec<u8>> = (0..256)
        .map(|i| {
            data.get(i % data.len()..(i % data.len()) + 1 + i % 3)
                .unwrap_or(&[])
                .to_vec()
        })
        .collect();
    let _ = decode_names(&data[4..], n, &tokens);
    // The whole reader over memory built from the input.
    let base = 0xffff_ffff_8100_0000u64;
    let cut = |i: usize| (data.len() * i / 6).min(data.len());
    let parts: Vec<&[u8]> = (0..6).map(|i| &data[cut(i)..cut(i + 1)]).collect();
    let t = KallsymsTables {
        offsets: VirtAddr(base),
        relative_base: VirtAddr(base + 0x10_0000),
        num_syms: VirtAddr(base + 0x10_1000),
        names: VirtAddr(base + 0x10_1008),
        token_table: VirtAddr(base + 0x20_0000),
        token_index: VirtAddr(base + 0x20_1000),
    };
    let mut m = SparseMemory::new();
    m.write(t.offsets.0, parts[0]);
    m.write(t.relative_base.0, parts[1]);
    m.write(t.num_syms.0, &(n.max(1)).to_le_bytes());
    m.write(t.names.0, parts[2]);
    m.write(t.token_table.0, parts[3]);
    let mut index = parts[4].to_vec();
    index.resize(512, 0);
    m.write(t.token_index.0, &index);
    if let Ok(k) = Kallsyms::read(&m, &t) {
        let _ = k.get("init_task");
        let _ = k.symbol_at(base + 0x1000);
    }
});
