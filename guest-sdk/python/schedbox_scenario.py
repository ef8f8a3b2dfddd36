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
    "Op", "Outcome", "Phase", "Results", "ScenarioError", "ScenarioInfo", "SchedPolicy",
    "SpawnPlacement", "Step", "StepStatus", "Verdict", "WorkSpec", "WorkType", "emit", "export",
    "ops", "step_metrics", "types",
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


class Checker:
    """Collects failed expectations into a verdict, with the Rust SDK's messages."""

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
