# Volatility 3 plugin used by hangscope-lab's fidelity harness
# (crates/lab/tests/volatility.rs): reads ERESOURCEs, threads and IRPs at
# given kernel addresses with the kernel's own symbol table, so the
# harness can compare what Volatility sees with the lab's ground truth.
#
# Run: vol -p crates/lab/tests/vol -r json -f IMG labcheck.LabCheck \
#          --eresources A.. --threads A.. --irps A.. --alpc-messages A..
#          --alpc-ports A.. [--clock]
# (addresses as decimal integers). One row per field read.

from volatility3.framework import constants, exceptions, interfaces, objects, renderers
from volatility3.framework.configuration import requirements
from volatility3.framework.renderers import format_hints

# IRP_MJ_* by function code (wdm.h).
IRP_MAJORS = [
    "IRP_MJ_CREATE", "IRP_MJ_CREATE_NAMED_PIPE", "IRP_MJ_CLOSE", "IRP_MJ_READ",
    "IRP_MJ_WRITE", "IRP_MJ_QUERY_INFORMATION", "IRP_MJ_SET_INFORMATION",
    "IRP_MJ_QUERY_EA", "IRP_MJ_SET_EA", "IRP_MJ_FLUSH_BUFFERS",
    "IRP_MJ_QUERY_VOLUME_INFORMATION", "IRP_MJ_SET_VOLUME_INFORMATION",
    "IRP_MJ_DIRECTORY_CONTROL", "IRP_MJ_FILE_SYSTEM_CONTROL",
    "IRP_MJ_DEVICE_CONTROL", "IRP_MJ_INTERNAL_DEVICE_CONTROL", "IRP_MJ_SHUTDOWN",
    "IRP_MJ_LOCK_CONTROL", "IRP_MJ_CLEANUP", "IRP_MJ_CREATE_MAILSLOT",
    "IRP_MJ_QUERY_SECURITY", "IRP_MJ_SET_SECURITY", "IRP_MJ_POWER",
    "IRP_MJ_SYSTEM_CONTROL", "IRP_MJ_DEVICE_CHANGE", "IRP_MJ_QUERY_QUOTA",
    "IRP_MJ_SET_QUOTA", "IRP_MJ_PNP",
]

# KTHREAD_STATE names (ke.h); not every ISF carries the enum.
THREAD_STATES = [
    "Initialized", "Ready", "Running", "Standby", "Terminated", "Waiting",
    "Transition", "DeferredReady", "GateWaitObsolete", "WaitingForProcessInSwap",
]

# Bound on OwnerTable entries read (real tables are small).
MAX_OWNER_TABLE = 256

# Bound on _KWAIT_CHAIN entries followed (one per shared waiter).
MAX_CHAIN = 4096

# Where every x64 Windows maps _KUSER_SHARED_DATA for the kernel.
KUSER_SHARED_DATA = 0xFFFFF78000000000

# Volatility compares pointers masked to 48 bits; so do these rows.
MASK48 = 0xFFFFFFFFFFFF


class LabCheck(interfaces.plugins.PluginInterface):
    """Reads lab-chosen kernel objects field by field."""

    _required_framework_version = (2, 0, 0)
    _version = (1, 0, 0)

    @classmethod
    def get_requirements(cls):
        return [
            requirements.ModuleRequirement(
                name="kernel",
                description="Windows kernel",
                architectures=["Intel32", "Intel64"],
            ),
            requirements.ListRequirement(
                name="eresources", element_type=int, optional=True, default=[],
                description="ERESOURCE addresses",
            ),
            requirements.ListRequirement(
                name="threads", element_type=int, optional=True, default=[],
                description="ETHREAD addresses",
            ),
            requirements.ListRequirement(
                name="objects", element_type=int, optional=True, default=[],
                description="object body addresses (their _OBJECT_HEADER is read)",
            ),
            requirements.ListRequirement(
                name="irps", element_type=int, optional=True, default=[],
                description="IRP addresses",
            ),
            requirements.BooleanRequirement(
                name="clock", optional=True, default=False,
                description="read KUSER_SHARED_DATA's tick count",
            ),
            requirements.ListRequirement(
                name="alpc_messages", element_type=int, optional=True, default=[],
                description="_KALPC_MESSAGE addresses",
            ),
            requirements.ListRequirement(
                name="alpc_ports", element_type=int, optional=True, default=[],
                description="_ALPC_PORT addresses (their completion queue is read)",
            ),
            requirements.BooleanRequirement(
                name="ready", optional=True, default=False,
                description="read every CPU's ready lists and the shared ready queues",
            ),
            requirements.ListRequirement(
                name="affinities", element_type=int, optional=True, default=[],
                description="ETHREAD addresses whose Tcb.Affinity is read",
            ),
        ]

    def _enum_names(self, kernel, name):
        try:
            enum = self.context.symbol_space.get_enumeration(
                kernel.symbol_table_name + constants.BANG + name
            )
            return {v: k for k, v in enum.choices.items()}
        except exceptions.SymbolError:
            return {}

    @staticmethod
    def _field(obj, *names):
        for n in names:
            if obj.has_member(n):
                return getattr(obj, n)
        raise AttributeError("none of " + ", ".join(names))

    def _rows_eresource(self, kernel, addr):
        r = kernel.object(object_type="_ERESOURCE", offset=addr, absolute=True)
        yield "ActiveCount", int(r.ActiveCount)
        yield "Flag", int(self._field(r, "Flag", "ReservedLowFlags"))
        yield "ContentionCount", int(r.ContentionCount)
        yield "NumberOfSharedWaiters", int(r.NumberOfSharedWaiters)
        yield "NumberOfExclusiveWaiters", int(r.NumberOfExclusiveWaiters)
        owners = []
        first = int(r.OwnerEntry.OwnerThread)
        if first:
            owners.append(first)
        table = int(r.OwnerTable)
        if table:
            entry_size = kernel.get_type("_OWNER_ENTRY").size
            head = kernel.object(object_type="_OWNER_ENTRY", offset=table, absolute=True)
            size = int(self._field(head, "TableSize", "OwnerCount")) & 0xFFFFFFFF
            # The first entry is the table header; owners follow.
            for i in range(1, min(size, MAX_OWNER_TABLE)):
                e = kernel.object(
                    object_type="_OWNER_ENTRY", offset=table + i * entry_size, absolute=True
                )
                t = int(e.OwnerThread)
                if t:
                    owners.append(t)
        yield "Owners", " ".join(hex(o) for o in sorted(owners))
        # Where shared waiters block: a KSEMAPHORE pointer on most builds;
        # on Windows 10 1607 an embedded _KWAIT_CHAIN whose
        # _KWAIT_CHAIN_ENTRYs (Head.Next -> ListEntry.Next ...) each hold
        # one waiter's KEVENT.
        kinds = self._enum_names(kernel, "_KOBJECTS")

        def kind(addr):
            h = kernel.object(object_type="_DISPATCHER_HEADER", offset=addr, absolute=True)
            t = int(h.Type)
            return kinds.get(t, str(t))

        shared = r.SharedWaiters
        events = []
        if isinstance(shared, objects.Pointer):
            yield "SharedWaiters", hex(int(shared) & MASK48)
            if int(shared):
                events.append(int(shared))
        else:
            yield "SharedWaiters", hex(shared.vol.offset & MASK48)
            link = kernel.get_type("_KWAIT_CHAIN_ENTRY").relative_child_offset("ListEntry")
            cur, seen = int(shared.Head.Next), set()
            while cur and cur not in seen and len(events) < MAX_CHAIN:
                seen.add(cur)
                entry = kernel.object(
                    object_type="_KWAIT_CHAIN_ENTRY", offset=cur - link, absolute=True
                )
                events.append(entry.Event.vol.offset)
                cur = int(entry.ListEntry.Next)
        yield "SharedWaitEvents", " ".join(hex(e & MASK48) for e in events)
        yield "SharedWaitEventTypes", " ".join(kind(e) for e in events)

    def _rows_thread(self, kernel, addr, states, reasons):
        t = kernel.object(object_type="_ETHREAD", offset=addr, absolute=True)
        tcb = t.Tcb
        yield "Tid", int(t.Cid.UniqueThread)
        state = int(tcb.State)
        yield "State", states.get(state, str(state))
        reason = int(tcb.WaitReason)
        yield "WaitReason", reasons.get(reason, str(reason))
        yield "WaitTime", int(tcb.WaitTime)
        # The object the first wait block points at (a 1607 shared
        # ERESOURCE waiter's is its own wait-chain entry's event).
        if states.get(state) == "Waiting" and int(tcb.WaitBlockList):
            yield "WaitObject", hex(int(tcb.WaitBlockList.Object) & MASK48)
        # The counters a series of dumps compares (issue 16): they advance
        # only while the thread runs.
        yield "ContextSwitches", int(tcb.ContextSwitches)
        yield "KernelTime", int(tcb.KernelTime)
        yield "UserTime", int(tcb.UserTime)

    def _rows_clock(self, kernel, addr):
        # The dump's own clock: the tick count in KUSER_SHARED_DATA, where
        # a series takes its interval from.
        k = kernel.object(object_type="_KUSER_SHARED_DATA", offset=addr, absolute=True)
        if k.has_member("TickCountQuad"):
            yield "TickCount", int(k.TickCountQuad)
        else:
            tc = k.TickCount
            yield "TickCount", int(tc.LowPart) | (int(tc.High1Time) << 32)

    def _rows_irp(self, kernel, addr):
        irp = kernel.object(object_type="_IRP", offset=addr, absolute=True)
        count = int(irp.StackCount)
        current = int(irp.CurrentLocation)
        yield "StackCount", count
        yield "CurrentLocation", current
        yield "Thread", int(irp.Tail.Overlay.Thread)
        irp_size = kernel.get_type("_IRP").size
        loc_size = kernel.get_type("_IO_STACK_LOCATION").size
        yield "CurrentStackLocation", int(irp.Tail.Overlay.CurrentStackLocation)
        yield "ExpectedCurrentStackLocation", addr + irp_size + (current - 1) * loc_size
        # Locations 1..StackCount follow the IRP; the top driver's is the
        # highest.
        for i in range(1, max(0, min(count, 64)) + 1):
            loc = kernel.object(
                object_type="_IO_STACK_LOCATION",
                offset=addr + irp_size + (i - 1) * loc_size,
                absolute=True,
            )
            major = int(loc.MajorFunction)
            name = IRP_MAJORS[major] if major < len(IRP_MAJORS) else str(major)
            yield f"Location{i}", "{} {} {} {}".format(
                name, int(loc.MinorFunction), hex(int(loc.DeviceObject)), hex(int(loc.FileObject))
            )

    def _rows_alpc_message(self, kernel, addr):
        m = kernel.object(object_type="_KALPC_MESSAGE", offset=addr, absolute=True)
        yield "WaitingThread", hex(int(m.WaitingThread) & MASK48)
        yield "ServerThread", hex(int(m.ServerThread) & MASK48)
        yield "PortQueue", hex(int(m.PortQueue) & MASK48)
        yield "OwnerPort", hex(int(m.OwnerPort) & MASK48)
        yield "QueueType", int(m.u1.s1.QueueType)
        yield "MessageType", hex(int(m.PortMessage.u2.s2.Type))
        port = kernel.object(object_type="_ALPC_PORT", offset=int(m.PortQueue), absolute=True)
        owner = kernel.object(
            object_type="_EPROCESS", offset=int(port.OwnerProcess), absolute=True
        )
        yield "ServerPid", int(owner.UniqueProcessId)
        client = kernel.object(
            object_type="_ETHREAD", offset=int(m.WaitingThread), absolute=True
        )
        yield "ClientAlpcMessage", hex(int(client.AlpcMessage) & MASK48)

    def _rows_alpc_port(self, kernel, addr, kobjects):
        # An LRPC port's I/O completion queue: its dispatcher type, the
        # threads on its ThreadListHead (at most 64, through
        # KTHREAD.QueueListEntry) and whether each one's Tcb.Queue names it.
        port = kernel.object(object_type="_ALPC_PORT", offset=addr, absolute=True)
        q = int(port.CompletionPort)
        yield "CompletionPort", hex(q & MASK48)
        if q == 0:
            return
        kq = kernel.object(object_type="_KQUEUE", offset=q, absolute=True)
        t = int(kq.Header.Type)
        yield "QueueType", kobjects.get(t, str(t))
        link = (kernel.get_type("_ETHREAD").relative_child_offset("Tcb")
                + kernel.get_type("_KTHREAD").relative_child_offset("QueueListEntry"))
        head = q + kernel.get_type("_KQUEUE").relative_child_offset("ThreadListHead")
        threads, back = [], True
        entry = int(kq.ThreadListHead.Flink)
        while entry != head and len(threads) < 64:
            th = kernel.object(object_type="_ETHREAD", offset=entry - link, absolute=True)
            threads.append(entry - link)
            back = back and int(th.Tcb.Queue) == q
            entry = int(kernel.object(object_type="_LIST_ENTRY", offset=entry, absolute=True).Flink)
        yield "QueueThreads", " ".join(hex(x & MASK48) for x in sorted(threads))
        yield "QueueThreadsPointBack", str(back)

    def _ready_lists(self, kernel, heads):
        # The 32 lists of a ready queue, through KTHREAD.WaitListEntry (at
        # most 256 a list): "priority:thread" for each entry.
        link = (kernel.get_type("_ETHREAD").relative_child_offset("Tcb")
                + kernel.get_type("_KTHREAD").relative_child_offset("WaitListEntry"))
        size = kernel.get_type("_LIST_ENTRY").size
        out = []
        for prio in range(32):
            head = heads + prio * size
            entry = int(kernel.object(object_type="_LIST_ENTRY", offset=head, absolute=True).Flink)
            n = 0
            while entry != head and n < 256:
                out.append("%d:%s" % (prio, hex((entry - link) & MASK48)))
                entry = int(kernel.object(object_type="_LIST_ENTRY", offset=entry, absolute=True).Flink)
                n += 1
        return " ".join(sorted(out))

    def _rows_ready(self, kernel, _addr):
        # KiProcessorBlock[0..KeNumberProcessors): each CPU's own ready
        # lists and, from 8.1 on, the shared ready queue it points at.
        # The ISFs give these two symbols no type: a ULONG and an array
        # of _KPRCB pointers.
        n = int(kernel.object(object_type="unsigned long",
                              offset=kernel.get_symbol("KeNumberProcessors").address))
        blocks = kernel.get_symbol("KiProcessorBlock").address
        prcb_t = kernel.get_type("_KPRCB")
        shared = {}
        for i in range(min(n, 64)):
            at = int(kernel.object(object_type="pointer", offset=blocks + 8 * i))
            prcb = kernel.object(object_type="_KPRCB", offset=at, absolute=True)
            heads = at + prcb_t.relative_child_offset("DispatcherReadyListHead")
            yield "Cpu%dReady" % i, self._ready_lists(kernel, heads)
            if prcb.has_member("SharedReadyQueue") and int(prcb.SharedReadyQueue):
                shared.setdefault(int(prcb.SharedReadyQueue), []).append(i)
        for q, cpus in sorted(shared.items()):
            heads = q + kernel.get_type("_KSHARED_READY_QUEUE").relative_child_offset("ReadyListHead")
            yield "SharedCpus", " ".join(str(c) for c in cpus)
            yield "SharedReady", self._ready_lists(kernel, heads)

    def _rows_affinity(self, kernel, addr):
        # Tcb.Affinity: an inline _GROUP_AFFINITY, or (2022, 11) a pointer
        # to a _KAFFINITY_EX whose Bitmap[0] is group 0, NULL for a thread
        # the lab left on every CPU.
        th = kernel.object(object_type="_ETHREAD", offset=addr, absolute=True)
        a = th.Tcb.Affinity
        if a.vol.type_name.endswith("_GROUP_AFFINITY"):
            yield "Affinity", hex(int(a.Mask))
        elif int(a) == 0:
            yield "Affinity", "NULL"
        else:
            ex = a.dereference().cast("_KAFFINITY_EX")
            yield "Affinity", hex(int(ex.Bitmap[0]))

    def _rows_object(self, kernel, body):
        hdr_type = kernel.get_type("_OBJECT_HEADER")
        header = body - hdr_type.relative_child_offset("Body")
        h = kernel.object(object_type="_OBJECT_HEADER", offset=header, absolute=True)
        # The byte as stored: on Windows 10+ it is encoded with the
        # header address and ObHeaderCookie.
        yield "TypeIndex", int(h.TypeIndex)
        yield "HasCookie", kernel.has_symbol("ObHeaderCookie")

    def _generator(self):
        kernel = self.context.modules[self.config["kernel"]]
        states = self._enum_names(kernel, "_KTHREAD_STATE") or dict(enumerate(THREAD_STATES))
        reasons = self._enum_names(kernel, "_KWAIT_REASON")
        jobs = [("ERESOURCE", a, lambda a: self._rows_eresource(kernel, a))
                for a in self.config.get("eresources") or []]
        jobs += [("KTHREAD", a, lambda a: self._rows_thread(kernel, a, states, reasons))
                 for a in self.config.get("threads") or []]
        jobs += [("OBJECT", a, lambda a: self._rows_object(kernel, a))
                 for a in self.config.get("objects") or []]
        jobs += [("IRP", a, lambda a: self._rows_irp(kernel, a))
                 for a in self.config.get("irps") or []]
        jobs += [("ALPC", a, lambda a: self._rows_alpc_message(kernel, a))
                 for a in self.config.get("alpc_messages") or []]
        kobjects = self._enum_names(kernel, "_KOBJECTS")
        jobs += [("ALPC_PORT", a, lambda a: self._rows_alpc_port(kernel, a, kobjects))
                 for a in self.config.get("alpc_ports") or []]
        jobs += [("AFFINITY", a, lambda a: self._rows_affinity(kernel, a))
                 for a in self.config.get("affinities") or []]
        if self.config.get("ready"):
            jobs.append(("READY", 0, lambda a: self._rows_ready(kernel, a)))
        if self.config.get("clock"):
            jobs.append(("KUSER_SHARED_DATA", KUSER_SHARED_DATA,
                         lambda a: self._rows_clock(kernel, a)))
        for kind, addr, rows in jobs:
            try:
                for field, value in rows(addr):
                    yield 0, (kind, format_hints.Hex(addr), field, str(value))
            except (exceptions.InvalidAddressException, AttributeError) as e:
                yield 0, (kind, format_hints.Hex(addr), "Error", str(e))

    def run(self):
        return renderers.TreeGrid(
            [("Kind", str), ("Address", format_hints.Hex), ("Field", str), ("Value", str)],
            self._generator(),
        )
