//! Physical memory and x64 4-level page tables of the machine being built.
//!
//! Only pages the builder writes are stored, so memory use grows with the
//! number of objects, not with the RAM size. Physical pages are handed out
//! at random (not identity mapped), as on a machine that has run a while.

use std::collections::HashMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::error::Error;
use crate::image::PAGE_SIZE;

/// Present, writable, accessed, dirty: a kernel page-table entry.
pub const PTE_KERNEL_TABLE: u64 = 0x63;
/// Present, writable, user, accessed, dirty: a user page-table entry.
pub const PTE_USER_TABLE: u64 = 0x67;
/// Kernel data page: present, writable, accessed, dirty, global, NX.
pub const PTE_KERNEL_DATA: u64 = 0x163 | (1 << 63);
/// Kernel code page: present, accessed, dirty, global (read-only, executable).
pub const PTE_KERNEL_CODE: u64 = 0x161;
/// User read-only page: present, user, accessed, NX.
pub const PTE_USER_RO: u64 = 0x25 | (1 << 63);

const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// Physical pages and one kernel address space.
#[derive(Debug)]
pub struct Space {
    /// Written pages by PFN.
    pub pages: HashMap<u64, Box<[u8; PAGE_SIZE as usize]>>,
    /// RAM ranges (start, length).
    pub ram: Vec<(u64, u64)>,
    /// PFN of the System PML4.
    pub pml4: u64,
    /// Kernel VA page -> PFN (a cache of what the page tables say).
    kmap: HashMap<u64, u64>,
    /// Lowest PFN the random allocator hands out (keeps the low
    /// megabytes, where Volatility looks for the kernel DTB, clear).
    min_random_pfn: u64,
    /// Total RAM pages.
    total_pages: u64,
    /// PFN ranges `[start, end)` the random allocator must not use (the
    /// Windows 7 kernel image, mapped at a fixed physical offset).
    forbidden: Vec<(u64, u64)>,
    /// PFNs mapped in kernel space whose content stays the image's filler
    /// (never written, never held in `pages`).
    filler: std::collections::HashSet<u64>,
}

impl Space {
    /// A machine with these RAM ranges and the System PML4 at `pml4_phys`.
    pub fn new(ram: Vec<(u64, u64)>, pml4_phys: u64) -> Result<Space, Error> {
        let total_pages = ram.iter().map(|r| r.1 / PAGE_SIZE).sum();
        let mut s = Space {
            pages: HashMap::new(),
            ram,
            pml4: pml4_phys / PAGE_SIZE,
            kmap: HashMap::new(),
            min_random_pfn: 0x1000, // 16 MiB
            total_pages,
            forbidden: Vec::new(),
            filler: std::collections::HashSet::new(),
        };
        s.reserve(s.pml4)?;
        Ok(s)
    }

    fn in_ram(&self, pfn: u64) -> bool {
        let a = pfn * PAGE_SIZE;
        self.ram.iter().any(|&(s, l)| a >= s && a < s + l)
    }

    /// Claim a specific physical page (zeroed).
    pub fn reserve(&mut self, pfn: u64) -> Result<(), Error> {
        if !self.in_ram(pfn) {
            return Err(Error::Capacity {
                problem: format!("physical page {:#x} is not in RAM", pfn * PAGE_SIZE),
            });
        }
        if self.pages.contains_key(&pfn) {
            return Err(Error::Capacity {
                problem: format!("physical page {:#x} is used twice", pfn * PAGE_SIZE),
            });
        }
        self.pages.insert(pfn, Box::new([0u8; PAGE_SIZE as usize]));
        Ok(())
    }

    /// Keep the random allocator away from PFNs `[start, end)`.
    pub fn forbid(&mut self, start: u64, end: u64) {
        self.forbidden.push((start, end));
    }

    /// A random free physical page (zeroed).
    pub fn alloc(&mut self, rng: &mut ChaCha8Rng) -> Result<u64, Error> {
        let usable = self.total_pages.saturating_sub(self.min_random_pfn);
        if (self.pages.len() as u64) * 2 > usable {
            return Err(Error::Capacity {
                problem: "more than half of RAM is used by kernel objects; raise machine.ram"
                    .to_string(),
            });
        }
        for _ in 0..10_000 {
            // Pick a range weighted by size, then a page in it.
            let idx = rng.gen_range(0..self.total_pages);
            let mut acc = 0;
            for &(s, l) in &self.ram {
                let n = l / PAGE_SIZE;
                if idx < acc + n {
                    let pfn = s / PAGE_SIZE + (idx - acc);
                    if pfn >= self.min_random_pfn
                        && !self.pages.contains_key(&pfn)
                        && !self.filler.contains(&pfn)
                        && !self.forbidden.iter().any(|&(a, b)| pfn >= a && pfn < b)
                    {
                        self.pages.insert(pfn, Box::new([0u8; PAGE_SIZE as usize]));
                        return Ok(pfn);
                    }
                    break;
                }
                acc += n;
            }
        }
        Err(Error::Capacity {
            problem: "no free physical page found".to_string(),
        })
    }

    /// The page `pfn` for writing.
    pub fn page_mut(&mut self, pfn: u64) -> &mut [u8; PAGE_SIZE as usize] {
        self.pages
            .entry(pfn)
            .or_insert_with(|| Box::new([0u8; PAGE_SIZE as usize]))
    }

    fn entry(&self, table_pfn: u64, index: u64) -> u64 {
        self.pages
            .get(&table_pfn)
            .map(|p| {
                let o = (index * 8) as usize;
                u64::from_le_bytes(p[o..o + 8].try_into().unwrap_or([0; 8]))
            })
            .unwrap_or(0)
    }

    fn set_entry(&mut self, table_pfn: u64, index: u64, value: u64) {
        let o = (index * 8) as usize;
        self.page_mut(table_pfn)[o..o + 8].copy_from_slice(&value.to_le_bytes());
    }

    /// Set PML4 entry `index` of the page-table root `pml4` directly.
    pub fn set_pml4_entry(&mut self, pml4: u64, index: u64, value: u64) {
        self.set_entry(pml4, index, value);
    }

    /// A PML4 entry.
    pub fn pml4_entry(&self, pml4: u64, index: u64) -> u64 {
        self.entry(pml4, index)
    }

    /// Map 4 KiB page `va` to `pfn` under root `pml4` with leaf `flags`,
    /// creating tables (with `table_flags`) on the way.
    pub fn map(
        &mut self,
        rng: &mut ChaCha8Rng,
        pml4: u64,
        va: u64,
        pfn: u64,
        flags: u64,
        table_flags: u64,
    ) -> Result<(), Error> {
        let mut table = pml4;
        for level in [39u32, 30, 21] {
            let idx = (va >> level) & 0x1FF;
            let e = self.entry(table, idx);
            table = if e & 1 == 1 {
                (e & ADDR_MASK) / PAGE_SIZE
            } else {
                let n = self.alloc(rng)?;
                self.set_entry(table, idx, (n * PAGE_SIZE) | table_flags);
                n
            };
        }
        self.set_entry(table, (va >> 12) & 0x1FF, (pfn * PAGE_SIZE) | flags);
        if pml4 == self.pml4 {
            self.kmap.insert(va >> 12, pfn);
        }
        Ok(())
    }

    /// Map kernel page `va` (any offset in the page) to a fresh random
    /// page, or to `pfn` when given; returns the PFN. Already mapped pages
    /// are left alone.
    pub fn map_kernel(
        &mut self,
        rng: &mut ChaCha8Rng,
        va: u64,
        pfn: Option<u64>,
        flags: u64,
    ) -> Result<u64, Error> {
        if let Some(&p) = self.kmap.get(&(va >> 12)) {
            return Ok(p);
        }
        let p = match pfn {
            Some(p) => {
                self.reserve(p)?;
                p
            }
            None => self.alloc(rng)?,
        };
        let root = self.pml4;
        self.map(rng, root, va & !0xFFF, p, flags, PTE_KERNEL_TABLE)?;
        Ok(p)
    }

    /// Map kernel page `va` to a random free physical page whose content
    /// stays the image's filler: resident kernel memory no scenario object
    /// lives in, at no cost to the builder's memory. At most three
    /// quarters of RAM is handed out this way and to objects together.
    pub fn map_kernel_filler(
        &mut self,
        rng: &mut ChaCha8Rng,
        va: u64,
        flags: u64,
    ) -> Result<(), Error> {
        if self.kmap.contains_key(&(va >> 12)) {
            return Ok(());
        }
        let usable = self.total_pages.saturating_sub(self.min_random_pfn);
        if (self.pages.len() + self.filler.len()) as u64 * 4 > usable * 3 {
            return Err(Error::Capacity {
                problem: "kernel_resident and kernel objects exceed three quarters of RAM"
                    .to_string(),
            });
        }
        for _ in 0..10_000 {
            let pfn =
                rng.gen_range(self.min_random_pfn..self.total_pages.max(self.min_random_pfn + 1));
            if self.in_ram(pfn)
                && !self.pages.contains_key(&pfn)
                && !self.filler.contains(&pfn)
                && !self.forbidden.iter().any(|&(a, b)| pfn >= a && pfn < b)
            {
                self.filler.insert(pfn);
                let root = self.pml4;
                return self.map(rng, root, va & !0xFFF, pfn, flags, PTE_KERNEL_TABLE);
            }
        }
        Err(Error::Capacity {
            problem: "no free physical page found".to_string(),
        })
    }

    /// True if kernel page `va` is mapped.
    pub fn is_mapped(&self, va: u64) -> bool {
        self.kmap.contains_key(&(va >> 12))
    }

    /// Physical address of a mapped kernel VA.
    pub fn kernel_phys(&self, va: u64) -> Option<u64> {
        self.kmap
            .get(&(va >> 12))
            .map(|p| p * PAGE_SIZE + (va & 0xFFF))
    }

    /// Write bytes at a kernel VA; every page must be mapped.
    pub fn write(&mut self, va: u64, bytes: &[u8]) -> Result<(), Error> {
        let mut done = 0usize;
        while done < bytes.len() {
            let a = va.wrapping_add(done as u64);
            let pfn = *self.kmap.get(&(a >> 12)).ok_or_else(|| Error::Capacity {
                problem: format!("builder wrote to unmapped kernel address {a:#x}"),
            })?;
            let off = (a & 0xFFF) as usize;
            let n = (PAGE_SIZE as usize - off).min(bytes.len() - done);
            self.page_mut(pfn)[off..off + n].copy_from_slice(&bytes[done..done + n]);
            done += n;
        }
        Ok(())
    }

    /// Read bytes at a kernel VA (unmapped bytes read as zero).
    pub fn read(&self, va: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        let mut done = 0usize;
        while done < len {
            let a = va.wrapping_add(done as u64);
            let off = (a & 0xFFF) as usize;
            let n = (PAGE_SIZE as usize - off).min(len - done);
            if let Some(p) = self
                .kmap
                .get(&(a >> 12))
                .and_then(|pfn| self.pages.get(pfn))
            {
                out[done..done + n].copy_from_slice(&p[off..off + n]);
            }
            done += n;
        }
        out
    }
}
