"""drgn's view of the flood guest (issue 12, the Linux seed case): the hot
directory's i_rwsem, its owner word and reader count, its waiters, the
tasks on each CPU and whether they hold the lock inside the directory walk,
the directory's children in the dcache, and who holds files open in it.

usage: drgn -q -c DUMP -s VMLINUX flood_truth.py DIR OUT.json [--check]

With --check it exits 3 unless the dump shows the expected state: the
directory has at least FLOOD_MIN_FILES (default 30000) positive children,
the lock is held by readers, it has waiters, and at least one CPU runs a
reader inside the directory walk that has the directory open. The recipe
dumps again until this holds (scripts/linux-guest.sh).
"""
import json
import os
import sys
import time

from drgn import FaultError
from drgn.helpers.linux.cpumask import for_each_online_cpu
from drgn.helpers.linux.fs import for_each_file, path_lookup
from drgn.helpers.linux.list import hlist_for_each_entry, list_for_each_entry
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.sched import cpu_curr, task_since_last_arrival_ns

prog = globals()["prog"]
t0 = time.time()
dir_path, out_path = sys.argv[1], sys.argv[2]
check = "--check" in sys.argv[3:]
MIN_FILES = int(os.environ.get("FLOOD_MIN_FILES", "30000"))
# Functions of the directory walk under iterate_dir (6.1: dcache_readdir,
# scan_positives; 6.6+: offset_readdir for tmpfs), and iterate_dir itself.
WALK = ("iterate_dir", "dcache_readdir", "scan_positives", "offset_readdir",
        "offset_iterate_dir", "filldir64")
# Taking or releasing the lock: at its end iterate_dir is in up_read, waking
# the waiters, after the lock is free.
LOCKING = ("up_read", "rwsem_wake", "down_read", "down_read_killable",
           "__down_read_common", "rwsem_down_read_slowpath", "rwsem_optimistic_spin")


def has_member(obj, name):
    try:
        obj.member_(name)
        return True
    except LookupError:
        return False


def frames(task):
    try:
        return [f.name or hex(f.pc) for f in prog.stack_trace(task)]
    except (FaultError, ValueError) as e:
        return [f"<{e}>"]


dentry = path_lookup(prog, dir_path).dentry
inode = dentry.d_inode
sem = inode.i_rwsem

# The directory's children in the dcache: d_subdirs/d_child before 6.8,
# the d_children/d_sib hlist after.
if has_member(dentry, "d_subdirs"):
    children = list_for_each_entry("struct dentry", dentry.d_subdirs.address_of_(), "d_child")
    layout = "d_subdirs/d_child"
else:
    children = hlist_for_each_entry("struct dentry", dentry.d_children.address_of_(), "d_sib")
    layout = "d_children/d_sib"
total = positive = 0
child_set = set()
for c in children:
    total += 1
    if c.d_inode.value_():
        positive += 1
        child_set.add(c.value_())

owner = int(sem.owner.counter) & 0xffffffffffffffff
count = int(sem.count.counter) & 0xffffffffffffffff
waiters = []
for w in list_for_each_entry("struct rwsem_waiter", sem.wait_list.address_of_(), "list"):
    t = w.task
    waiters.append({
        "task": hex(t.value_()),
        "pid": int(t.pid),
        "comm": t.comm.string_().decode(errors="replace"),
        # enum rwsem_waiter_type: RWSEM_WAITING_FOR_WRITE = 0, _READ = 1
        "type": "read" if int(w.type) == 1 else "write",
        # rq clock - sched_info.last_arrival: how long it has been off the CPU
        "since_last_arrival_ns": int(task_since_last_arrival_ns(t)),
        "stack": frames(t),
    })

# Open files: the directory itself (listers) and files in it (creators).
dir_open_by = set()
holders = {}
file_faults = []
for t in for_each_task(prog):
    if int(t.pid) != int(t.tgid):
        continue
    n = 0
    try:
        files = list(for_each_file(t))
    except FaultError as e:
        file_faults.append(f"pid {int(t.pid)}: fd table: {e}")
        continue
    for fd, f in files:
        # A file being opened or closed at dump time can hold junk; skip it.
        try:
            d = f.f_path.dentry.value_()
            if f.f_inode.value_() == inode.value_():
                dir_open_by.add(int(t.tgid))
            elif d in child_set:
                n += 1
        except FaultError as e:
            file_faults.append(f"pid {int(t.pid)} fd {fd}: {e}")
    if n:
        holders[str(int(t.tgid))] = {"comm": t.comm.string_().decode(errors="replace"), "files": n}

cpus = []
for cpu in for_each_online_cpu(prog):
    t = cpu_curr(prog, cpu)
    st = frames(t)
    in_walk = (any(any(fn.startswith(w) for w in WALK[1:]) for fn in st)
               and "iterate_dir" in st
               and not any(fn in LOCKING for fn in st))
    cpus.append({
        "cpu": cpu,
        "task": hex(t.value_()),
        "pid": int(t.pid),
        "comm": t.comm.string_().decode(errors="replace"),
        "stack": st,
        "in_walk": in_walk,
        "has_dir_open": int(t.tgid) in dir_open_by,
    })

reader_owned = bool(owner & 1) and not (count & 1)
holding_cpus = [c for c in cpus if c["in_walk"] and c["has_dir_open"]] if count >> 8 else []
out = {
    "tool": "drgn",
    "dir": dir_path,
    "dentry": hex(dentry.value_()),
    "inode": hex(inode.value_()),
    "ino": int(inode.i_ino),
    "i_size": int(inode.i_size),
    "children_layout": layout,
    "children": total,
    "positive_children": positive,
    "lock": {
        "address": hex(sem.address_of_().value_()),
        "owner_raw": hex(owner),
        "count_raw": hex(count),
        "reader_owned": reader_owned,
        "writer_locked": bool(count & 1),
        "readers": count >> 8,
        "waiters": waiters,
    },
    "cpus": cpus,
    "holders_on_cpu": [c["pid"] for c in holding_cpus],
    "dir_open_by": sorted(dir_open_by),
    "file_holders": holders,
    "file_faults": file_faults,
    "seconds": round(time.time() - t0, 3),
}
problems = []
if positive < MIN_FILES:
    problems.append(f"{positive} files < {MIN_FILES}")
if not reader_owned or not count >> 8:
    problems.append(f"lock not held by readers (owner {owner:#x} count {count:#x})")
if not waiters:
    problems.append("no waiters")
if not holding_cpus:
    problems.append("no CPU runs a reader inside the walk: " +
                    "; ".join(f"cpu{c['cpu']} {c['comm']} {c['stack'][:4]}" for c in cpus))
out["expected_state"] = not problems
out["problems"] = problems
with open(out_path, "w") as fp:
    json.dump(out, fp, indent=1)
print(f"drgn flood truth: {positive} files ({layout}), lock {owner:#x}/{count:#x}, "
      f"{len(waiters)} waiters, readers on CPUs {out['holders_on_cpu']}, "
      f"{'as expected' if not problems else 'NOT as expected: ' + '; '.join(problems)} "
      f"in {out['seconds']} s")
if check and problems:
    sys.exit(3)
