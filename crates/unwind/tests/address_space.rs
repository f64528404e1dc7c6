//! The same unwinding through `hangscope_x64::AddressSpace` over physical
//! memory behind real 4-level page tables, as on a dump.

use crate::support::{driver, FrameBuilder, STACK_HIGH, STACK_LOW};
use hangscope_dump::{PhysAddr, VecMemory};
use hangscope_unwind::{FrameKind, StackRange, StopReason, UnwindOptions, Unwinder};
use hangscope_x64::{AddressSpace, Dtb, Fault, FaultKind, SparseMemory, VirtAddr, VirtualMemory};

const PRESENT_RW: u64 = 0x3;

/// Page tables mapping every page of `sparse`, in a fresh physical memory.
struct Paged {
    phys: VecMemory,
    next_pa: u64,
    pml4: u64,
}

impl Paged {
    fn new() -> Self {
        let mut p = Paged {
            phys: VecMemory::new(),
            next_pa: 0x10_0000,
            pml4: 0,
        };
        p.pml4 = p.alloc();
        p
    }

    fn alloc(&mut self) -> u64 {
        let pa = self.next_pa;
        self.next_pa += 0x1000;
        self.phys.write(PhysAddr(pa), &[0u8; 0x1000]);
        pa
    }

    fn entry(&mut self, table: u64, index: u64) -> u64 {
        let at = PhysAddr(table + index * 8);
        let mut b = [0u8; 8];
        hangscope_dump::PhysicalMemory::read(&self.phys, at, &mut b).unwrap();
        let e = u64::from_le_bytes(b);
        if e & 1 != 0 {
            return e & 0x000f_ffff_ffff_f000;
        }
        let next = self.alloc();
        self.phys.write_u64(at, next | PRESENT_RW);
        next
    }

    fn map(&mut self, va: u64, bytes: &[u8]) {
        let pdpt = self.entry(self.pml4, (va >> 39) & 511);
        let pd = self.entry(pdpt, (va >> 30) & 511);
        let pt = self.entry(pd, (va >> 21) & 511);
        let page = self.entry(pt, (va >> 12) & 511);
        self.phys.write(PhysAddr(page), bytes);
    }

    fn from_sparse(sparse: &SparseMemory) -> Self {
        let mut p = Paged::new();
        for (va, bytes) in sparse.pages() {
            p.map(va, bytes);
        }
        p
    }
}

#[test]
fn the_driver_chain_unwinds_the_same_through_page_tables() {
    let d = driver();
    let mut b = FrameBuilder::new(d);
    let chain = [
        "DriverEntry",
        "many_saves",
        "xmm_saves",
        "fp_frame",
        "huge_frame",
        "big_frame",
        "leaf",
    ];
    b.run(&chain, d.sym("leaf"));
    let ctx = b.context(d.sym("leaf"));
    let opts = UnwindOptions {
        stack_limits: Some(StackRange::new(STACK_LOW, STACK_HIGH)),
        ..UnwindOptions::default()
    };
    let direct = Unwinder::new().unwind(&b.mem, &d.modules(), ctx, &opts);
    let paged = Paged::from_sparse(&b.mem);
    let space = AddressSpace::new(&paged.phys, Dtb(PhysAddr(paged.pml4)));
    let through = Unwinder::new().unwind(&space, &d.modules(), ctx, &opts);
    assert_eq!(through, direct);
    assert_eq!(through.frames.len(), 7);
    assert_eq!(through.stop, StopReason::ZeroReturnAddress);
    assert_eq!(through.frames[0].kind, FrameKind::LeafNoUnwindInfo);
}

#[test]
fn a_page_fault_becomes_a_read_error_with_its_address() {
    let mut paged = Paged::new();
    paged.map(0xffff_d000_3000_0000, &[0x11; 0x1000]);
    let space = AddressSpace::new(&paged.phys, Dtb(PhysAddr(paged.pml4)));
    assert_eq!(
        space_u64(&space, 0xffff_d000_3000_0ff8),
        Ok(0x1111_1111_1111_1111)
    );
    let mut buf = [0u8; 16];
    let e = VirtualMemory::read(&space, VirtAddr(0xffff_d000_3000_0ff8), &mut buf).unwrap_err();
    assert_eq!(e.addr.0, 0xffff_d000_3000_1000);
    assert!(
        matches!(e.kind, FaultKind::NotPresent { level: 1, .. }),
        "{e}"
    );
}

fn space_u64(space: &AddressSpace<'_>, va: u64) -> Result<u64, Fault> {
    VirtualMemory::read_u64(space, VirtAddr(va))
}
