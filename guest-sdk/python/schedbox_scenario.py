"""schedbox scenarios in Python: defaults for the WIT records and builders
named like the Rust SDK's (`schedbox_scenario`), over the bindings that
`componentize-py -d wit -w scenario bindings` generates (`wit_world`).

A scenario is a class with `describe`, `run` and `check`; `export` turns it
into the `WitWorld` class componentize-py looks for:

    from schedbox_scenario import *

    class CpusetSplit:
        def describe(self):
            return ScenarioInfo.new("cpuset-split", "...").topology(1, 2, 2, 1)

        def run(self):
            emit(Backdrop.new().push_cgroup(CgroupDef.named("left").workers(2)),
                 [Step.new([], HoldSpec.frac(1.0))])

        def check(self, results):
            c = Checker.new()
            c.expect_steps_passed(results)
            return c.verdict()

    WitWorld = export(CpusetSplit)

`run` fails (returns `err` to the host) when it raises `ScenarioError` or
`EmitError`, or returns a string; any other exception traps, and the host
shows its traceback (the guest's stderr) with the trap. The host checks every
op where it is called; `emit` stops at the first rejection and raises an
`EmitError` whose message is the Rust SDK's: `step 1, op 2 (set-cpuset):
disjoint index 2 is not below of=2 — use an index in 0..2`.
"""

from wit_world.imports import metrics, ops, types
from componentize_py_types import Err

__all__ = [
    "AffinityIntent", "Backdrop", "CgroupDef", "Checker", "CpusetSpec", "EmitError", "HoldSpec",
    "IrqSelector", "KernelFeature", "KernelTarget", "KernelValue", "KernelValueWidth", "KernelWrite",
    "LatencyKind", "Op", "Outcome", "Phase", "Results", "ScenarioError", "ScenarioInfo", "SchedPolicy",
    "SpawnPlacement", "Step", "StepStatus", "Verdict", "WorkSpec", "WorkType", "emit", "export",
    "ops", "step_latencies", "step_metrics", "types",
]

Outcome = types.Outcome
StepStatus = types.StepStatus


def _millis(value):
    """A millisecond count: an int, or a float of seconds is not accepted (say ms)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"expected a millisecond count (int >= 0), got {value!r}")
    return value


# ---------------------------------------------------------------------------
# Variant constructors
# ---------------------------------------------------------------------------

class CpusetSpec:
    """How to compute a cpuset from the guest's topology."""

    @staticmethod
    def llc(index):
        return types.CpusetSpec_Llc(index)

    @staticmethod
    def numa(index):
        return types.CpusetSpec_Numa(index)

    @staticmethod
    def range(start, end):
        return types.CpusetSpec_Range(types.FracRange(float(start), float(end)))

    @staticmethod
    def disjoint(index, of):
        return types.CpusetSpec_Disjoint(types.Partition(index, of))

    @staticmethod
    def overlap(index, of, frac):
        return types.CpusetSpec_Overlap(types.OverlapPartition(index, of, float(frac)))

    @staticmethod
    def exact(cpus):
        return types.CpusetSpec_Exact(list(cpus))


class SpawnPlacement:
    @staticmethod
    def runner_cgroup():
        return types.SpawnPlacement_RunnerCgroup()

    @staticmethod
    def cgroup(name):
        return types.SpawnPlacement_Cgroup(name)


class IrqSelector:
    @staticmethod
    def by_number(irq):
        return types.IrqSelector_ByNumber(irq)

    @staticmethod
    def by_label(label):
        return types.IrqSelector_ByLabel(label)


class KernelTarget:
    @staticmethod
    def symbol(name):
        return types.KernelTarget_Symbol(name)

    @staticmethod
    def direct(kva):
        return types.KernelTarget_Direct(kva)

    @staticmethod
    def kva(kva):
        return types.KernelTarget_Kva(kva)

    @staticmethod
    def per_cpu_field(symbol, field, cpu):
        return types.KernelTarget_PerCpuField(types.PerCpuField(symbol, field, cpu))

    @staticmethod
    def task_field(pid, expected_start_time_ns, field):
        return types.KernelTarget_TaskField(types.TaskField(pid, expected_start_time_ns, field))


class KernelValue:
    @staticmethod
    def u32(value):
        return types.KernelValue_U32(value)

    @staticmethod
    def u64(value):
        return types.KernelValue_U64(value)

    @staticmethod
    def bytes(data):
        return types.KernelValue_Bytes(bytes(data))

    @staticmethod
    def or_u32(mask):
        return types.KernelValue_OrU32(mask)

    @staticmethod
    def as_int(value):
        """The number a read returned (`u32` or `u64`), else None."""
        if isinstance(value, (types.KernelValue_U32, types.KernelValue_U64)):
            return value.value
        return None


class KernelValueWidth:
    @staticmethod
    def u32():
        return types.KernelValueWidth_U32()

    @staticmethod
    def u64():
        return types.KernelValueWidth_U64()

    @staticmethod
    def bytes(length):
        return types.KernelValueWidth_Bytes(length)


class KernelWrite:
    @staticmethod
    def new(target, value):
        return types.KernelWrite(target, value)


class WorkType:
    @staticmethod
    def spin_wait():
        return types.WorkType_SpinWait()

    @staticmethod
    def yield_heavy():
        return types.WorkType_YieldHeavy()

    @staticmethod
    def mixed():
        return types.WorkType_Mixed()

    @staticmethod
    def bursty(burst_ms, sleep_ms):
        return types.WorkType_Bursty(types.Bursty(_millis(burst_ms), _millis(sleep_ms)))

    @staticmethod
    def futex_ping_pong(spin_iters):
        return types.WorkType_FutexPingPong(spin_iters)

    @staticmethod
    def futex_fan_out(fan_out, spin_iters):
        return types.WorkType_FutexFanOut(types.FutexFanOut(fan_out, spin_iters))

    @staticmethod
    def pipe_io(burst_iters):
        return types.WorkType_PipeIo(burst_iters)

    @staticmethod
    def cache_pressure(size_kib, stride):
        return types.WorkType_CachePressure(types.CachePressure(size_kib, stride))

    @staticmethod
    def wake_chain(depth):
        return types.WorkType_WakeChain(depth)

    @staticmethod
    def fork_exit():
        return types.WorkType_ForkExit()

    @staticmethod
    def sleep(period_ms):
        return types.WorkType_Sleep(_millis(period_ms))

    @staticmethod
    def wait_on_futex():
        return types.WorkType_WaitOnFutex()

    @staticmethod
    def sequence(phases):
        return types.WorkType_Sequence(list(phases))


class Phase:
    @staticmethod
    def spin(span_ms):
        return types.Phase_Spin(_millis(span_ms))

    @staticmethod
    def sleep(span_ms):
        return types.Phase_Sleep(_millis(span_ms))

    @staticmethod
    def yield_for(span_ms):
        return types.Phase_Yield(_millis(span_ms))


class AffinityIntent:
    Inherit = types.AffinityIntent_Inherit()
    LlcAligned = types.AffinityIntent_LlcAligned()
    CrossCgroup = types.AffinityIntent_CrossCgroup()
    SingleCpu = types.AffinityIntent_SingleCpu()
    SmtSiblingPair = types.AffinityIntent_SmtSiblingPair()

    @staticmethod
    def exact(cpus):
        return types.AffinityIntent_Exact(list(cpus))

    @staticmethod
    def random_subset(count):
        return types.AffinityIntent_RandomSubset(count)


class SchedPolicy:
    Normal = types.SchedPolicy_Normal()
    Batch = types.SchedPolicy_Batch()
    Idle = types.SchedPolicy_Idle()
    Ext = types.SchedPolicy_Ext()

    @staticmethod
    def fifo(priority):
        return types.SchedPolicy_Fifo(priority)

    @staticmethod
    def rr(priority):
        return types.SchedPolicy_Rr(priority)


class KernelFeature:
    SchedExt = types.KernelFeature_SchedExt()
    Btf = types.KernelFeature_Btf()
    CgroupV2 = types.KernelFeature_CgroupV2()


class HoldSpec:
    FULL = types.HoldSpec_Frac(1.0)

    @staticmethod
    def frac(frac):
        return types.HoldSpec_Frac(float(frac))

    @staticmethod
    def fixed(span_ms):
        return types.HoldSpec_Fixed(_millis(span_ms))

    @staticmethod
    def loop_every(interval_ms):
        return types.HoldSpec_Loop(_millis(interval_ms))


# ---------------------------------------------------------------------------
# Records with defaults, built with chained setters
# ---------------------------------------------------------------------------

class WorkSpec:
    """A worker group; `WorkSpec.default()` is one spin-wait worker,
    SCHED_NORMAL, nice 0, inherited affinity, no thread name."""

    def __init__(self):
        self._r = types.WorkSpec(
            work=types.WorkType_SpinWait(),
            workers=types.WorkerCount_Count(1),
            policy=types.SchedPolicy_Normal(),
            nice=0,
            affinity=types.AffinityIntent_Inherit(),
            comm=None,
        )

    @staticmethod
    def default():
        return WorkSpec()

    def work(self, work):
        self._r.work = work
        return self

    def workers(self, count):
        self._r.workers = types.WorkerCount_Count(count)
        return self

    def workers_pct(self, pct):
        self._r.workers = types.WorkerCount_Pct(float(pct))
        return self

    def policy(self, policy):
        self._r.policy = policy
        return self

    def nice(self, nice):
        self._r.nice = nice
        return self

    def affinity(self, affinity):
        self._r.affinity = affinity
        return self

    def comm(self, comm):
        self._r.comm = comm
        return self

    def build(self):
        """The WIT record (`types.WorkSpec`)."""
        return self._r


def _record(value):
    """A builder's WIT record, or the record itself."""
    return value.build() if hasattr(value, "build") else value


class CgroupDef:
    """A cgroup with its knobs and workload; `CgroupDef.named(name)` has none."""

    def __init__(self, name):
        self._r = types.CgroupDef(
            name=name, cpuset=None, cpuset_mems=None, cpu_weight=None, cpu_max=None, memory_max=None,
            pids_max=None, io_weight=None, workers=[], payload=None, swappable=False,
        )

    @staticmethod
    def named(name):
        return CgroupDef(name)

    def cpuset(self, spec):
        self._r.cpuset = spec
        return self

    def cpuset_mems(self, nodes):
        self._r.cpuset_mems = list(nodes)
        return self

    def cpu_weight(self, weight):
        self._r.cpu_weight = weight
        return self

    def cpu_max(self, quota_us, period_us):
        self._r.cpu_max = types.CpuMax(quota_us, period_us)
        return self

    def memory_max(self, max_bytes):
        self._r.memory_max = max_bytes
        return self

    def pids_max(self, max_pids):
        self._r.pids_max = max_pids
        return self

    def io_weight(self, weight):
        self._r.io_weight = weight
        return self

    def workers(self, count):
        """Add a `WorkSpec.default()` group of `count` spin workers."""
        return self.work(WorkSpec.default().workers(count))

    def work(self, spec):
        self._r.workers.append(_record(spec))
        return self

    def payload(self, name, args=()):
        self._r.payload = types.PayloadRef(name, list(args))
        return self

    def swappable(self, swappable):
        self._r.swappable = swappable
        return self

    def build(self):
        """The WIT record (`types.CgroupDef`)."""
        return self._r


class ScenarioInfo:
    """`ScenarioInfo.new(name, summary)`: 1 node x 1 LLC x 2 cores x 1 thread,
    no kernel features, payloads or schedulers, lasting 3000 ms."""

    def __init__(self, name, summary):
        self._r = types.ScenarioInfo(
            name=name, summary=summary, topology=types.Topology(1, 1, 2, 1), kernel_features=[],
            payloads=[], schedulers=[], duration_ms=3000,
        )

    @staticmethod
    def new(name, summary):
        return ScenarioInfo(name, summary)

    def topology(self, numa_nodes, llcs_per_node, cores_per_llc, threads_per_core):
        self._r.topology = types.Topology(numa_nodes, llcs_per_node, cores_per_llc, threads_per_core)
        return self

    def needs(self, feature):
        if feature not in self._r.kernel_features:
            self._r.kernel_features.append(feature)
        return self

    def payload(self, name):
        self._r.payloads.append(name)
        return self

    def scheduler(self, name):
        self._r.schedulers.append(name)
        return self

    def duration(self, duration_ms):
        self._r.duration_ms = _millis(duration_ms)
        return self

    def build(self):
        """The WIT record (`types.ScenarioInfo`)."""
        return self._r


# ---------------------------------------------------------------------------
# Ops and the stream
# ---------------------------------------------------------------------------

class Op:
    """One op: its WIT name and the import call that emits it."""

    def __init__(self, wit_name, call, *args):
        self.wit_name = wit_name
        self._call = call
        self._args = args

    def __repr__(self):
        return f"Op({self.wit_name}{self._args!r})"

    def call(self):
        """Calls this op's import now; raises `componentize_py_types.Err(OpError)` when rejected."""
        self._call(*self._args)

    @staticmethod
    def add_cgroup(name):
        return Op("add-cgroup", ops.add_cgroup, name)

    @staticmethod
    def add_cgroup_def(definition):
        return Op("add-cgroup-def", ops.add_cgroup_def, _record(definition))

    @staticmethod
    def remove_cgroup(cgroup):
        return Op("remove-cgroup", ops.remove_cgroup, cgroup)

    @staticmethod
    def set_cpuset(cgroup, cpus):
        return Op("set-cpuset", ops.set_cpuset, cgroup, cpus)

    @staticmethod
    def clear_cpuset(cgroup):
        return Op("clear-cpuset", ops.clear_cpuset, cgroup)

    @staticmethod
    def swap_cpusets(a, b):
        return Op("swap-cpusets", ops.swap_cpusets, a, b)

    @staticmethod
    def freeze_cgroup(cgroup):
        return Op("freeze-cgroup", ops.freeze_cgroup, cgroup)

    @staticmethod
    def unfreeze_cgroup(cgroup):
        return Op("unfreeze-cgroup", ops.unfreeze_cgroup, cgroup)

    @staticmethod
    def capture_cgroup_procs(tag, cgroup):
        return Op("capture-cgroup-procs", ops.capture_cgroup_procs, tag, cgroup)

    @staticmethod
    def spawn(placement, work):
        return Op("spawn", ops.spawn, placement, _record(work))

    @staticmethod
    def stop_cgroup(cgroup):
        return Op("stop-cgroup", ops.stop_cgroup, cgroup)

    @staticmethod
    def set_affinity(cgroup, affinity):
        return Op("set-affinity", ops.set_affinity, cgroup, affinity)

    @staticmethod
    def move_all_tasks(from_, to):
        return Op("move-all-tasks", ops.move_all_tasks, from_, to)

    @staticmethod
    def run_payload(name, args=(), cgroup=None):
        return Op("run-payload", ops.run_payload, name, list(args), cgroup)

    @staticmethod
    def wait_payload(name):
        return Op("wait-payload", ops.wait_payload, name, None)

    @staticmethod
    def wait_payload_in_cgroup(name, cgroup):
        return Op("wait-payload", ops.wait_payload, name, cgroup)

    @staticmethod
    def kill_payload(name):
        return Op("kill-payload", ops.kill_payload, name, None)

    @staticmethod
    def kill_payload_in_cgroup(name, cgroup):
        return Op("kill-payload", ops.kill_payload, name, cgroup)

    @staticmethod
    def capture_snapshot(name):
        return Op("capture-snapshot", ops.capture_snapshot, name)

    @staticmethod
    def watch_snapshot(symbol):
        return Op("watch-snapshot", ops.watch_snapshot, symbol)

    @staticmethod
    def write_kernel_hot(target, value):
        return Op("write-kernel-hot", ops.write_kernel_hot, [types.KernelWrite(target, value)])

    @staticmethod
    def write_kernel_hot_batch(writes):
        return Op("write-kernel-hot", ops.write_kernel_hot, list(writes))

    @staticmethod
    def write_kernel_cold(target, value):
        return Op("write-kernel-cold", ops.write_kernel_cold, [types.KernelWrite(target, value)])

    @staticmethod
    def write_kernel_cold_batch(writes):
        return Op("write-kernel-cold", ops.write_kernel_cold, list(writes))

    @staticmethod
    def read_kernel_hot(tag, target, width):
        return Op("read-kernel-hot", ops.read_kernel_hot, tag, target, width)

    @staticmethod
    def read_kernel_cold(tag, target, width):
        return Op("read-kernel-cold", ops.read_kernel_cold, tag, target, width)

    @staticmethod
    def attach_scheduler(name):
        return Op("attach-scheduler", ops.attach_scheduler, name)

    @staticmethod
    def detach_scheduler():
        return Op("detach-scheduler", ops.detach_scheduler)

    @staticmethod
    def restart_scheduler():
        return Op("restart-scheduler", ops.restart_scheduler)

    @staticmethod
    def replace_scheduler(name):
        return Op("replace-scheduler", ops.replace_scheduler, name)

    @staticmethod
    def pin_bpf_map(name):
        return Op("pin-bpf-map", ops.pin_bpf_map, name)

    @staticmethod
    def steer_irq(irq, cpu):
        return Op("steer-irq", ops.steer_irq, irq, cpu)

    @staticmethod
    def steer_irq_cpus(irq, cpus):
        return Op("steer-irq-cpus", ops.steer_irq_cpus, irq, list(cpus))

    @staticmethod
    def spawn_work(placement, work):
        """`spawn-work` with a `types.WorkSpecV2` record (no builders here yet)."""
        return Op("spawn-work", ops.spawn_work, placement, work)

    @staticmethod
    def spawn_threads(placement, work):
        """`spawn-threads`: `spawn_work` with the workers threads of one process."""
        return Op("spawn-threads", ops.spawn_threads, placement, work)


class Step:
    """Setup cgroups (created when the step opens, removed at its teardown), ops, then a hold."""

    def __init__(self, ops_, hold, setup=()):
        self.setup = [_record(d) for d in setup]
        self.ops = list(ops_)
        self.hold = hold

    @staticmethod
    def new(ops_, hold):
        return Step(ops_, hold)

    @staticmethod
    def with_defs(defs, ops_, hold):
        return Step(ops_, hold, defs)

    @staticmethod
    def with_op(op, hold):
        return Step([op], hold)

    def push_op(self, op):
        self.ops.append(op)
        return self

    def push_cgroup(self, definition):
        self.setup.append(_record(definition))
        return self


class Backdrop:
    """Cgroups that persist for the whole scenario and setup ops applied once before the first step."""

    def __init__(self):
        self.cgroups = []
        self.ops = []

    @staticmethod
    def new():
        return Backdrop()

    def push_cgroup(self, definition):
        self.cgroups.append(_record(definition))
        return self

    def push_op(self, op):
        self.ops.append(op)
        return self

    def is_empty(self):
        return not self.cgroups and not self.ops


class ScenarioError(Exception):
    """Raised from `run`: the scenario fails with this message (`err` to the host)."""


class EmitError(ScenarioError):
    """A call the host rejected, located in the stream (the Rust SDK's `emit` message)."""

    def __init__(self, place, op_index, call, error):
        self.place, self.op_index, self.call, self.error = place, op_index, call, error
        where = f"{place}, op {op_index} ({call})" if op_index is not None else f"{place} ({call})"
        message = f"{where}: {error.message.strip()}"
        if error.fix.strip():
            message += f" — {error.fix.strip()}"
        super().__init__(message)


def _op_error(e):
    value = e.value if isinstance(e, Err) else None
    return value if isinstance(value, types.OpError) else types.OpError(str(e), "")


def emit(backdrop, steps):
    """Emits the stream: `open-backdrop`, its ops, `close-backdrop` (none for an
    empty Backdrop), then for each step `open-step`, its ops and `close-step`.
    Raises `EmitError` at the first call the host rejects."""

    def structure(place, call, f, *args):
        try:
            f(*args)
        except Err as e:
            raise EmitError(place, None, call, _op_error(e)) from None

    def run_ops(place, ops_):
        for i, op in enumerate(ops_):
            try:
                op.call()
            except Err as e:
                raise EmitError(place, i, op.wit_name, _op_error(e)) from None

    if not backdrop.is_empty():
        structure("backdrop", "open-backdrop", ops.open_backdrop, backdrop.cgroups)
        run_ops("backdrop", backdrop.ops)
        structure("backdrop", "close-backdrop", ops.close_backdrop)
    for i, step in enumerate(steps):
        place = f"step {i}"
        structure(place, "open-step", ops.open_step, step.setup)
        run_ops(place, step.ops)
        structure(place, "close-step", ops.close_step, step.hold)


# ---------------------------------------------------------------------------
# Results and verdicts
# ---------------------------------------------------------------------------

class Results:
    """The executed stream's results (`types.Results`) with look-ups by tag."""

    def __init__(self, raw):
        self.raw = raw
        self.steps = raw.steps
        self.snapshots = raw.snapshots
        self.cgroup_procs_list = raw.cgroup_procs
        self.kernel_reads = raw.kernel_reads
        self.workers = raw.workers
        self.payloads = raw.payloads

    def procs(self, tag):
        c = self.cgroup_procs(tag)
        return None if c is None else c.pids

    def cgroup_procs(self, tag):
        return next((c for c in self.raw.cgroup_procs if c.tag == tag), None)

    def kernel_read(self, tag):
        return next((r.value for r in self.raw.kernel_reads if r.tag == tag), None)

    def worker_metrics(self, cgroup):
        return next((m for m in self.raw.workers if m.cgroup == cgroup), None)

    def step(self, index):
        return next((s for s in self.raw.steps if s.index == index), None)

    def all_steps_passed(self):
        return bool(self.raw.steps) and all(s.status == StepStatus.PASSED for s in self.raw.steps)

    def unpassed_steps(self):
        return [s for s in self.raw.steps if s.status != StepStatus.PASSED]

    def snapshot(self, name):
        return next((s for s in self.raw.snapshots if s.name == name), None)

    def payload_exit(self, name):
        return next((p for p in self.raw.payloads if p.name == name), None)

    @staticmethod
    def cpus_seen(metrics):
        """The CPUs a `worker-metrics` record's workers were seen on at least once."""
        return {c.cpu for c in metrics.cpus if c.count > 0}


def step_metrics():
    """The step metrics of the run `check` judges (`metrics.steps()`): one entry per step that
    reached its end, in step order, read in the guest after the step's hold and before its
    teardown. Empty outside `check`. Each call copies them: call it once per `check`."""
    return metrics.steps()


def step_latencies():
    """The latencies of every worker of `step_metrics()`, in the same order (step, then its
    workers): `metrics.latencies()`, records with `step`, `cgroup`, `tid`, and `wake` and
    `request` (each `None` or a latency with `samples`, `p50_ns`, `p90_ns`, `p99_ns`, `max_ns`,
    cumulative since the worker started). Empty outside `check`."""
    return metrics.latencies()


class LatencyKind:
    """Which latency `Checker.expect_latency_bound` judges."""
    WAKE = "wake"
    REQUEST = "request"


class Verdict:
    @staticmethod
    def pass_():
        return types.Verdict(Outcome.PASS, [])

    @staticmethod
    def fail(message):
        return types.Verdict(Outcome.FAIL, [message])

    @staticmethod
    def skip(message):
        return types.Verdict(Outcome.SKIP, [message])


def _debug(value):
    """A value as the Rust SDK's `{:?}` prints it (numbers, strings, lists)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_debug(v) for v in value) + "]"
    return str(value)


def _fnum(x):
    """A number as the Rust SDK's `{}` prints an f64 bound (2.0 as `2`, no exponent)."""
    if isinstance(x, int):
        return str(x)
    if x != x:
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    if x == int(x):
        return str(int(x))
    r = repr(x)
    if "e" in r:
        import decimal
        return format(decimal.Decimal(r), "f")
    return r


def _ratio_text(r):
    return f"{r:.2f}" if r == r and r not in (float("inf"), float("-inf")) else "inf"


def _cpu_list(cpus):
    return ",".join(str(c) for c in cpus)


def _previous(steps, i, w):
    """`w`'s counters at the end of the step before `steps[i]`, or None."""
    if i == 0:
        return None
    return next((x for x in steps[i - 1].workers if x.tid == w.tid), None)


def _units_in_step(steps, i, w):
    p = _previous(steps, i, w)
    return w.work_units if p is None else max(w.work_units - p.work_units, 0)


def _wall_in_step(steps, i, w):
    p = _previous(steps, i, w)
    return w.wall_time_ns if p is None else max(w.wall_time_ns - p.wall_time_ns, 0)


def _cpus_in_step(steps, i, w):
    p = _previous(steps, i, w)
    before = {} if p is None else {c.cpu: c.count for c in p.cpus}
    return [c.cpu for c in w.cpus if c.count > before.get(c.cpu, 0)]


def _step_cgroup(step, name):
    return next((c for c in step.cgroups if c.name == name), None)


def _workers_of(step, cgroup):
    return [w for w in step.workers if w.cgroup == cgroup]


def _step_index(steps, step):
    return next((i for i, s in enumerate(steps) if s.step == step), None)


def _latency_of(latencies, step, tid, kind):
    for l in latencies:
        if l.step == step and l.tid == tid:
            return l.wake if kind == LatencyKind.WAKE else l.request
    return None


class Checker:
    """Collects failed expectations into a verdict, with the Rust SDK's messages.

    The `expect_*` assertions on the step metrics (`step_metrics()`) have the Rust SDK's
    names, semantics and messages: each judges the per-step differences of the cumulative
    counters (a worker is followed by its tid from one step's end to the next), records one
    failure per offending cgroup, worker and step with the numbers, and returns whether
    everything held. None passes on missing data.
    """

    def __init__(self):
        self.failures = []

    @staticmethod
    def new():
        return Checker()

    def expect(self, cond, message):
        if not cond:
            self.failures.append(message)
        return bool(cond)

    def expect_eq(self, what, got, want):
        return self.expect(got == want, f"{what}: got {_debug(got)}, want {_debug(want)}")

    def expect_steps_passed(self, results):
        steps = results.steps if isinstance(results, Results) else results.steps
        if not steps:
            self.fail("no step results")
            return False
        ok = True
        words = {StepStatus.PASSED: "passed", StepStatus.FAILED: "failed", StepStatus.SKIPPED: "was skipped"}
        for s in steps:
            if s.status != StepStatus.PASSED:
                ok = False
                why = s.error if s.error is not None else "no error given"
                self.fail(f"step {s.index} {words[s.status]}: {why}")
        return ok

    def fail(self, message):
        self.failures.append(message)

    def _steps_with(self, steps, cgroup, what):
        with_ = [i for i, s in enumerate(steps) if _step_cgroup(s, cgroup) is not None]
        if not with_:
            self.fail(f"{what}: cgroup `{cgroup}` is in no step's metrics ({len(steps)} steps)")
        return with_

    def expect_isolation(self, steps, cgroup):
        """In every step where `cgroup` lived, each of its workers ran only on CPUs of its
        resolved cpuset (`cpus_effective` at that step's end, or at the previous step's end)."""
        with_ = self._steps_with(steps, cgroup, "isolation")
        if not with_:
            return False
        ok = True
        for i in with_:
            cg = _step_cgroup(steps[i], cgroup)
            allowed = set(cg.cpus_effective)
            prev = _step_cgroup(steps[i - 1], cgroup) if i > 0 else None
            if prev is not None:
                allowed |= set(prev.cpus_effective)
            for w in _workers_of(steps[i], cgroup):
                outside = [c for c in _cpus_in_step(steps, i, w) if c not in allowed]
                if outside:
                    ok = False
                    self.fail(f"isolation: step {steps[i].step}, cgroup `{cgroup}`, worker {w.tid}: ran on CPUs "
                              f"{_cpu_list(outside)} outside its cpuset {_cpu_list(cg.cpus_effective)}")
        return ok

    def expect_not_starved(self, steps, cgroup, max_gap_ns):
        """In every step where `cgroup` lived, each of its live workers did some work, and none
        had a gap between two iterations longer than `max_gap_ns`."""
        with_ = self._steps_with(steps, cgroup, "not starved")
        if not with_:
            return False
        ok = True
        for i in with_:
            step = steps[i].step
            live = [w for w in _workers_of(steps[i], cgroup) if w.alive]
            if not live:
                ok = False
                self.fail(f"not starved: step {step}, cgroup `{cgroup}`: no live worker")
            for w in live:
                if _units_in_step(steps, i, w) == 0:
                    ok = False
                    self.fail(f"not starved: step {step}, cgroup `{cgroup}`, worker {w.tid}: no work done in the "
                              f"step ({w.work_units} units in all)")
                if w.max_gap_ns > max_gap_ns:
                    ok = False
                    self.fail(f"not starved: step {step}, cgroup `{cgroup}`, worker {w.tid}: a gap of "
                              f"{w.max_gap_ns} ns (bound {max_gap_ns} ns) ending on CPU {w.max_gap_cpu} at "
                              f"{w.max_gap_at_ns} ns")
        return ok

    def expect_fairness(self, steps, step, cgroup, max_ratio):
        """In step `step`, the work units each live worker of `cgroup` did in that step are
        within `max_ratio` of each other (most / fewest <= max_ratio)."""
        i = _step_index(steps, step)
        if i is None:
            self.fail(f"fairness: no metrics for step {step} ({len(steps)} steps)")
            return False
        units = [(w.tid, _units_in_step(steps, i, w)) for w in _workers_of(steps[i], cgroup) if w.alive]
        if len(units) < 2:
            self.fail(f"fairness: step {step}, cgroup `{cgroup}`: {len(units)} live worker(s), need at least 2 "
                      "to compare")
            return False
        lo, hi = units[0], units[0]
        for u in units[1:]:
            # The first fewest and the last most, as the Rust SDK picks them.
            if u[1] < lo[1]:
                lo = u
            if u[1] >= hi[1]:
                hi = u
        ratio = float("inf") if lo[1] == 0 else hi[1] / lo[1]
        return self.expect(ratio <= max_ratio,
                           f"fairness: step {step}, cgroup `{cgroup}`: worker {hi[0]} did {hi[1]} units, worker "
                           f"{lo[0]} {lo[1]} (ratio {_ratio_text(ratio)}, bound {_fnum(max_ratio)})")

    def expect_phase_ratio(self, steps, cgroup, a, b, lo, hi):
        """`cgroup`'s throughput (work units per second, summed over its workers) in step `b`
        divided by that in step `a` lies in lo..=hi."""
        def rate(step):
            i = _step_index(steps, step)
            if i is None:
                self.fail(f"phase ratio: no metrics for step {step} ({len(steps)} steps)")
                return None
            workers = _workers_of(steps[i], cgroup)
            wall = max((_wall_in_step(steps, i, w) for w in workers), default=0)
            if not workers or wall == 0:
                self.fail(f"phase ratio: step {step}, cgroup `{cgroup}`: no workers to measure")
                return None
            return sum(_units_in_step(steps, i, w) for w in workers) / (wall / 1e9)
        ra, rb = rate(a), rate(b)
        if ra is None or rb is None:
            return False
        ratio = float("inf") if ra == 0 else rb / ra
        return self.expect(lo <= ratio <= hi,
                           f"phase ratio: cgroup `{cgroup}`: step {b} did {rb:.0f} units/s, step {a} {ra:.0f} "
                           f"units/s (ratio {_ratio_text(ratio)}, want {_fnum(lo)}..={_fnum(hi)})")

    def expect_latency_bound(self, steps, latencies, cgroup, kind, max_p99_ns):
        """In every step where `cgroup` lived, each of its live workers measured `kind`
        (`LatencyKind.WAKE` or `.REQUEST`) latency during that step (its sample count grew since
        the previous step's end) and its p99 (cumulative since the worker started) is at most
        `max_p99_ns`. A worker with no such latency fails. `latencies`: `step_latencies()`."""
        with_ = self._steps_with(steps, cgroup, "latency bound")
        if not with_:
            return False
        ok = True
        for i in with_:
            step = steps[i].step
            live = [w for w in _workers_of(steps[i], cgroup) if w.alive]
            if not live:
                ok = False
                self.fail(f"latency bound: step {step}, cgroup `{cgroup}`: no live worker")
            for w in live:
                l = _latency_of(latencies, step, w.tid, kind)
                if l is None:
                    ok = False
                    self.fail(f"latency bound: step {step}, cgroup `{cgroup}`, worker {w.tid}: no {kind} latency "
                              "measured")
                    continue
                p = _latency_of(latencies, steps[i - 1].step, w.tid, kind) if i > 0 else None
                if l.samples <= (0 if p is None else p.samples):
                    ok = False
                    self.fail(f"latency bound: step {step}, cgroup `{cgroup}`, worker {w.tid}: no {kind} latency "
                              f"samples in the step ({l.samples} in all)")
                if l.p99_ns > max_p99_ns:
                    ok = False
                    self.fail(f"latency bound: step {step}, cgroup `{cgroup}`, worker {w.tid}: {kind} p99 "
                              f"{l.p99_ns} ns (bound {max_p99_ns} ns; p50 {l.p50_ns} ns, p90 {l.p90_ns} ns, max "
                              f"{l.max_ns} ns, {l.samples} samples since it started)")
        return ok

    def expect_scheduler_attached(self, steps, first, last, ops=None):
        """At the end of every step in first..=last, sched_ext is `enabled` and, when `ops` is
        given, `root/ops` names it."""
        ok = True
        for step in range(first, last + 1):
            i = _step_index(steps, step)
            if i is None:
                self.fail(f"scheduler attached: no metrics for step {step} ({len(steps)} steps)")
                ok = False
                continue
            s = steps[i]
            if s.sched_ext_state != "enabled" or (ops is not None and ops != s.sched_ext_ops):
                ok = False
                want = ", want enabled" if ops is None else f", want enabled with {_debug(ops)}"
                self.fail(f"scheduler attached: step {step}: sched_ext {_debug(s.sched_ext_state)} with ops "
                          f"{_debug(s.sched_ext_ops)}{want}")
        return ok

    def is_ok(self):
        return not self.failures

    def verdict(self):
        if not self.failures:
            return types.Verdict(Outcome.PASS, [])
        return types.Verdict(Outcome.FAIL, list(self.failures))


def export(scenario_class):
    """The `WitWorld` class componentize-py exports, calling `scenario_class`'s
    `describe`, `run` and `check` and converting builders to WIT records."""
    scenario = scenario_class()

    class WitWorld:
        def describe(self):
            return _record(scenario.describe())

        def run(self):
            try:
                failed = scenario.run()
            except ScenarioError as e:
                raise Err(str(e)) from None
            if isinstance(failed, str):
                raise Err(failed)

        def check(self, results):
            return _record(scenario.check(Results(results)))

    return WitWorld
