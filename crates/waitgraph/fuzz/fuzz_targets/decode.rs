//! Bytes to a wait-for graph input, shaped so that small inputs already
//! make cycles, shared owners, dangling keys, duplicate keys, odd seconds
//! and odd paths: keys come from a small space, every byte is used.
//! Shared by the fuzz targets and by the crate's own tests.

use hangscope_waitgraph::*;

struct Bytes<'a>(std::slice::Iter<'a, u8>);

impl Bytes<'_> {
    fn next(&mut self) -> Option<u8> {
        self.0.next().copied()
    }
    fn or0(&mut self) -> u8 {
        self.next().unwrap_or(0)
    }
}

fn seconds(b: u8) -> Option<f64> {
    match b {
        0 => None,
        1 => Some(f64::NAN),
        2 => Some(f64::INFINITY),
        3 => Some(-1.0),
        4 => Some(f64::MAX),
        b => Some(f64::from(b - 5) * 4.0),
    }
}

const SEGMENTS: [&str; 8] = ["\\", "Windows", "Temp", "sess_", "a1", "\u{e9}", "", "\\\\"];

fn path(b: &mut Bytes<'_>) -> String {
    let n = b.or0() % 6;
    (0..n).map(|_| SEGMENTS[usize::from(b.or0() % 8)]).collect()
}

/// Decode any bytes; never fails.
pub fn decode(data: &[u8]) -> WaitGraphInput {
    let mut b = Bytes(data.iter());
    let mut input = WaitGraphInput::default();
    while let Some(op) = b.next() {
        match op % 6 {
            0 => {
                let key = u64::from(b.or0() % 32);
                let pid = u64::from(b.or0() % 4);
                let state = match b.or0() % 6 {
                    0 => ThreadState::Running { cpu: 0 },
                    1 => ThreadState::Ready,
                    2 => ThreadState::Other {
                        name: "Terminated".into(),
                    },
                    3 => ThreadState::Other {
                        name: "Running".into(),
                    },
                    _ => ThreadState::Waiting,
                };
                let secs = seconds(b.or0());
                input.threads.push(Thread {
                    key,
                    tid: key,
                    pid,
                    state,
                    // Mostly lock waits; some executive waits, which an
                    // unowned object leaves unexplained.
                    wait_reason: Some(
                        if key % 5 == 4 {
                            "Executive"
                        } else {
                            "WrResource"
                        }
                        .into(),
                    ),
                    waited_seconds: secs,
                    waited_ticks: None,
                    stack: vec!["nt!KiSwapContext+0x7a".into()],
                    io: Vec::new(),
                    user_mode_wait: false,
                    warnings: Vec::new(),
                });
            }
            1 => {
                let key = 0x1000 + u64::from(b.or0() % 16);
                let kind = match b.or0() % 6 {
                    0 => ResourceKind::Eresource,
                    1 => ResourceKind::Mutant,
                    2 => ResourceKind::Event,
                    3 => ResourceKind::Semaphore,
                    4 => ResourceKind::AlpcMessage,
                    _ => ResourceKind::Other("<Timer & \"x\">".into()),
                };
                let claims = |b: &mut Bytes<'_>, n: u8| -> Vec<Claim> {
                    (0..n)
                        .map(|_| {
                            let x = b.or0();
                            Claim {
                                thread: u64::from(x % 40),
                                mode: if x & 0x80 != 0 {
                                    Mode::Exclusive
                                } else {
                                    Mode::Shared
                                },
                            }
                        })
                        .collect()
                };
                let no = b.or0() % 4;
                let owners = claims(&mut b, no);
                let nw = b.or0() % 6;
                let waiters = claims(&mut b, nw);
                if kind == ResourceKind::AlpcMessage {
                    // Where the request went: maybe a server thread, maybe
                    // a server process, maybe a client missing from the
                    // thread list.
                    input.alpc.push(AlpcMessage {
                        message: Addr(key),
                        client: waiters
                            .first()
                            .map_or(u64::from(b.or0() % 40), |c| c.thread),
                        port: None,
                        port_name: Some("Port \"x\"".into()),
                        server_pid: (b.or0() & 1 == 0).then(|| u64::from(b.or0() % 4)),
                        server_thread: owners.first().map(|c| c.thread),
                    });
                }
                input.resources.push(Resource {
                    key,
                    kind,
                    name: None,
                    owners,
                    waiters,
                    contention_count: Some(u64::from(b.or0())),
                    warnings: Vec::new(),
                });
            }
            2 => {
                let address = u64::from(b.or0() % 64);
                let p = path(&mut b);
                let holders = (0..b.or0() % 3).map(|_| u64::from(b.or0() % 5)).collect();
                input.files.push(File {
                    address: Addr(address),
                    path: p,
                    device: None,
                    holders,
                });
            }
            3 => {
                let irp = u64::from(b.or0());
                let file = path(&mut b);
                let fo = b.or0();
                if let Some(t) = input.threads.last_mut() {
                    t.io.push(Io {
                        irp: Addr(irp),
                        major: Some("IRP_MJ_CREATE".into()),
                        driver: Some("\\FileSystem\\Ntfs".into()),
                        device: None,
                        file_object: (fo & 1 == 1).then_some(Addr(u64::from(fo % 64))),
                        file: (fo & 2 == 2).then_some(file),
                        // Requests at the bottom of a small set of devices,
                        // some signalling a waited-on object.
                        device_address: (fo & 4 == 4).then_some(Addr(u64::from(fo % 3))),
                        device_stack: Vec::new(),
                        at_bottom: fo & 8 == 8,
                        event: (fo & 16 == 16).then_some(Addr(0x1000 + u64::from(fo % 16))),
                    });
                }
            }
            4 => {
                let pid = u64::from(b.or0() % 5);
                input.processes.push(Process {
                    pid,
                    name: format!("p{pid}<&>.exe"),
                    ..Process::default()
                });
            }
            _ => input.warnings.push(format!("warning {}", b.or0())),
        }
    }
    input
}
