//! Handle tables: `PspCidTable` and each process's `ObjectTable`.

use super::*;

impl Builder<'_> {
    /// The entry pages of a `_HANDLE_TABLE` at `table`: `low_tables` pages
    /// of entries, behind one page of pointers when there is more than one
    /// (TableCode level 1), and the header fields that describe them. Shared
    /// by PspCidTable and every process's handle table.
    pub(super) fn handle_table_pages(
        &mut self,
        table: u64,
        low_tables: u64,
        per_page: u64,
        handle_count: u64,
    ) -> Result<Vec<u64>, Error> {
        let ht = "_HANDLE_TABLE";
        let mut pages = Vec::new();
        for _ in 0..low_tables {
            pages.push(self.alloc_pages(PAGE_SIZE)?);
        }
        let code = if low_tables == 1 {
            pages[0]
        } else {
            let mid = self.alloc_pages(PAGE_SIZE)?;
            for (k, p) in pages.iter().enumerate() {
                self.sp.write(mid + k as u64 * 8, &p.to_le_bytes())?;
            }
            mid | 1
        };
        self.put(table, ht, "TableCode", code)?;
        self.put(
            table,
            ht,
            "NextHandleNeedingPool",
            low_tables * per_page * 4,
        )?;
        self.put_opt(table, ht, "HandleCount", handle_count)?;
        Ok(pages)
    }

    /// PspCidTable: a handle table indexed by PID/TID whose entries point
    /// at the process and thread bodies (not their headers).
    pub(super) fn cid_table(&mut self) -> Result<(), Error> {
        let Some(r) = self.l.symbol("PspCidTable") else {
            return Ok(());
        };
        let ht = "_HANDLE_TABLE";
        let hte = "_HANDLE_TABLE_ENTRY";
        let es = self.size(hte)?;
        let per_page = PAGE_SIZE / es;
        let mut ids: Vec<(u64, u64)> = Vec::new();
        for (i, p) in self.sc.processes.iter().enumerate() {
            ids.push((p.pid, self.procs[i].eprocess));
        }
        for t in &self.threads {
            ids.push((t.tid, t.ethread));
        }
        let max_index = ids.iter().map(|x| x.0 / 4).max().unwrap_or(0);
        let low_tables = (max_index + 1).div_ceil(per_page);
        if low_tables > 512 {
            return Err(Error::Capacity {
                problem: format!("PID/TID {:#x} too large for PspCidTable", max_index * 4),
            });
        }
        let (_, table) = self.pool_alloc(self.size(ht)?, *b"PsCi")?;
        let var = self.kernel_base + r;
        self.map_image(var, 8)?;
        self.sp.write(var, &table.to_le_bytes())?;
        let pages = self.handle_table_pages(table, low_tables, per_page, ids.len() as u64)?;
        self.list_init(table + self.off(ht, "HandleTableList")?);
        let win7 = self.has(hte, "Object");
        for (id, body) in ids {
            let index = id / 4;
            let at = pages[(index / per_page) as usize] + (index % per_page) * es;
            if win7 {
                self.put(at, hte, "Object", body | 1)?;
            } else {
                self.put(at, hte, "ObjectPointerBits", (body >> 4) & ((1 << 44) - 1))?;
                self.put_opt(at, hte, "Unlocked", 1)?;
            }
        }
        Ok(())
    }

    pub(super) fn handles(&mut self) -> Result<(), Error> {
        let sc = self.sc;
        let mut per_proc: Vec<Vec<(u64, u32)>> = vec![Vec::new(); sc.processes.len()];
        for h in &sc.handles {
            let pi = self.ix.pids[&h.pid];
            for f in &h.files {
                per_proc[pi].push((self.file_address(f)?, 0x12_019F));
            }
            if let Some(s) = &h.file_set {
                let si = self.ix.file_sets[s];
                let [a, b] = h.range.unwrap_or([0, sc.file_sets[si].count]);
                for n in a..b {
                    per_proc[pi].push((self.set_files[si][n as usize], 0x12_019F));
                }
            }
            for p in &h.processes {
                per_proc[pi].push((self.procs[self.ix.pids[p]].eprocess, 0x1F_0FFF));
            }
            for t in &h.threads {
                per_proc[pi].push((self.threads[self.ix.threads[t]].ethread, 0x1F_03FF));
            }
            for l in &h.locks {
                per_proc[pi].push((self.locks[self.ix.locks[l]].address, 0x1F_0003));
            }
        }
        // The server holds its connection and server communication ports,
        // the client its client communication port (windows-alpc.md 5).
        for &(pi, port) in &self.alpc_handles {
            per_proc[pi].push((port, 0x1F_0001));
        }
        let hte = "_HANDLE_TABLE_ENTRY";
        let es = self.size(hte)?;
        let per_page = PAGE_SIZE / es;
        let win7 = self.has(hte, "Object");
        for (pi, list) in per_proc.into_iter().enumerate() {
            let table = self.procs[pi].handle_table;
            // Slot 0 of each low-level table is never a handle.
            let mut slots = Vec::with_capacity(list.len());
            let mut next = 1u64;
            for _ in 0..list.len() {
                if next % per_page == 0 {
                    next += 1;
                }
                slots.push(next);
                next += 1;
            }
            let low_tables = next.div_ceil(per_page).max(1);
            if low_tables > 512 {
                return Err(Error::Capacity {
                    problem: format!(
                        "process {} holds {} handles; at most {} fit a 2-level table",
                        sc.processes[pi].pid,
                        list.len(),
                        512 * (per_page - 1)
                    ),
                });
            }
            let pages = self.handle_table_pages(table, low_tables, per_page, list.len() as u64)?;
            let mut recs = Vec::new();
            for (k, (body, access)) in list.into_iter().enumerate() {
                let slot = slots[k];
                let page = pages[(slot / per_page) as usize];
                let at = page + (slot % per_page) * es;
                let header = self.object_header(body)?;
                if win7 {
                    // Object points at the OBJECT_HEADER; bit 0 = unlocked.
                    self.put(at, hte, "Object", header | 1)?;
                    self.put(at, hte, "GrantedAccess", access as u64)?;
                } else {
                    self.put(
                        at,
                        hte,
                        "ObjectPointerBits",
                        (header >> 4) & ((1 << 44) - 1),
                    )?;
                    self.put_opt(at, hte, "Unlocked", 1)?;
                    self.put_opt(at, hte, "RefCnt", 0x7FFF)?;
                    self.put(at, hte, "GrantedAccessBits", access as u64)?;
                }
                self.add_handle_ref(header);
                let handle = (slot / per_page) * per_page * 4 + (slot % per_page) * 4;
                recs.push((body, handle, access));
            }
            self.procs[pi].handles = recs;
        }
        Ok(())
    }
}
