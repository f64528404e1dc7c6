//! A tiny synthetic Linux kernel in a [`SparseMemory`], with its own type
//! table (Volatility ISF, laid out differently from any real kernel so
//! that a reader that hard-coded an offset would fail), for the unit
//! tests and the fuzz targets. Not a model of a real kernel: only what the
//! task walk reads.

use crate::kallsyms::{Kallsyms, KernelSymbol};
use hangscope_symbols::SymbolTable;
use hangscope_x64::SparseMemory;

/// Where the synthetic kernel's objects live.
pub const INIT_TASK: u64 = 0xffff_ffff_8200_0000;
/// First task after `init_task`; each takes [`TASK_STRIDE`] bytes.
pub const TASKS: u64 = 0xffff_8880_0100_0000;
/// Bytes between synthetic tasks.
pub const TASK_STRIDE: u64 = 0x1000;
/// Signal structs, one per process, [`TASK_STRIDE`] apart.
pub const SIGNALS: u64 = 0xffff_8880_0200_0000;
/// Per-CPU area of CPU 0 (CPU n at + n * 0x10000).
pub const PERCPU: u64 = 0xffff_8880_0300_0000;
/// Other globals.
const GLOBALS: u64 = 0xffff_ffff_8210_0000;
/// The per-CPU symbol `runqueues` (an offset into each CPU's area).
const RUNQUEUES: u64 = 0x2000;

// The synthetic layout (not Linux's).
const T_TASKS: u64 = 0x100;
const T_PID: u64 = 0x20;
const T_TGID: u64 = 0x24;
const T_COMM: u64 = 0x40;
pub(crate) const T_STATE: u64 = 0x8;
const T_EXIT: u64 = 0xc;
const T_FLAGS: u64 = 0x10;
const T_PARENT: u64 = 0x60;
const T_CPU: u64 = 0x70;
const T_ONCPU: u64 = 0x74;
const T_ARRIVAL: u64 = 0x80;
const T_NVCSW: u64 = 0x90;
const T_NIVCSW: u64 = 0x98;
const T_SIGNAL: u64 = 0xa0;
const T_THREAD_NODE: u64 = 0xb0;
const T_SWITCH: u64 = 0xc8;
const S_THREAD_HEAD: u64 = 0x18;
pub(crate) const T_STACK: u64 = 0xd0;
/// Where [`set_stack`] puts task stacks (16 KiB each, by task index).
pub const STACKS: u64 = 0xffff_c900_0000_0000;
/// Where the symbol `__mutex_lock` is: a return address into it on a
/// stack says the task sleeps for a mutex.
pub const MUTEX_LOCK_TEXT: u64 = 0xffff_ffff_8100_0000;
/// The one zeroed stack every task has until [`set_stack`].
const SHARED_STACK: u64 = 0xffff_c900_8000_0000;
const RQ_CLOCK: u64 = 0x8;
const RQ_IDLE: u64 = 0x30;

/// The ISF type table of the synthetic kernel.
pub fn isf() -> String {
    let base = |name: &str| format!(r#"{{"kind":"base","name":"{name}"}}"#);
    let ptr =
        |to: &str| format!(r#"{{"kind":"pointer","subtype":{{"kind":"struct","name":"{to}"}}}}"#);
    let st = |name: &str| format!(r#"{{"kind":"struct","name":"{name}"}}"#);
    let field =
        |name: &str, off: u64, ty: String| format!(r#""{name}":{{"offset":{off},"type":{ty}}}"#);
    let task_fields = [
        field("tasks", T_TASKS, st("list_head")),
        field("pid", T_PID, base("int")),
        field("tgid", T_TGID, base("int")),
        field(
            "comm",
            T_COMM,
            r#"{"kind":"array","count":16,"subtype":{"kind":"base","name":"char"}}"#.into(),
        ),
        field("__state", T_STATE, base("unsigned int")),
        field("exit_state", T_EXIT, base("int")),
        field("flags", T_FLAGS, base("unsigned int")),
        field("real_parent", T_PARENT, ptr("task_struct")),
        field("thread_info", T_CPU - 4, st("thread_info")),
        field("on_cpu", T_ONCPU, base("int")),
        field("sched_info", T_ARRIVAL - 8, st("sched_info")),
        field("nvcsw", T_NVCSW, base("unsigned long")),
        field("nivcsw", T_NIVCSW, base("unsigned long")),
        field("signal", T_SIGNAL, ptr("signal_struct")),
        field("thread_node", T_THREAD_NODE, st("list_head")),
        field("last_switch_time", T_SWITCH, base("unsigned long")),
        field("stack", T_STACK, ptr("list_head")),
    ]
    .join(",");
    format!(
        r#"{{"metadata":{{"format":"6.2.0"}},
"base_types":{{
 "int":{{"size":4,"signed":true,"kind":"int","endian":"little"}},
 "unsigned int":{{"size":4,"signed":false,"kind":"int","endian":"little"}},
 "unsigned long":{{"size":8,"signed":false,"kind":"int","endian":"little"}},
 "unsigned long long":{{"size":8,"signed":false,"kind":"int","endian":"little"}},
 "char":{{"size":1,"signed":true,"kind":"char","endian":"little"}},
 "pointer":{{"size":8,"signed":false,"kind":"int","endian":"little"}}}},
"user_types":{{
 "list_head":{{"kind":"struct","size":16,"fields":{{{},{}}}}},
 "thread_info":{{"kind":"struct","size":8,"fields":{{{}}}}},
 "sched_info":{{"kind":"struct","size":16,"fields":{{{}}}}},
 "signal_struct":{{"kind":"struct","size":64,"fields":{{{}}}}},
 "rq":{{"kind":"struct","size":64,"fields":{{{},{}}}}},
 "task_struct":{{"kind":"struct","size":512,"fields":{{{task_fields}}}}},
 {lock_types}}},
"enums":{{}},
"symbols":{{}}}}"#,
        field("next", 8, ptr("list_head")),
        field("prev", 0, ptr("list_head")),
        field("cpu", 4, base("unsigned int")),
        field("last_arrival", 8, base("unsigned long long")),
        field("thread_head", S_THREAD_HEAD, st("list_head")),
        field("clock", RQ_CLOCK, base("unsigned long long")),
        field("idle", RQ_IDLE, ptr("task_struct")),
        lock_types = lock_types(),
    )
}

/// The sleeping locks and their waiter records, in a layout of their own
/// (wait_list not where the kernel has it) so that no offset hides in
/// the reader.
fn lock_types() -> String {
    let f = |name: &str, off: u64, ty: &str| {
        format!(
            r#""{name}":{{"offset":{off},"type":{{"kind":"{ty}","name":"{}"}}}}"#,
            if ty == "struct" {
                "list_head"
            } else {
                "unsigned long"
            }
        )
    };
    let p = |name: &str, off: u64| {
        format!(
            r#""{name}":{{"offset":{off},"type":{{"kind":"pointer","subtype":{{"kind":"struct","name":"task_struct"}}}}}}"#
        )
    };
    let st = |name: &str, size: u64, fields: Vec<String>| {
        format!(
            r#""{name}":{{"kind":"struct","size":{size},"fields":{{{}}}}}"#,
            fields.join(",")
        )
    };
    [
        st(
            "mutex",
            48,
            vec![
                f("owner", 0, "base"),
                f("wait_list", MUTEX_WAIT_LIST, "struct"),
            ],
        ),
        st(
            "mutex_waiter",
            40,
            vec![f("list", 8, "struct"), p("task", 24)],
        ),
        st(
            "rw_semaphore",
            64,
            vec![
                f("count", 0, "base"),
                f("owner", 8, "base"),
                f("wait_list", 40, "struct"),
            ],
        ),
        st(
            "rwsem_waiter",
            40,
            vec![f("list", 8, "struct"), p("task", 24)],
        ),
        st(
            "semaphore",
            32,
            vec![f("count", 4, "base"), f("wait_list", 16, "struct")],
        ),
        st(
            "semaphore_waiter",
            40,
            vec![f("list", 8, "struct"), p("task", 24)],
        ),
    ]
    .join(",")
}

/// Where `mutex.wait_list` sits in the synthetic layout.
pub const MUTEX_WAIT_LIST: u64 = 24;
/// Where `mutex_waiter.list` and `.task` sit in the synthetic layout.
pub const MUTEX_WAITER_LIST: u64 = 8;
/// See [`MUTEX_WAITER_LIST`].
pub const MUTEX_WAITER_TASK: u64 = 24;

/// A fuzz input's damage laid over `m`: patches, each (page index: 1
/// byte, offset in the page: 2 bytes, length: 1 byte, then that many
/// bytes), the index picking among `pages` modulo their count. What is
/// left after the last whole patch header is ignored.
pub fn apply_patches(m: &mut SparseMemory, pages: &[u64], mut data: &[u8]) {
    if pages.is_empty() {
        return;
    }
    while data.len() >= 4 {
        let page = pages[data[0] as usize % pages.len()];
        let off = u64::from(u16::from_le_bytes([data[1], data[2]])) % 4096;
        let len = (data[3] as usize).min(data.len() - 4);
        m.write(page + off, &data[4..4 + len]);
        data = &data[4 + len..];
    }
}

/// Give task `task` a kernel stack at [`STACKS`] + `index` * 16 KiB and
/// return its base.
pub fn set_stack(m: &mut SparseMemory, task: u64, index: u64) -> u64 {
    let base = STACKS + index * 0x4000;
    m.write_u64(task + T_STACK, base);
    m.write(base, &[0u8; 0x4000]);
    base
}

/// Link `nodes` into a ring after `head` (each `list_head` as the
/// synthetic layout has it: prev at 0, next at 8).
pub fn ring(m: &mut SparseMemory, head: u64, nodes: &[u64]) {
    link_ring(m, head, nodes)
}

/// A synthetic process: its threads' (pid, comm, raw state, CPU).
#[derive(Debug, Clone)]
pub struct Process {
    /// Threads, the leader first.
    pub threads: Vec<(i32, &'static str, u32, u32)>,
    /// A kernel thread.
    pub kthread: bool,
}

/// The synthetic kernel: memory, types, symbols, and each task's address.
#[derive(Debug)]
pub struct SynthKernel {
    /// Kernel memory.
    pub mem: SparseMemory,
    /// The type table.
    pub types: SymbolTable,
    /// The symbols.
    pub kallsyms: Kallsyms,
    /// Address of each task in walk order (init_task first).
    pub tasks: Vec<u64>,
}

fn write_list_link(m: &mut SparseMemory, node: u64, next: u64, prev: u64) {
    m.write_u64(node + 8, next);
    m.write_u64(node, prev);
}

/// Link nodes into a circular list headed at `head`.
fn link_ring(m: &mut SparseMemory, head: u64, nodes: &[u64]) {
    let mut all = vec![head];
    all.extend_from_slice(nodes);
    for i in 0..all.len() {
        let next = all[(i + 1) % all.len()];
        let prev = all[(i + all.len() - 1) % all.len()];
        write_list_link(m, all[i], next, prev);
    }
}

/// Build a kernel of two CPUs with these processes after `init_task`.
pub fn build(procs: &[Process]) -> SynthKernel {
    let mut m = SparseMemory::new();
    let types = SymbolTable::from_isf_bytes(isf().as_bytes(), std::path::Path::new("synth.json"))
        .expect("the synthetic ISF parses");
    let mut tasks = vec![INIT_TASK];
    let write_task = |m: &mut SparseMemory,
                      at: u64,
                      pid: i32,
                      tgid: i32,
                      comm: &str,
                      state: u32,
                      cpu: u32,
                      kthread: bool,
                      signal: u64| {
        m.write_u32(at + T_PID, pid as u32);
        m.write_u32(at + T_TGID, tgid as u32);
        let mut c = [0u8; 16];
        c[..comm.len().min(15)].copy_from_slice(&comm.as_bytes()[..comm.len().min(15)]);
        m.write(at + T_COMM, &c);
        m.write_u32(at + T_STATE, state);
        m.write_u32(at + T_FLAGS, if kthread { 0x0020_0000 } else { 0 });
        m.write_u64(at + T_PARENT, INIT_TASK);
        m.write_u32(at + T_CPU, cpu);
        m.write_u64(at + T_ARRIVAL, 1_000_000_000);
        m.write_u64(at + T_NVCSW, 7);
        m.write_u64(at + T_NIVCSW, 3);
        m.write_u64(at + T_SIGNAL, signal);
        // Every live task has a kernel stack; they share one zeroed one
        // until [`set_stack`] gives a task its own.
        m.write_u64(at + T_STACK, SHARED_STACK);
    };
    m.write(SHARED_STACK, &[0u8; 0x4000]);
    write_task(&mut m, INIT_TASK, 0, 0, "swapper/0", 0, 0, true, SIGNALS);
    link_ring(
        &mut m,
        SIGNALS + S_THREAD_HEAD,
        &[INIT_TASK + T_THREAD_NODE],
    );
    let mut leaders = Vec::new();
    let mut next_task = TASKS;
    for (pi, p) in procs.iter().enumerate() {
        let signal = SIGNALS + (pi as u64 + 1) * TASK_STRIDE;
        let tgid = p.threads.first().map_or(0, |t| t.0);
        let mut nodes = Vec::new();
        for (i, &(pid, comm, state, cpu)) in p.threads.iter().enumerate() {
            let at = next_task;
            next_task += TASK_STRIDE;
            write_task(&mut m, at, pid, tgid, comm, state, cpu, p.kthread, signal);
            nodes.push(at + T_THREAD_NODE);
            tasks.push(at);
            if i == 0 {
                leaders.push(at + T_TASKS);
            }
        }
        link_ring(&mut m, signal + S_THREAD_HEAD, &nodes);
    }
    link_ring(&mut m, INIT_TASK + T_TASKS, &leaders);
    // Two CPUs: offsets, runqueues with clocks, idle of CPU 1.
    let idle1 = next_task;
    write_task(&mut m, idle1, 0, 0, "swapper/1", 0, 1, true, SIGNALS);
    for cpu in 0..2u64 {
        let area = PERCPU + cpu * 0x10000;
        m.write_u64(GLOBALS + 0x100 + cpu * 8, area);
        m.write_u64(area + RUNQUEUES + RQ_CLOCK, 5_000_000_000 + cpu);
        m.write_u64(
            area + RUNQUEUES + RQ_IDLE,
            if cpu == 0 { INIT_TASK } else { idle1 },
        );
    }
    m.write_u32(GLOBALS, 2);
    // nr_threads: every task fork made (not init_task, not the idle tasks).
    m.write_u32(GLOBALS + 0x8, tasks.len() as u32 - 1);
    let sym = |name: &str, addr: u64, kind: char| KernelSymbol {
        name: name.into(),
        addr,
        kind,
    };
    let kallsyms = Kallsyms::from_symbols(
        vec![
            sym("init_task", INIT_TASK, 'D'),
            sym("nr_cpu_ids", GLOBALS, 'D'),
            sym("nr_threads", GLOBALS + 0x8, 'D'),
            sym("__per_cpu_offset", GLOBALS + 0x100, 'D'),
            sym("runqueues", RUNQUEUES, 'D'),
            // Code a stack may return into; nothing calls it.
            sym("__mutex_lock", MUTEX_LOCK_TEXT, 'T'),
            sym("__mutex_lock_end", MUTEX_LOCK_TEXT + 0x400, 'T'),
        ],
        None,
    );
    SynthKernel {
        mem: m,
        types,
        kallsyms,
        tasks,
    }
}

/// The list links a damage test may break: (task, its `tasks` node).
pub fn tasks_link(task: u64) -> u64 {
    task + T_TASKS
}

/// The printk layout of Debian's 6.1 kernel as its VMCOREINFO gives it.
pub const PRINTK_VMCOREINFO: &str = "SIZE(printk_ringbuffer)=88
OFFSET(printk_ringbuffer.desc_ring)=0
OFFSET(printk_ringbuffer.text_data_ring)=48
SIZE(prb_desc_ring)=48
OFFSET(prb_desc_ring.count_bits)=0
OFFSET(prb_desc_ring.descs)=8
OFFSET(prb_desc_ring.infos)=16
OFFSET(prb_desc_ring.head_id)=24
OFFSET(prb_desc_ring.tail_id)=32
SIZE(prb_desc)=24
OFFSET(prb_desc.state_var)=0
OFFSET(prb_desc.text_blk_lpos)=8
SIZE(prb_data_blk_lpos)=16
OFFSET(prb_data_blk_lpos.begin)=0
OFFSET(prb_data_blk_lpos.next)=8
SIZE(printk_info)=88
OFFSET(printk_info.seq)=0
OFFSET(printk_info.ts_nsec)=8
OFFSET(printk_info.text_len)=16
SIZE(prb_data_ring)=32
OFFSET(prb_data_ring.size_bits)=0
OFFSET(prb_data_ring.data)=8
SIZE(atomic_long_t)=8
OFFSET(atomic_long_t.counter)=0
";

/// Where the synthetic printk ring buffer lives.
pub const PRB: u64 = 0xffff_ffff_8220_0000;

/// A printk ring buffer of 16 descriptors and 1 KiB of text holding
/// `texts` (oldest first; the ring keeps the last ones that fit), written
/// into `mem`; returns the VMCOREINFO text that describes it and the
/// symbol `prb`.
pub fn write_printk(mem: &mut SparseMemory, texts: &[&str]) -> (String, KernelSymbol) {
    let (count_bits, size_bits) = (4u32, 10u32);
    let (count, size) = (1u64 << count_bits, 1u64 << size_bits);
    let rb = PRB + 0x100;
    let descs = PRB + 0x1000;
    let infos = PRB + 0x2000;
    let data = PRB + 0x4000;
    mem.write_u64(PRB, rb);
    mem.write_u32(rb, count_bits);
    mem.write_u64(rb + 8, descs);
    mem.write_u64(rb + 16, infos);
    mem.write_u32(rb + 48, size_bits);
    mem.write_u64(rb + 56, data);
    let mut lpos = 0u64;
    let mut ids = Vec::new();
    let mut begins = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let id = i as u64;
        let len = (8 + text.len() as u64 + 7) & !7;
        let mut begin = lpos;
        // A block that would cross the end goes to the start of the next lap.
        if begin / size != (begin + len) / size && (begin + len) % size != 0 {
            begin = (begin / size + 1) * size;
        }
        let next = begin + len;
        let at = data + begin % size;
        mem.write_u64(at, id);
        mem.write(at + 8, text.as_bytes());
        let d = descs + (id % count) * 24;
        mem.write_u64(d, (2u64 << 62) | id);
        mem.write_u64(d + 8, begin);
        mem.write_u64(d + 16, next);
        let inf = infos + (id % count) * 88;
        mem.write_u64(inf, id);
        mem.write_u64(inf + 8, id * 1_000_000);
        mem.write(inf + 16, &(text.len() as u16).to_le_bytes());
        lpos = next;
        ids.push(id);
        begins.push(begin);
    }
    // The oldest record whose descriptor and text are both still there.
    let head = ids.last().copied().unwrap_or(0);
    let tail = ids
        .iter()
        .zip(&begins)
        .find(|&(&id, &b)| b + size >= lpos && id + count > head)
        .map_or(head, |(&id, _)| id);
    mem.write_u64(rb + 24, head);
    mem.write_u64(rb + 32, tail);
    (
        format!("SYMBOL(prb)={PRB:x}\n{PRINTK_VMCOREINFO}"),
        KernelSymbol {
            name: "prb".into(),
            addr: PRB,
            kind: 'd',
        },
    )
}
