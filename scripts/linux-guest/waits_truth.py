"""drgn's view of the waits guest's dump (scripts/linux-guest/waits-init,
waitdemo.c), the reference hangscope's no-owner and I/O waits are compared
with in the test suite.

usage: drgn -q -c DUMP -s VMLINUX -s waitdemo.ko waits_truth.py OUT.json

Every object is reached from waitdemo's own symbols (DWARF), and its waiters
from the object's own list or tree, the way the kernel wakes them: the
rt_mutex's `waiters` rbtree, the completion's swait list, the wait queue's
list, and the hashed `folio_wait_table` / `bit_wait_table` buckets for the
page and the buffer. hangscope instead starts from each task and finds the
waiter record on its stack, without debug info.
"""
import json
import sys
import time

from drgn import Object, cast, offsetof
from drgn.helpers.linux.fs import inode_path
from drgn.helpers.linux.list import list_for_each_entry
from drgn.helpers.linux.mm import page_to_virt
from drgn.helpers.linux.percpu import per_cpu
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.rbtree import rbtree_inorder_for_each_entry
from drgn.helpers.linux.sched import task_cpu, task_state_to_char

prog = globals()["prog"]
t0 = time.time()


def has_member(obj, name):
    try:
        obj.member_(name)
        return True
    except LookupError:
        return False


def task_rec(t):
    cpu = int(task_cpu(t))
    rec = {
        "address": hex(t.value_()),
        "pid": int(t.pid),
        "comm": t.comm.string_().decode(errors="replace"),
        "state": task_state_to_char(t),
        "last_arrival_ns": int(t.sched_info.last_arrival),
        "rq_clock_ns": int(per_cpu(prog["runqueues"], cpu).clock),
        "stack": [],
    }
    try:
        for f in prog.stack_trace(t):
            rec["stack"].append(f.name or hex(f.pc))
    except Exception as e:  # noqa: BLE001 - recorded, not fatal
        rec["stack_error"] = str(e)
    return rec


tasks = {}
for t in for_each_task(prog):
    c = t.comm.string_().decode(errors="replace")
    if c.startswith("wd_"):
        tasks[c] = task_rec(t)


def pid_of(task):
    return int(task.pid)


# rt_mutex: waiters in the lock's rbtree, owner word with RT_MUTEX_HAS_WAITERS.
rt = prog["waitdemo_rt"]
base = rt.rtmutex if has_member(rt, "rtmutex") else rt
wtype = prog.type("struct rt_mutex_waiter")
member = "tree.entry" if has_member(Object(prog, wtype, address=0), "tree") else "tree_entry"
rt_waiters = [pid_of(w.task) for w in
              rbtree_inorder_for_each_entry(wtype, base.waiters.rb_root.address_of_(), member)]
owner_word = int(cast("unsigned long", base.owner))
rt_owner = Object(prog, "struct task_struct *", value=owner_word & ~3)
rt_rec = {
    "address": hex(rt.address_of_().value_()),
    "owner_word": hex(owner_word),
    "owner_pid": pid_of(rt_owner) if owner_word & ~3 else None,
    "waiters": rt_waiters,
}

# completion: swait_queue entries on its wait list.
done = prog["waitdemo_done"]
comp_rec = {
    "address": hex(done.address_of_().value_()),
    "done": int(done.done),
    "waiters": [pid_of(w.task) for w in
                list_for_each_entry("struct swait_queue", done.wait.task_list.address_of_(), "task_list")],
}

# wait queue: wait_queue_entry with private = the task.
wq = prog["waitdemo_wq"]
wq_rec = {
    "address": hex(wq.address_of_().value_()),
    "waiters": [pid_of(cast("struct task_struct *", e.private)) for e in
                list_for_each_entry("struct wait_queue_entry", wq.head.address_of_(), "entry")],
}

# page: the folio's waiters sit in a hashed bucket of folio_wait_table.
page = prog["waitdemo_page"]
folio = cast("struct folio *", page)
wake_page = prog["wake_page_function"].address_of_().value_()
page_waiters = []
for i, head in enumerate(prog["folio_wait_table"]):
    for e in list_for_each_entry("struct wait_queue_entry", head.head.address_of_(), "entry"):
        if e.func.value_() != wake_page:
            continue
        wpq = Object(prog, "struct wait_page_queue",
                     address=e.value_() - offsetof(prog.type("struct wait_page_queue"), "wait"))
        if wpq.folio.value_() == folio.value_():
            page_waiters.append({"pid": pid_of(cast("struct task_struct *", e.private)),
                                 "bit_nr": int(wpq.bit_nr), "bucket": hex(head.address_of_().value_()),
                                 "record": hex(wpq.address_of_().value_())})
mapping = page.mapping
page_rec = {
    "page": hex(page.value_()),
    "folio": hex(folio.value_()),
    "flags": hex(int(page.flags)),
    "pg_locked": bool(int(page.flags) & (1 << prog.constant("PG_locked").value_())),
    "index": int(page.index),
    "mapping": hex(mapping.value_()),
    "inode": hex(mapping.host.value_()),
    "ino": int(mapping.host.i_ino),
    "path": (inode_path(mapping.host) or b"").decode(errors="replace"),
    "waiters": page_waiters,
}

# buffer: __wait_on_bit_lock's wait_bit_queue_entry keyed by &bh->b_state.
bh = prog["waitdemo_bh"]
wake_bit = prog["wake_bit_function"].address_of_().value_()
state_addr = bh.b_state.address_of_().value_()
bh_waiters = []
for head in prog["bit_wait_table"]:
    for e in list_for_each_entry("struct wait_queue_entry", head.head.address_of_(), "entry"):
        if e.func.value_() != wake_bit:
            continue
        wbq = Object(prog, "struct wait_bit_queue_entry",
                     address=e.value_() - offsetof(prog.type("struct wait_bit_queue_entry"), "wq_entry"))
        if wbq.key.flags.value_() == state_addr:
            bh_waiters.append({"pid": pid_of(cast("struct task_struct *", e.private)),
                               "bit_nr": int(wbq.key.bit_nr), "bucket": hex(head.address_of_().value_()),
                               "record": hex(wbq.address_of_().value_())})
bh_rec = {
    "address": hex(bh.value_()),
    "state": hex(int(bh.b_state)),
    "bdev": hex(bh.b_bdev.value_()),
    "waiters": bh_waiters,
}

out = {
    "tool": "drgn",
    "uts_release": prog["UTS_RELEASE"].string_().decode(),
    "tasks": tasks,
    "rt_mutex": rt_rec,
    "completion": comp_rec,
    "wait_queue": wq_rec,
    "page": page_rec,
    "buffer": bh_rec,
}
out["seconds"] = round(time.time() - t0, 3)
with open(sys.argv[1], "w") as fp:
    json.dump(out, fp, indent=1)
if "--print" in sys.argv:
    print(json.dumps(out, indent=1))
