//! A small builder for synthetic wait-for graph inputs, shared by the tests.
#![allow(dead_code)]

use hangscope_waitgraph::*;

/// Builds a [`WaitGraphInput`] step by step.
#[derive(Debug, Default)]
pub struct Builder {
    pub input: WaitGraphInput,
}

pub const RUNNING: fn(u32) -> ThreadState = |cpu| ThreadState::Running { cpu };

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn process(&mut self, pid: u64, name: &str) -> &mut Self {
        self.input.processes.push(Process {
            address: Addr(0xfffffa80_0a000000 + pid * 0x100),
            pid,
            ppid: 4,
            name: name.to_string(),
            session: Some(1),
        });
        self
    }

    pub fn thread(
        &mut self,
        key: u64,
        tid: u64,
        pid: u64,
        state: ThreadState,
        secs: Option<f64>,
    ) -> &mut Thread {
        let waiting = state == ThreadState::Waiting;
        self.input.threads.push(Thread {
            key,
            tid,
            pid,
            state,
            wait_reason: waiting.then(|| "WrResource".to_string()),
            waited_seconds: secs,
            waited_ticks: secs.map(|s| (s * 64.0) as u64),
            stack: Vec::new(),
            io: Vec::new(),
            user_mode_wait: false,
            warnings: Vec::new(),
        });
        self.input.threads.last_mut().unwrap()
    }

    pub fn resource(
        &mut self,
        key: u64,
        kind: ResourceKind,
        owners: &[(u64, Mode)],
        waiters: &[u64],
    ) -> &mut Resource {
        self.input.resources.push(Resource {
            key,
            kind,
            name: None,
            owners: owners
                .iter()
                .map(|&(thread, mode)| Claim { thread, mode })
                .collect(),
            waiters: waiters
                .iter()
                .map(|&thread| Claim {
                    thread,
                    mode: Mode::Exclusive,
                })
                .collect(),
            contention_count: None,
            warnings: Vec::new(),
        });
        self.input.resources.last_mut().unwrap()
    }

    pub fn file(&mut self, address: u64, path: &str, holders: &[u64]) -> &mut Self {
        self.input.files.push(File {
            address: Addr(address),
            path: path.to_string(),
            device: Some(r"\Device\HarddiskVolume2".to_string()),
            holders: holders.to_vec(),
        });
        self
    }

    pub fn build(&self) -> WaitGraphInput {
        self.input.clone()
    }
}

/// Seed case keys.
pub const R1: u64 = 0xfffff800_02a4c3a0;
pub const R2: u64 = 0xfffffa80_0c1f2e40;
pub const T1: u64 = 0xfffffa80_0b7d2060;
pub const T2: u64 = 0xfffffa80_0b61bb50;
pub const IRP: u64 = 0xfffffa80_0d3e4c10;
pub const FO: u64 = 0xfffffa80_0e000010;

/// The seed case: 20 waiters of about 1 s on R1 (winlogon, LogonUI,
/// svchost), R1 held shared by T1 (svchost) waiting on R2, R2 held
/// exclusively by T2 (php-cgi.exe) running with an Ntfs IRP on
/// \Windows\Temp\sess_x; 2000 sess_* files held by php-cgi.exe; idle
/// threads waiting on events nobody owns; a second, smaller busy owner.
pub fn seed_case() -> WaitGraphInput {
    let mut b = Builder::new();
    b.process(4, "System")
        .process(500, "winlogon.exe")
        .process(612, "LogonUI.exe")
        .process(820, "svchost.exe")
        .process(2000, "php-cgi.exe")
        .process(2100, "explorer.exe");
    let mut waiters = Vec::new();
    for i in 0..20u64 {
        let key = 0xfffffa80_0b800000 + i * 0x400;
        let pid = [500, 612, 820, 820][i as usize % 4];
        b.thread(
            key,
            0x100 + i * 4,
            pid,
            ThreadState::Waiting,
            Some(0.9 + (i as f64) * 0.01),
        );
        waiters.push(key);
    }
    b.thread(T1, 0x3c4, 820, ThreadState::Waiting, Some(1.1))
        .stack = vec![
        "nt!KiSwapContext+0x7a".into(),
        "nt!ExpWaitForResource+0xae".into(),
    ];
    {
        let t2 = b.thread(T2, 0x9a8, 2000, RUNNING(1), None);
        t2.io.push(Io {
            irp: Addr(IRP),
            major: Some("IRP_MJ_CREATE".into()),
            driver: Some(r"\FileSystem\Ntfs".into()),
            device: Some(r"\Device\HarddiskVolume2".into()),
            file_object: Some(Addr(FO)),
            file: Some(r"\Windows\Temp\sess_x".into()),
            ..Io::default()
        });
    }
    b.resource(R1, ResourceKind::Eresource, &[(T1, Mode::Shared)], &waiters)
        .contention_count = Some(123456);
    b.resource(R2, ResourceKind::Eresource, &[(T2, Mode::Exclusive)], &[T1]);
    // A second, smaller busy owner: a mutant held by a ready explorer thread.
    b.thread(0xfffffa80_0f000000, 0x1000, 2100, ThreadState::Ready, None);
    b.thread(
        0xfffffa80_0f000400,
        0x1004,
        2100,
        ThreadState::Waiting,
        Some(0.5),
    );
    b.thread(
        0xfffffa80_0f000800,
        0x1008,
        2100,
        ThreadState::Waiting,
        Some(0.4),
    );
    b.resource(
        0xfffffa80_0f100000,
        ResourceKind::Mutant,
        &[(0xfffffa80_0f000000, Mode::Exclusive)],
        &[0xfffffa80_0f000400, 0xfffffa80_0f000800],
    );
    // Idle threads waiting for a long time on events nobody owns.
    for i in 0..30u64 {
        let key = 0xfffffa80_0a800000 + i * 0x400;
        b.thread(key, 0x2000 + i * 4, 4, ThreadState::Waiting, Some(3000.0));
        b.resource(
            0xfffffa80_0a900000 + i * 0x40,
            ResourceKind::Event,
            &[],
            &[key],
        );
    }
    for i in 0..2000u64 {
        b.file(
            0xfffffa80_10000000 + i * 0x100,
            &format!(r"\Windows\Temp\sess_{i:08x}"),
            &[2000],
        );
    }
    b.file(FO, r"\Windows\Temp\sess_x", &[2000]);
    for i in 0..20u64 {
        b.file(
            0xfffffa80_11000000 + i * 0x100,
            &format!(r"\Windows\System32\config\f{i}"),
            &[4],
        );
    }
    b.build()
}
