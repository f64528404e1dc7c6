"""drgn's view of a Linux guest dump, as the reference hangscope's Linux
model is compared with in the test suite.

usage: drgn -q -c DUMP -s VMLINUX [-s MODULE.ko] drgn_truth.py OUT.json

It records what issue 11 asks hangscope to agree on exactly (every task's
pid, tgid, comm, state letter and CPU; the module list; the printk records)
plus the fields hangscope shows beside them, so a disagreement can be
explained. Everything comes from drgn's own helpers, with the debug vmlinux.
"""
import json
import sys
import time

from drgn import FaultError
from drgn.helpers.linux.module import for_each_module, module_address_regions
from drgn.helpers.linux.pid import for_each_task
from drgn.helpers.linux.printk import get_printk_records
from drgn.helpers.linux.sched import task_cpu, task_state_to_char

prog = globals()["prog"]
t0 = time.time()


def has_member(obj, name):
    try:
        obj.member_(name)
        return True
    except LookupError:
        return False


def task_record(t):
    rec = {
        "address": hex(t.value_()),
        "pid": int(t.pid),
        "tgid": int(t.tgid),
        "comm": t.comm.string_().decode(errors="replace"),
        "state": task_state_to_char(t),
        "cpu": int(task_cpu(t)),
        "kthread": bool(int(t.flags) & 0x00200000),  # PF_KTHREAD
        "on_cpu": int(t.on_cpu),
        "nvcsw": int(t.nvcsw),
        "nivcsw": int(t.nivcsw),
        "last_arrival_ns": int(t.sched_info.last_arrival),
    }
    try:
        rec["ppid"] = int(t.real_parent.tgid)
    except FaultError:
        rec["ppid"] = None
    if has_member(t, "last_switch_time"):
        rec["last_switch_time"] = int(t.last_switch_time)
    return rec


tasks = [task_record(t) for t in for_each_task(prog)]
modules = []
for m in for_each_module(prog):
    regions = module_address_regions(m)
    modules.append({
        "address": hex(m.value_()),
        "name": m.name.string_().decode(errors="replace"),
        "regions": [[hex(a), int(s)] for a, s in regions if s],
    })
records = get_printk_records(prog)
dmesg = [{"seq": r.seq, "timestamp_ns": r.timestamp, "level": r.level,
          "text": r.text.decode(errors="replace")} for r in records]

out = {
    "tool": "drgn",
    "uts_release": prog["UTS_RELEASE"].string_().decode(),
    "jiffies_64": int(prog["jiffies_64"].value_()),
    "tasks": tasks,
    "modules": modules,
    "dmesg": dmesg,
    "seconds": None,
}
out["seconds"] = round(time.time() - t0, 3)
with open(sys.argv[1], "w") as fp:
    json.dump(out, fp, indent=1)
print(f"drgn truth: {len(tasks)} tasks, {len(modules)} modules, "
      f"{len(dmesg)} printk records in {out['seconds']} s")
