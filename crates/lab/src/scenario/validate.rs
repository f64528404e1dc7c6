//! Scenario checks: each scenario type checks its own values and its
//! references into the [`Index`] built so far. [`Scenario::validate`]
//! runs them in a fixed order (identities first, then what refers to
//! them), so the first problem reported does not depend on how the file
//! is laid out beyond that order.

use std::collections::HashSet;

use super::*;

impl Scenario {
    /// Check every value and cross reference; build the index.
    pub fn validate(&self) -> Result<Index, Error> {
        let mut ix = Index::default();
        self.machine.validate()?;
        if self.cpus.is_empty() || self.cpus.len() > 64 {
            return Err(field_err("cpus", "need 1 to 64 CPUs"));
        }
        for (i, p) in self.processes.iter().enumerate() {
            p.validate(i, &mut ix)?;
        }
        if !ix.pids.contains_key(&4) {
            return Err(field_err("processes", "needs the System process (pid 4)"));
        }
        // A parent PID may name a process that has exited (csrss.exe's
        // parent smss.exe instance does), so it is not checked.
        let mut tids = HashSet::new();
        for (i, t) in self.threads.iter().enumerate() {
            t.validate_identity(i, &mut ix, &mut tids)?;
        }
        for (i, l) in self.locks.iter().enumerate() {
            if ix.locks.insert(l.id.clone(), i).is_some() {
                return Err(field_err(
                    format!("locks[{i}].id"),
                    format!("duplicate lock id `{}`", l.id),
                ));
            }
        }
        self.validate_alpc(&mut ix)?;
        for (i, t) in self.threads.iter().enumerate() {
            t.validate_wait(i, &ix, &self.machine)?;
        }
        self.validate_alpc_clients(&mut ix)?;
        self.validate_queues(&ix)?;
        self.validate_running(&ix)?;
        for (i, l) in self.locks.iter().enumerate() {
            l.validate(i, &ix)?;
        }
        self.validate_io(&mut ix)?;
        for (i, h) in self.handles.iter().enumerate() {
            h.validate(i, self, &ix)?;
        }
        let ncpu = self.cpus.len() as u32;
        for (i, t) in self.threads.iter().enumerate() {
            if let Some(c) = t.ready_on {
                if t.state != ThreadState::Ready || c >= ncpu {
                    return Err(field_err(
                        format!("threads[{i}].ready_on"),
                        format!("CPU {c} for a thread in state {:?} on {ncpu} CPUs (needs a ready thread and a CPU listed in `cpus`)", t.state),
                    ));
                }
            }
            if t.shared_queue && t.state != ThreadState::Ready {
                return Err(field_err(
                    format!("threads[{i}].shared_queue"),
                    "only a ready thread sits on a ready queue",
                ));
            }
            if let Some(a) = &t.affinity {
                if a.is_empty() || a.iter().any(|&c| c >= ncpu) {
                    return Err(field_err(
                        format!("threads[{i}].affinity"),
                        format!("needs at least one CPU, each below {ncpu}"),
                    ));
                }
            }
            if t.priority.is_some_and(|p| p > 31) {
                return Err(field_err(
                    format!("threads[{i}].priority"),
                    "priorities are 0 to 31",
                ));
            }
        }
        for (i, d) in self.dpcs.iter().enumerate() {
            if d.cpu >= ncpu || d.count > 4096 || !d.routine.contains('!') {
                return Err(field_err(
                    format!("dpcs[{i}]"),
                    format!("needs a CPU below {ncpu}, at most 4096 DPCs and a routine written module!symbol"),
                ));
            }
        }
        if let Some(m) = &self.machine.memory {
            if m.committed_pages > m.commit_limit_pages.saturating_mul(2)
                || m.commit_limit_pages == 0
            {
                return Err(field_err(
                    "machine.memory",
                    "needs a non-zero commit limit and commit at most twice it",
                ));
            }
        }
        if let Some(e) = &self.expect {
            e.validate()?;
        }
        Ok(ix)
    }

    /// ALPC ports (unique ids, a known server process) and messages
    /// (unique ids, a known port, a server thread of the port's process).
    fn validate_alpc(&self, ix: &mut Index) -> Result<(), Error> {
        for (i, p) in self.alpc_ports.iter().enumerate() {
            if ix.alpc_ports.insert(p.id.clone(), i).is_some() {
                return Err(field_err(
                    format!("alpc_ports[{i}].id"),
                    format!("duplicate ALPC port id `{}`", p.id),
                ));
            }
            if !ix.pids.contains_key(&p.pid) {
                return Err(field_err(
                    format!("alpc_ports[{i}].pid"),
                    format!("no process with pid {}", p.pid),
                ));
            }
            if p.name.is_empty() || p.name.contains('\\') {
                return Err(field_err(
                    format!("alpc_ports[{i}].name"),
                    "a port name is one non-empty path component",
                ));
            }
            if let Some(q) = &p.completion_port {
                self.queue_lock(ix, q, format!("alpc_ports[{i}].completion_port"))?;
            }
        }
        for (i, m) in self.alpc_messages.iter().enumerate() {
            if ix.alpc_messages.insert(m.id.clone(), i).is_some() {
                return Err(field_err(
                    format!("alpc_messages[{i}].id"),
                    format!("duplicate ALPC message id `{}`", m.id),
                ));
            }
            let Some(&pi) = ix.alpc_ports.get(&m.port) else {
                return Err(field_err(
                    format!("alpc_messages[{i}].port"),
                    format!("no ALPC port with id `{}`", m.port),
                ));
            };
            if let Some(s) = &m.server_thread {
                let Some(&ti) = ix.threads.get(s) else {
                    return Err(field_err(
                        format!("alpc_messages[{i}].server_thread"),
                        format!("no thread with id `{s}`"),
                    ));
                };
                if self.threads[ti].pid != self.alpc_ports[pi].pid {
                    return Err(field_err(
                        format!("alpc_messages[{i}].server_thread"),
                        "the server thread belongs to the port's process",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The index of lock `id`, which must be a queue.
    fn queue_lock(&self, ix: &Index, id: &str, field: String) -> Result<usize, Error> {
        match ix.locks.get(id) {
            Some(&l) if self.locks[l].kind == LockKind::Queue => Ok(l),
            Some(_) => Err(field_err(field, format!("lock `{id}` is not a queue"))),
            None => Err(field_err(field, format!("no lock with id `{id}`"))),
        }
    }

    /// A thread's queue: a queue lock; a thread waiting on a queue waits
    /// on it alone, and on the queue it is associated with.
    fn validate_queues(&self, ix: &Index) -> Result<(), Error> {
        for (i, t) in self.threads.iter().enumerate() {
            let assoc = match &t.queue {
                Some(q) => Some(self.queue_lock(ix, q, format!("threads[{i}].queue"))?),
                None => None,
            };
            let Some(w) = &t.wait else { continue };
            let waited =
                w.on.iter()
                    .filter(|o| self.locks[ix.locks[*o]].kind == LockKind::Queue)
                    .count();
            if waited == 0 {
                continue;
            }
            if w.on.len() != 1 {
                return Err(field_err(
                    format!("threads[{i}].wait.on"),
                    "a thread waiting on a queue waits on it alone",
                ));
            }
            if assoc.is_some_and(|q| self.locks[q].id != w.on[0]) {
                return Err(field_err(
                    format!("threads[{i}].queue"),
                    "a thread waiting on a queue is associated with that queue",
                ));
            }
        }
        Ok(())
    }

    /// Each ALPC message has exactly one client: the thread whose
    /// `wait.alpc` names it.
    fn validate_alpc_clients(&self, ix: &mut Index) -> Result<(), Error> {
        for (ti, t) in self.threads.iter().enumerate() {
            let Some(id) = t.wait.as_ref().and_then(|w| w.alpc.as_ref()) else {
                continue;
            };
            let mi = ix.alpc_messages[id];
            if ix.alpc_clients.insert(mi, ti).is_some() {
                return Err(field_err(
                    format!("threads[{ti}].wait.alpc"),
                    format!("ALPC message `{id}` already has a waiting client"),
                ));
            }
        }
        if let Some(i) = (0..self.alpc_messages.len()).find(|i| !ix.alpc_clients.contains_key(i)) {
            return Err(field_err(
                format!("alpc_messages[{i}]"),
                "no thread waits for this message's reply (`wait.alpc`)",
            ));
        }
        Ok(())
    }

    /// Each CPU runs `idle` or a distinct running thread, and every
    /// running thread has a CPU.
    fn validate_running(&self, ix: &Index) -> Result<(), Error> {
        let mut running = HashSet::new();
        for (i, c) in self.cpus.iter().enumerate() {
            c.validate(i, self, ix, &mut running)?;
        }
        for (i, t) in self.threads.iter().enumerate() {
            if t.state == ThreadState::Running && !running.contains(&t.id) {
                return Err(field_err(
                    format!("threads[{i}].state"),
                    format!("thread `{}` is running but no CPU runs it", t.id),
                ));
            }
        }
        Ok(())
    }

    /// Drivers, devices, files, file sets and IRPs, each indexed as it
    /// is checked (a device names a driver, a file a device, ...).
    fn validate_io(&self, ix: &mut Index) -> Result<(), Error> {
        for (i, d) in self.drivers.iter().enumerate() {
            d.validate(i, ix)?;
        }
        for (i, d) in self.devices.iter().enumerate() {
            d.validate(i, ix)?;
        }
        for (i, fo) in self.files.iter().enumerate() {
            fo.validate(i, ix)?;
        }
        for (i, fo) in self.files.iter().enumerate() {
            fo.validate_related(i, ix)?;
        }
        for (i, s) in self.file_sets.iter().enumerate() {
            s.validate(i, ix)?;
        }
        for (i, irp) in self.irps.iter().enumerate() {
            irp.validate(i, self, ix)?;
        }
        Ok(())
    }
}

impl Machine {
    fn validate(&self) -> Result<(), Error> {
        if self.ram.0 < (64 << 20) || self.ram.0 > (16u64 << 30) {
            return Err(field_err(
                "machine.ram",
                format!("{} bytes is outside 64MiB..16GiB", self.ram.0),
            ));
        }
        if let Some(k) = self.kernel_resident {
            if k.0 > self.ram.0 / 2 {
                return Err(field_err(
                    "machine.kernel_resident",
                    "at most half of machine.ram",
                ));
            }
        }
        if self.ram.0 % 0x1000 != 0 {
            return Err(field_err("machine.ram", "must be a multiple of 4096"));
        }
        if let Some(p) = &self.product {
            if p != "server" && p != "workstation" {
                return Err(field_err(
                    "machine.product",
                    format!("`{p}`: expected `server` or `workstation`"),
                ));
            }
        }
        if self.max_increment == 0 {
            return Err(field_err("machine.max_increment", "must not be 0"));
        }
        if self.tick_count < 64 {
            return Err(field_err(
                "machine.tick_count",
                "too small: the machine must have run for a while",
            ));
        }
        Ok(())
    }
}

impl Process {
    /// `processes[i]`: its PID (indexed) and name.
    fn validate(&self, i: usize, ix: &mut Index) -> Result<(), Error> {
        let f = |x: &str| format!("processes[{i}].{x}");
        if self.pid == 0 || self.pid % 4 != 0 || self.pid > 0xFFFF_FFFC {
            return Err(field_err(
                f("pid"),
                format!("{} is not a non-zero multiple of 4", self.pid),
            ));
        }
        if ix.pids.insert(self.pid, i).is_some() {
            return Err(field_err(f("pid"), format!("duplicate PID {}", self.pid)));
        }
        if self.name.is_empty() || !self.name.is_ascii() {
            return Err(field_err(f("name"), "must be non-empty ASCII"));
        }
        Ok(())
    }
}

impl Thread {
    /// `threads[i]`: its id (indexed), process and TID (unique among PIDs
    /// and the `tids` seen so far).
    fn validate_identity(
        &self,
        i: usize,
        ix: &mut Index,
        tids: &mut HashSet<u64>,
    ) -> Result<(), Error> {
        let f = |x: &str| format!("threads[{i}].{x}");
        if self.id.is_empty() {
            return Err(field_err(f("id"), "must not be empty"));
        }
        if ix.threads.insert(self.id.clone(), i).is_some() {
            return Err(field_err(
                f("id"),
                format!("duplicate thread id `{}`", self.id),
            ));
        }
        if !ix.pids.contains_key(&self.pid) {
            return Err(field_err(
                f("pid"),
                format!("no process with PID {}", self.pid),
            ));
        }
        if let Some(tid) = self.tid {
            if tid == 0 || tid % 4 != 0 || tid > 0xFFFF_FFFC {
                return Err(field_err(
                    f("tid"),
                    format!("{tid} is not a non-zero multiple of 4"),
                ));
            }
            if ix.pids.contains_key(&tid) || !tids.insert(tid) {
                return Err(field_err(
                    f("tid"),
                    format!("{tid} is already used by a process or thread"),
                ));
            }
        }
        Ok(())
    }

    /// `threads[i]`: a waiting thread has a valid `wait`, others none.
    fn validate_wait(&self, i: usize, ix: &Index, m: &Machine) -> Result<(), Error> {
        match (self.state, &self.wait) {
            (ThreadState::Waiting, None) => Err(field_err(
                format!("threads[{i}].wait"),
                "a waiting thread needs `wait`",
            )),
            (ThreadState::Waiting, Some(w)) => w.validate(i, ix, m),
            (_, Some(_)) => Err(field_err(
                format!("threads[{i}].wait"),
                "only a waiting thread has `wait`",
            )),
            _ => Ok(()),
        }
    }
}

impl Wait {
    /// The wait of `threads[i]`: 1 to 4 known locks, a KWAIT_REASON name,
    /// exactly one of `since` and `ticks_ago`, not before boot.
    fn validate(&self, i: usize, ix: &Index, m: &Machine) -> Result<(), Error> {
        let f = |x: &str| format!("threads[{i}].{x}");
        if let Some(m) = &self.alpc {
            if !self.on.is_empty() {
                return Err(field_err(
                    f("wait.on"),
                    "an ALPC client waits on its own semaphore, not on locks",
                ));
            }
            if !ix.alpc_messages.contains_key(m) {
                return Err(field_err(
                    f("wait.alpc"),
                    format!("no ALPC message with id `{m}`"),
                ));
            }
        } else if self.on.is_empty() || self.on.len() > 4 {
            return Err(field_err(f("wait.on"), "wait on 1 to 4 locks"));
        }
        for (j, o) in self.on.iter().enumerate() {
            if !ix.locks.contains_key(o) {
                return Err(field_err(
                    format!("threads[{i}].wait.on[{j}]"),
                    format!("no lock with id `{o}`"),
                ));
            }
        }
        if let Some(r) = &self.reason {
            if !WAIT_REASONS.contains(&r.as_str()) {
                return Err(field_err(
                    f("wait.reason"),
                    format!("`{r}` is not a KWAIT_REASON name"),
                ));
            }
        }
        match (self.since, self.ticks_ago) {
            (Some(s), None) if s > m.tick_count => Err(field_err(
                f("wait.since"),
                format!("tick {s} is after machine.tick_count {}", m.tick_count),
            )),
            (None, Some(a)) if a > m.tick_count => Err(field_err(
                f("wait.ticks_ago"),
                "longer ago than the machine has run",
            )),
            (Some(_), Some(_)) | (None, None) => Err(field_err(
                f("wait"),
                "give exactly one of `since` and `ticks_ago`",
            )),
            _ => Ok(()),
        }
    }
}

impl Cpu {
    /// `cpus[i]`: `idle`, or a running thread no other CPU runs (added to
    /// `running`).
    fn validate(
        &self,
        i: usize,
        sc: &Scenario,
        ix: &Index,
        running: &mut HashSet<String>,
    ) -> Result<(), Error> {
        if self.runs == "idle" {
            return Ok(());
        }
        let field = format!("cpus[{i}].runs");
        match ix.threads.get(&self.runs) {
            None => Err(field_err(
                field,
                format!("no thread with id `{}`", self.runs),
            )),
            Some(&t) if sc.threads[t].state != ThreadState::Running => Err(field_err(
                field,
                format!("thread `{}` is not in state `running`", self.runs),
            )),
            Some(_) if !running.insert(self.runs.clone()) => Err(field_err(
                field,
                format!("thread `{}` already runs on another CPU", self.runs),
            )),
            Some(_) => Ok(()),
        }
    }
}

impl Lock {
    /// `locks[i]`: owners are known threads, in the number and mode its
    /// kind allows.
    fn validate(&self, i: usize, ix: &Index) -> Result<(), Error> {
        let f = |x: &str| format!("locks[{i}].{x}");
        for (j, o) in self
            .owner
            .iter()
            .chain(self.shared_owners.iter())
            .enumerate()
        {
            if !ix.threads.contains_key(o) {
                let name = if self.owner.is_some() && j == 0 {
                    f("owner")
                } else {
                    let k = j - usize::from(self.owner.is_some());
                    format!("locks[{i}].shared_owners[{k}]")
                };
                return Err(field_err(name, format!("no thread with id `{o}`")));
            }
        }
        if self.within.is_some() && self.kind != LockKind::Pushlock {
            return Err(field_err(f("within"), "only a push lock is placed"));
        }
        if let Some(w) = &self.within {
            let ok = match w.split(':').collect::<Vec<_>>()[..] {
                ["pool", tag] => tag.len() == 4 && tag.is_ascii(),
                ["process", pid, field] => pid.parse::<u64>().is_ok() && !field.is_empty(),
                _ => false,
            };
            if !ok {
                return Err(field_err(
                    f("within"),
                    format!("`{w}`: expected `pool:TAG` or `process:PID:FIELD`"),
                ));
            }
        }
        match self.kind {
            LockKind::Eresource => {
                if self.owner.is_some() && !self.shared_owners.is_empty() {
                    return Err(field_err(
                        f("shared_owners"),
                        "an ERESOURCE is owned exclusively or shared, not both",
                    ));
                }
                if self.shared_owners.len() > 64 {
                    return Err(field_err(f("shared_owners"), "at most 64 owners"));
                }
            }
            LockKind::Mutant
            | LockKind::Fastmutex
            | LockKind::Guardedmutex
            | LockKind::Pushlock => {
                if !self.shared_owners.is_empty() {
                    return Err(field_err(f("shared_owners"), "a mutex has one owner"));
                }
            }
            LockKind::Event | LockKind::Semaphore | LockKind::Queue => {
                if self.owner.is_some() || !self.shared_owners.is_empty() {
                    return Err(field_err(
                        f("owner"),
                        "events, semaphores and queues have no owner",
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Driver {
    /// `drivers[i]`: a unique `\Driver\` or `\FileSystem\` name (indexed).
    fn validate(&self, i: usize, ix: &mut Index) -> Result<(), Error> {
        if !(self.name.starts_with("\\Driver\\") || self.name.starts_with("\\FileSystem\\")) {
            return Err(field_err(
                format!("drivers[{i}].name"),
                format!(
                    "`{}` must start with \\Driver\\ or \\FileSystem\\",
                    self.name
                ),
            ));
        }
        if ix.drivers.insert(self.name.clone(), i).is_some() {
            return Err(field_err(
                format!("drivers[{i}].name"),
                format!("duplicate driver `{}`", self.name),
            ));
        }
        Ok(())
    }
}

impl Device {
    /// `devices[i]`: a unique id (indexed) and a known driver.
    fn validate(&self, i: usize, ix: &mut Index) -> Result<(), Error> {
        if ix.devices.insert(self.id.clone(), i).is_some() {
            return Err(field_err(
                format!("devices[{i}].id"),
                format!("duplicate device id `{}`", self.id),
            ));
        }
        if !ix.drivers.contains_key(&self.driver) {
            return Err(field_err(
                format!("devices[{i}].driver"),
                format!("no driver named `{}`", self.driver),
            ));
        }
        Ok(())
    }
}

impl File {
    /// `files[i]`: a unique id without `[` (indexed), a known device and
    /// a name of 1 to 1000 characters.
    fn validate(&self, i: usize, ix: &mut Index) -> Result<(), Error> {
        if ix.files.insert(self.id.clone(), i).is_some() || self.id.contains('[') {
            return Err(field_err(
                format!("files[{i}].id"),
                format!("duplicate or malformed file id `{}`", self.id),
            ));
        }
        if !ix.devices.contains_key(&self.device) {
            return Err(field_err(
                format!("files[{i}].device"),
                format!("no device with id `{}`", self.device),
            ));
        }
        if self.name.is_empty() || self.name.len() > 1000 {
            return Err(field_err(
                format!("files[{i}].name"),
                "1 to 1000 characters",
            ));
        }
        Ok(())
    }

    /// `files[i].related` names another file (once all are indexed).
    fn validate_related(&self, i: usize, ix: &Index) -> Result<(), Error> {
        match &self.related {
            Some(r) if !ix.files.contains_key(r) || r == &self.id => Err(field_err(
                format!("files[{i}].related"),
                format!("no other file with id `{r}`"),
            )),
            _ => Ok(()),
        }
    }
}

impl FileSet {
    /// `file_sets[i]`: an id unique among sets and files (indexed), 1 to
    /// 200000 members, a known device.
    fn validate(&self, i: usize, ix: &mut Index) -> Result<(), Error> {
        if ix.file_sets.insert(self.id.clone(), i).is_some() || ix.files.contains_key(&self.id) {
            return Err(field_err(
                format!("file_sets[{i}].id"),
                format!("duplicate id `{}`", self.id),
            ));
        }
        if self.count == 0 || self.count > 200_000 {
            return Err(field_err(format!("file_sets[{i}].count"), "1 to 200000"));
        }
        if !ix.devices.contains_key(&self.device) {
            return Err(field_err(
                format!("file_sets[{i}].device"),
                format!("no device with id `{}`", self.device),
            ));
        }
        Ok(())
    }
}

impl Irp {
    /// `irps[i]`: a unique id (indexed), a known thread, 1 to 16 valid
    /// stack locations and a current one among them.
    fn validate(&self, i: usize, sc: &Scenario, ix: &mut Index) -> Result<(), Error> {
        let f = |x: &str| format!("irps[{i}].{x}");
        if ix.irps.insert(self.id.clone(), i).is_some() {
            return Err(field_err(
                f("id"),
                format!("duplicate IRP id `{}`", self.id),
            ));
        }
        if !ix.threads.contains_key(&self.thread) {
            return Err(field_err(
                f("thread"),
                format!("no thread with id `{}`", self.thread),
            ));
        }
        if self.stack.is_empty() || self.stack.len() > 16 {
            return Err(field_err(f("stack"), "1 to 16 stack locations"));
        }
        if self.current >= self.stack.len() {
            return Err(field_err(
                f("current"),
                format!(
                    "{} is past the {} stack locations",
                    self.current,
                    self.stack.len()
                ),
            ));
        }
        for (j, s) in self.stack.iter().enumerate() {
            s.validate(&format!("irps[{i}].stack[{j}]"), sc, ix)?;
        }
        if let Some(e) = &self.event {
            match ix.locks.get(e) {
                Some(&l) if sc.locks[l].kind == LockKind::Event => {}
                Some(_) => return Err(field_err(f("event"), format!("`{e}` is not an event"))),
                None => return Err(field_err(f("event"), format!("no lock with id `{e}`"))),
            }
        }
        Ok(())
    }
}

impl IrpStack {
    /// The stack location at `field`: a known device, an IRP_MJ_ name, a
    /// known file.
    fn validate(&self, field: &str, sc: &Scenario, ix: &Index) -> Result<(), Error> {
        if !ix.devices.contains_key(&self.device) {
            return Err(field_err(
                format!("{field}.device"),
                format!("no device with id `{}`", self.device),
            ));
        }
        if !IRP_MAJORS.contains(&self.major.as_str()) {
            return Err(field_err(
                format!("{field}.major"),
                format!(
                    "`{}` is not an IRP_MJ_ name (e.g. CREATE, READ)",
                    self.major
                ),
            ));
        }
        if let Some(fid) = &self.file {
            if ix.file(sc, fid).is_none() {
                return Err(field_err(
                    format!("{field}.file"),
                    format!("no file with id `{fid}`"),
                ));
            }
        }
        Ok(())
    }
}

impl Handles {
    /// `handles[i]`: a known process holding known files (a file set
    /// range inside the set), processes, threads and non-ERESOURCE locks.
    fn validate(&self, i: usize, sc: &Scenario, ix: &Index) -> Result<(), Error> {
        let f = |x: &str| format!("handles[{i}].{x}");
        if !ix.pids.contains_key(&self.pid) {
            return Err(field_err(
                f("pid"),
                format!("no process with PID {}", self.pid),
            ));
        }
        for (j, fid) in self.files.iter().enumerate() {
            if ix.file(sc, fid).is_none() {
                return Err(field_err(
                    format!("handles[{i}].files[{j}]"),
                    format!("no file with id `{fid}`"),
                ));
            }
        }
        self.validate_file_set(i, sc, ix)?;
        for (j, p) in self.processes.iter().enumerate() {
            if !ix.pids.contains_key(p) {
                return Err(field_err(
                    format!("handles[{i}].processes[{j}]"),
                    format!("no process with PID {p}"),
                ));
            }
        }
        for (j, t) in self.threads.iter().enumerate() {
            if !ix.threads.contains_key(t) {
                return Err(field_err(
                    format!("handles[{i}].threads[{j}]"),
                    format!("no thread with id `{t}`"),
                ));
            }
        }
        for (j, l) in self.locks.iter().enumerate() {
            match ix.locks.get(l) {
                None => {
                    return Err(field_err(
                        format!("handles[{i}].locks[{j}]"),
                        format!("no lock with id `{l}`"),
                    ))
                }
                Some(&k) if sc.locks[k].kind == LockKind::Eresource => {
                    return Err(field_err(
                        format!("handles[{i}].locks[{j}]"),
                        "an ERESOURCE is not an object with handles",
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// `file_set` names a set and `range` lies inside it; `range` only
    /// with `file_set`.
    fn validate_file_set(&self, i: usize, sc: &Scenario, ix: &Index) -> Result<(), Error> {
        let f = |x: &str| format!("handles[{i}].{x}");
        let Some(s) = &self.file_set else {
            return match self.range {
                Some(_) => Err(field_err(f("range"), "needs `file_set`")),
                None => Ok(()),
            };
        };
        let Some(&si) = ix.file_sets.get(s) else {
            return Err(field_err(
                f("file_set"),
                format!("no file set with id `{s}`"),
            ));
        };
        match self.range {
            Some([a, b]) if a >= b || b > sc.file_sets[si].count => Err(field_err(
                f("range"),
                format!("[{a}, {b}) is not inside 0..{}", sc.file_sets[si].count),
            )),
            _ => Ok(()),
        }
    }
}

impl Expect {
    fn validate(&self) -> Result<(), Error> {
        if !["healthy", "contention", "busy_owner", "stuck", "deadlock"]
            .contains(&self.verdict.as_str())
        {
            return Err(field_err(
                "expect.verdict",
                "expected healthy, contention, busy_owner, stuck or deadlock",
            ));
        }
        Ok(())
    }
}
