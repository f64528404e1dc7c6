//! Memory layout: kernel mappings, pool blocks with `POOL_HEADER`s, whole
//! page allocations and each process's address space.

use super::*;
use crate::space;

impl crate::stacks::StackMemory for Builder<'_> {
    fn map(&mut self, va: u64, len: u64, code: bool) -> Result<(), Error> {
        let flags = if code {
            space::PTE_KERNEL_CODE
        } else {
            space::PTE_KERNEL_DATA
        };
        self.map_kernel_range(va, len, flags)
    }

    fn write(&mut self, va: u64, bytes: &[u8]) -> Result<(), Error> {
        self.sp.write(va, bytes)
    }
}

impl Builder<'_> {
    pub(super) fn map_kernel_range(&mut self, va: u64, len: u64, flags: u64) -> Result<(), Error> {
        let mut p = va & !0xFFF;
        while p < va + len {
            let fixed = if self.kernel_phys_fixed
                && p >= self.kernel_base
                && p < self.kernel_base + self.image_size
            {
                Some((p - 0xFFFF_F800_0000_0000) / PAGE_SIZE)
            } else {
                None
            };
            self.sp.map_kernel(&mut self.rng, p, fixed, flags)?;
            p += PAGE_SIZE;
        }
        Ok(())
    }

    /// Make the kernel-image bytes `[va, va+len)` writable memory.
    pub(super) fn map_image(&mut self, va: u64, len: u64) -> Result<(), Error> {
        self.map_kernel_range(va, len.max(1), space::PTE_KERNEL_DATA)
    }

    /// `machine.kernel_resident` bytes of kernel space mapped over filler
    /// pages, after every object (it moves none), where whole-page
    /// allocations go.
    pub(super) fn kernel_resident(&mut self) -> Result<(), Error> {
        let Some(size) = self.sc.machine.kernel_resident else {
            return Ok(());
        };
        let va = self.pages_next;
        let len = round_up(size.0, PAGE_SIZE);
        self.pages_next += len + PAGE_SIZE;
        let mut p = va;
        while p < va + len {
            self.sp
                .map_kernel_filler(&mut self.rng, p, space::PTE_KERNEL_DATA)?;
            p += PAGE_SIZE;
        }
        Ok(())
    }

    /// Whole pages (large pool / system PTE allocations, no pool header).
    pub(super) fn alloc_pages(&mut self, len: u64) -> Result<u64, Error> {
        let va = self.pages_next;
        let len = round_up(len.max(1), PAGE_SIZE);
        self.pages_next += len + PAGE_SIZE;
        self.map_kernel_range(va, len, space::PTE_KERNEL_DATA)?;
        Ok(va)
    }

    /// A small pool block with a POOL_HEADER; returns (header VA, data VA).
    pub(super) fn pool_alloc(&mut self, data_len: u64, tag: [u8; 4]) -> Result<(u64, u64), Error> {
        let hdr = self.size("_POOL_HEADER")?;
        let total = round_up(hdr + data_len, 16);
        if total > 0xFF0 {
            return Err(Error::Capacity {
                problem: format!("pool block of {total:#x} bytes does not fit in a page"),
            });
        }
        let room = PAGE_SIZE - (self.pool_next & 0xFFF);
        if room < total || self.pool_next & 0xFFF == 0 {
            if self.pool_next & 0xFFF != 0 {
                self.pool_next = round_up(self.pool_next, PAGE_SIZE);
            }
            self.pool_prev_size = 0;
            // Leave a random gap of pages, as a busy pool would.
            if self.rng.gen_range(0..4) == 0 {
                self.pool_next += PAGE_SIZE;
            }
        }
        let at = self.pool_next;
        self.map_kernel_range(at, total, space::PTE_KERNEL_DATA)?;
        self.put(at, "_POOL_HEADER", "PreviousSize", self.pool_prev_size / 16)?;
        self.put(at, "_POOL_HEADER", "BlockSize", total / 16)?;
        // Volatility's Vista+ rule: even and non-zero = non-paged.
        self.put(at, "_POOL_HEADER", "PoolType", 2)?;
        self.put(
            at,
            "_POOL_HEADER",
            "PoolTag",
            u32::from_le_bytes(tag) as u64,
        )?;
        self.pool_prev_size = total;
        self.pool_next = at + total;
        Ok((at, at + hdr))
    }

    pub(super) fn process_address_spaces(&mut self) -> Result<(), Error> {
        let kuser_pfn = self
            .sp
            .kernel_phys(0xFFFF_F780_0000_0000)
            .ok_or_else(|| missing("KUSER_SHARED_DATA mapping"))?
            / PAGE_SIZE;
        let sys = self.sp.pml4;
        let kernel_half: Vec<u64> = (256..512).map(|i| self.sp.pml4_entry(sys, i)).collect();
        for p in self.procs.clone() {
            if p.dtb_pfn == sys {
                continue;
            }
            for (k, e) in kernel_half.iter().enumerate() {
                self.sp.set_pml4_entry(p.dtb_pfn, 256 + k as u64, *e);
            }
            self.sp.set_pml4_entry(
                p.dtb_pfn,
                self.self_ref,
                (p.dtb_pfn * PAGE_SIZE) | space::PTE_KERNEL_TABLE,
            );
            self.sp.map(
                &mut self.rng,
                p.dtb_pfn,
                0x7FFE_0000,
                kuser_pfn,
                space::PTE_USER_RO,
                space::PTE_USER_TABLE,
            )?;
        }
        Ok(())
    }
}

/// The PML4 index of the self-reference entry: 0x1ED on 7 and 8.1, a
/// random one on 1607 and later.
pub(super) fn self_ref_index(win: &WindowsBuild, rng: &mut ChaCha8Rng) -> u64 {
    match win.self_ref {
        SelfRefStyle::Fixed0x1ed => 0x1ED,
        // 0x1EF is KUSER_SHARED_DATA's PML4 slot and 0x1F0.. the
        // kernel image's: keep the self-reference clear of both.
        SelfRefStyle::Randomized => loop {
            let i: u64 = rng.gen_range(0x100..0x1EF);
            if i != 0x100 {
                break i;
            }
        },
    }
}

/// Where the build puts things: (kernel base, whether the kernel sits at
/// a fixed physical address, pool base, kernel stacks base).
pub(super) fn region_bases(win: &WindowsBuild, rng: &mut ChaCha8Rng) -> (u64, bool, u64, u64) {
    match win.addresses {
        AddressStyle::Win7 => (
            0xFFFF_F800_0260_0000 + rng.gen_range(0..0x100u64) * 0x1000,
            true,
            0xFFFF_FA80_0000_0000 + rng.gen_range(0x40..0x80u64) * 0x10_0000,
            0xFFFF_F880_0400_0000 + rng.gen_range(0..0x100u64) * 0x1_0000,
        ),
        AddressStyle::Win81 => (
            0xFFFF_F800_0000_0000
                + rng.gen_range(1..8u64) * 0x1_0000_0000
                + rng.gen_range(0..0x8000u64) * 0x1_0000,
            false,
            0xFFFF_E000_0000_0000 + rng.gen_range(0x10..0x100u64) * 0x100_0000,
            0xFFFF_D000_0000_0000 + rng.gen_range(0x10..0x100u64) * 0x100_0000,
        ),
        AddressStyle::Win10 => (
            0xFFFF_F800_0000_0000
                + rng.gen_range(1..8u64) * 0x1_0000_0000
                + rng.gen_range(0..0x8000u64) * 0x1_0000,
            false,
            0xFFFF_8000_0000_0000 + rng.gen_range(0x100..0x7000u64) * 0x1_0000_0000,
            0xFFFF_F000_0000_0000 - rng.gen_range(0x1000..0x2000u64) * 0x1_0000_0000,
        ),
    }
}
