//! Constructors and chained setters on the WIT types.
//!
//! Every type here is the one `wit-bindgen` generates from `wit/scenario.wit`;
//! this module only adds inherent constructors, so the WIT stays the single
//! source of truth for the shapes that cross the component boundary.

use std::time::Duration;

use crate::types::{
    AffinityIntent, Bursty, CachePressure, CgroupDef, CpuMax, CpusetSpec, FracRange, FutexFanOut, HoldSpec,
    IrqSelector, KernelTarget, KernelValue, KernelValueWidth, KernelWrite, OverlapPartition, Partition, PayloadRef,
    PerCpuField, Phase, SchedPolicy, SpawnPlacement, TaskField, Topology, WorkSpec, WorkType, WorkerCount,
};

/// A span of time the WIT carries as milliseconds (`millis`).
///
/// Implemented for [`Duration`] (truncated to whole milliseconds, saturating
/// at `u64::MAX`) and for a bare `u64` millisecond count, so both
/// `HoldSpec::fixed(200)` and `HoldSpec::fixed(Duration::from_millis(200))`
/// read naturally.
pub trait IntoMillis {
    /// The span in whole milliseconds.
    fn into_millis(self) -> u64;
}

impl IntoMillis for u64 {
    fn into_millis(self) -> u64 {
        self
    }
}

impl IntoMillis for Duration {
    fn into_millis(self) -> u64 {
        u64::try_from(self.as_millis()).unwrap_or(u64::MAX)
    }
}

// ---------------------------------------------------------------------------
// Cpusets, placement, IRQs
// ---------------------------------------------------------------------------

/// Cpuset constructors, resolved by the host against the guest topology.
///
/// ```rust
/// use schedbox_scenario::prelude::*;
///
/// let halves = [CpusetSpec::disjoint(0, 2), CpusetSpec::disjoint(1, 2)];
/// let first_llc = CpusetSpec::llc(0);
/// let middle = CpusetSpec::range(0.25, 0.75);
/// let pinned = CpusetSpec::exact([0, 2]);
/// # let _ = (halves, first_llc, middle, pinned);
/// ```
impl CpusetSpec {
    /// All CPUs of LLC `index`.
    pub fn llc(index: u32) -> Self {
        CpusetSpec::Llc(index)
    }

    /// All CPUs of NUMA node `index`.
    pub fn numa(index: u32) -> Self {
        CpusetSpec::Numa(index)
    }

    /// The fractional range `[start, end)` of the usable CPUs
    /// (`0 <= start < end <= 1`).
    pub fn range(start: f64, end: f64) -> Self {
        CpusetSpec::Range(FracRange { start, end })
    }

    /// Split the usable CPUs into `of` equal disjoint sets and take set
    /// `index` (`index < of`).
    pub fn disjoint(index: u32, of: u32) -> Self {
        CpusetSpec::Disjoint(Partition { index, of })
    }

    /// Like [`disjoint`](Self::disjoint), each set widened by `frac` of its
    /// size into its neighbours.
    pub fn overlap(index: u32, of: u32, frac: f64) -> Self {
        CpusetSpec::Overlap(OverlapPartition { index, of, frac })
    }

    /// Exactly these CPU ids, with no topology resolution (not empty).
    pub fn exact(cpus: impl IntoIterator<Item = u32>) -> Self {
        CpusetSpec::Exact(cpus.into_iter().collect())
    }
}

impl SpawnPlacement {
    /// The runner's own cgroup (no cgroup ops; `workers_pct` is rejected).
    pub fn runner_cgroup() -> Self {
        SpawnPlacement::RunnerCgroup
    }

    /// A managed cgroup that must already exist when the op applies.
    pub fn cgroup(name: impl Into<String>) -> Self {
        SpawnPlacement::Cgroup(name.into())
    }
}

impl IrqSelector {
    /// The Linux IRQ number (`/proc/irq/<n>`).
    pub fn by_number(irq: u32) -> Self {
        IrqSelector::ByNumber(irq)
    }

    /// The action name: the last token of a `/proc/interrupts` line.
    pub fn by_label(label: impl Into<String>) -> Self {
        IrqSelector::ByLabel(label.into())
    }
}

// ---------------------------------------------------------------------------
// Kernel memory
// ---------------------------------------------------------------------------

/// Kernel address constructors.
///
/// ```rust
/// use schedbox_scenario::prelude::*;
///
/// let jiffies = KernelTarget::symbol("jiffies_64");
/// let rq_clock = KernelTarget::per_cpu_field("runqueues", "clock", 0);
/// let vtime = KernelTarget::task_field(1234, 5_000_000, "scx.dsq_vtime");
/// # let _ = (jiffies, rq_clock, vtime);
/// ```
impl KernelTarget {
    /// A kernel image symbol, resolved KASLR-aware.
    pub fn symbol(name: impl Into<String>) -> Self {
        KernelTarget::Symbol(name.into())
    }

    /// A direct-map KVA, translated as `kva - PAGE_OFFSET`.
    pub fn direct(kva: u64) -> Self {
        KernelTarget::Direct(kva)
    }

    /// Any mapped KVA, translated by a page-table walk.
    pub fn kva(kva: u64) -> Self {
        KernelTarget::Kva(kva)
    }

    /// Field `field` (dot-separated member path, e.g. `clock` or
    /// `scx.clock`) of CPU `cpu`'s instance of the per-CPU struct `symbol`
    /// (`runqueues`, `kernel_cpustat`, `kstat`, `tick_cpu_sched`).
    pub fn per_cpu_field(symbol: impl Into<String>, field: impl Into<String>, cpu: u32) -> Self {
        KernelTarget::PerCpuField(PerCpuField { symbol: symbol.into(), field: field.into(), cpu })
    }

    /// Field `field` of the SCX task `pid`'s `task_struct`, guarded against
    /// PID reuse by `expected_start_time_ns` (`task->start_time` at spawn).
    pub fn task_field(pid: u32, expected_start_time_ns: u64, field: impl Into<String>) -> Self {
        KernelTarget::TaskField(TaskField { pid, expected_start_time_ns, field: field.into() })
    }
}

impl KernelValue {
    /// A 32-bit value.
    pub fn u32(value: u32) -> Self {
        KernelValue::U32(value)
    }

    /// A 64-bit value.
    pub fn u64(value: u64) -> Self {
        KernelValue::U64(value)
    }

    /// Raw bytes.
    pub fn bytes(bytes: impl Into<Vec<u8>>) -> Self {
        KernelValue::Bytes(bytes.into())
    }

    /// Read-modify-write OR of a u32 mask (cold writes only).
    pub fn or_u32(mask: u32) -> Self {
        KernelValue::OrU32(mask)
    }

    /// The value as a `u64`: `U32` and `U64` values, `None` for bytes and
    /// masks.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            KernelValue::U32(v) => Some(u64::from(*v)),
            KernelValue::U64(v) => Some(*v),
            KernelValue::Bytes(_) | KernelValue::OrU32(_) => None,
        }
    }

    /// The value as a `u32`: `U32` values, and `U64` values that fit.
    pub fn as_u32(&self) -> Option<u32> {
        match self {
            KernelValue::U32(v) => Some(*v),
            KernelValue::U64(v) => u32::try_from(*v).ok(),
            KernelValue::Bytes(_) | KernelValue::OrU32(_) => None,
        }
    }

    /// The raw bytes of a `Bytes` value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            KernelValue::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

impl KernelValueWidth {
    /// Read 4 bytes as a `u32`.
    pub fn u32() -> Self {
        KernelValueWidth::U32
    }

    /// Read 8 bytes as a `u64`.
    pub fn u64() -> Self {
        KernelValueWidth::U64
    }

    /// Read exactly `len` bytes (`1..=4096`).
    pub fn bytes(len: u32) -> Self {
        KernelValueWidth::Bytes(len)
    }
}

impl KernelWrite {
    /// Write `value` to `target`.
    pub fn new(target: KernelTarget, value: KernelValue) -> Self {
        KernelWrite { target, value }
    }
}

// ---------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------

/// Worker behaviour constructors, one per WIT `work-type` case.
///
/// ```rust
/// use schedbox_scenario::prelude::*;
/// use std::time::Duration;
///
/// let kinds = [
///     WorkType::spin_wait(),
///     WorkType::bursty(Duration::from_millis(5), 20),
///     WorkType::futex_fan_out(4, 1_000),
///     WorkType::sequence([Phase::spin(10), Phase::sleep(5), Phase::yield_for(1)]),
/// ];
/// # let _ = kinds;
/// ```
impl WorkType {
    /// Spin on the CPU.
    pub fn spin_wait() -> Self {
        WorkType::SpinWait
    }

    /// Call `sched_yield` in a tight loop.
    pub fn yield_heavy() -> Self {
        WorkType::YieldHeavy
    }

    /// A mix of spinning and yielding.
    pub fn mixed() -> Self {
        WorkType::Mixed
    }

    /// Spin for `burst`, sleep for `sleep`, repeat.
    pub fn bursty(burst: impl IntoMillis, sleep: impl IntoMillis) -> Self {
        WorkType::Bursty(Bursty { burst_ms: burst.into_millis(), sleep_ms: sleep.into_millis() })
    }

    /// Pairs of workers waking each other through a futex, spinning
    /// `spin_iters` between wakes.
    pub fn futex_ping_pong(spin_iters: u64) -> Self {
        WorkType::FutexPingPong(spin_iters)
    }

    /// One waker fanning out to `fan_out` futex waiters, spinning
    /// `spin_iters` between rounds.
    pub fn futex_fan_out(fan_out: u32, spin_iters: u64) -> Self {
        WorkType::FutexFanOut(FutexFanOut { fan_out, spin_iters })
    }

    /// Pipe ping-pong, `burst_iters` iterations per burst.
    pub fn pipe_io(burst_iters: u64) -> Self {
        WorkType::PipeIo(burst_iters)
    }

    /// Walk a `size_kib` KiB buffer with the given `stride`.
    pub fn cache_pressure(size_kib: u32, stride: u32) -> Self {
        WorkType::CachePressure(CachePressure { size_kib, stride })
    }

    /// A chain of `depth` workers waking the next one.
    pub fn wake_chain(depth: u32) -> Self {
        WorkType::WakeChain(depth)
    }

    /// Fork a child that exits at once, repeat.
    pub fn fork_exit() -> Self {
        WorkType::ForkExit
    }

    /// Sleep for `period` in a loop.
    pub fn sleep(period: impl IntoMillis) -> Self {
        WorkType::Sleep(period.into_millis())
    }

    /// Block on a futex nobody wakes.
    pub fn wait_on_futex() -> Self {
        WorkType::WaitOnFutex
    }

    /// Run these phases in order, repeatedly.
    pub fn sequence(phases: impl IntoIterator<Item = Phase>) -> Self {
        WorkType::Sequence(phases.into_iter().collect())
    }
}

impl Phase {
    /// Spin for `span`.
    pub fn spin(span: impl IntoMillis) -> Self {
        Phase::Spin(span.into_millis())
    }

    /// Sleep for `span`.
    pub fn sleep(span: impl IntoMillis) -> Self {
        Phase::Sleep(span.into_millis())
    }

    /// Yield repeatedly for `span` (`yield` is a Rust keyword, hence the
    /// name).
    pub fn yield_for(span: impl IntoMillis) -> Self {
        Phase::Yield(span.into_millis())
    }
}

impl AffinityIntent {
    /// Pin each worker to exactly these CPUs.
    pub fn exact(cpus: impl IntoIterator<Item = u32>) -> Self {
        AffinityIntent::Exact(cpus.into_iter().collect())
    }

    /// `count` random CPUs of the cgroup's cpuset.
    pub fn random_subset(count: u32) -> Self {
        AffinityIntent::RandomSubset(count)
    }
}

impl SchedPolicy {
    /// `SCHED_FIFO` at `priority` (`1..=99`).
    pub fn fifo(priority: u8) -> Self {
        SchedPolicy::Fifo(priority)
    }

    /// `SCHED_RR` at `priority` (`1..=99`).
    pub fn rr(priority: u8) -> Self {
        SchedPolicy::Rr(priority)
    }
}

impl Default for WorkSpec {
    /// One spin-wait worker, `SCHED_NORMAL`, nice 0, inherited affinity, no
    /// thread name.
    fn default() -> Self {
        WorkSpec {
            work: WorkType::SpinWait,
            workers: WorkerCount::Count(1),
            policy: SchedPolicy::Normal,
            nice: 0,
            affinity: AffinityIntent::Inherit,
            comm: None,
        }
    }
}

/// Chained setters on a worker specification.
///
/// ```rust
/// use schedbox_scenario::prelude::*;
///
/// let spec = WorkSpec::default()
///     .work(WorkType::yield_heavy())
///     .workers(4)
///     .policy(SchedPolicy::Batch)
///     .nice(5)
///     .affinity(AffinityIntent::LlcAligned)
///     .comm("yielder");
/// assert_eq!(spec.workers, WorkerCount::Count(4));
/// ```
impl WorkSpec {
    /// What each worker does.
    #[must_use]
    pub fn work(mut self, work: WorkType) -> Self {
        self.work = work;
        self
    }

    /// Exactly `count` workers.
    #[must_use]
    pub fn workers(mut self, count: u32) -> Self {
        self.workers = WorkerCount::Count(count);
        self
    }

    /// `pct` percent (`0 < pct <= 100`) of the CPUs in the target cgroup's
    /// cpuset.
    #[must_use]
    pub fn workers_pct(mut self, pct: f64) -> Self {
        self.workers = WorkerCount::Pct(pct);
        self
    }

    /// Scheduling policy of each worker.
    #[must_use]
    pub fn policy(mut self, policy: SchedPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Nice value (`-20..=19`).
    #[must_use]
    pub fn nice(mut self, nice: i8) -> Self {
        self.nice = nice;
        self
    }

    /// CPU affinity of each worker.
    #[must_use]
    pub fn affinity(mut self, affinity: AffinityIntent) -> Self {
        self.affinity = affinity;
        self
    }

    /// Worker thread name (at most 15 bytes).
    #[must_use]
    pub fn comm(mut self, comm: impl Into<String>) -> Self {
        self.comm = Some(comm.into());
        self
    }
}

// ---------------------------------------------------------------------------
// Cgroups
// ---------------------------------------------------------------------------

/// A cgroup definition built with chained setters.
///
/// ```rust
/// use schedbox_scenario::prelude::*;
///
/// let batch = CgroupDef::named("batch")
///     .cpuset(CpusetSpec::llc(1))
///     .cpu_weight(50)
///     .cpu_max(50_000, 100_000)
///     .pids_max(64)
///     .work(WorkSpec::default().work(WorkType::cache_pressure(512, 64)).workers(2))
///     .workers(1); // plus one default spinner
/// assert_eq!(batch.workers.len(), 2);
/// ```
impl CgroupDef {
    /// A cgroup with no knobs, no workers and no payload.
    pub fn named(name: impl Into<String>) -> Self {
        CgroupDef {
            name: name.into(),
            cpuset: None,
            cpuset_mems: None,
            cpu_weight: None,
            cpu_max: None,
            memory_max: None,
            pids_max: None,
            io_weight: None,
            workers: Vec::new(),
            payload: None,
            swappable: false,
        }
    }

    /// `cpuset.cpus`, resolved from the topology.
    #[must_use]
    pub fn cpuset(mut self, spec: CpusetSpec) -> Self {
        self.cpuset = Some(spec);
        self
    }

    /// `cpuset.mems`: these NUMA nodes.
    #[must_use]
    pub fn cpuset_mems(mut self, nodes: impl IntoIterator<Item = u32>) -> Self {
        self.cpuset_mems = Some(nodes.into_iter().collect());
        self
    }

    /// `cpu.weight` (`1..=10000`).
    #[must_use]
    pub fn cpu_weight(mut self, weight: u32) -> Self {
        self.cpu_weight = Some(weight);
        self
    }

    /// `cpu.max`: `quota_us` every `period_us`.
    #[must_use]
    pub fn cpu_max(mut self, quota_us: u64, period_us: u64) -> Self {
        self.cpu_max = Some(CpuMax { quota_us, period_us });
        self
    }

    /// `memory.max` in bytes.
    #[must_use]
    pub fn memory_max(mut self, bytes: u64) -> Self {
        self.memory_max = Some(bytes);
        self
    }

    /// `pids.max`.
    #[must_use]
    pub fn pids_max(mut self, max: u64) -> Self {
        self.pids_max = Some(max);
        self
    }

    /// `io.weight` (`1..=10000`).
    #[must_use]
    pub fn io_weight(mut self, weight: u32) -> Self {
        self.io_weight = Some(weight);
        self
    }

    /// Add a [`WorkSpec::default()`] group of `count` spin workers.
    #[must_use]
    pub fn workers(self, count: u32) -> Self {
        self.work(WorkSpec::default().workers(count))
    }

    /// Add a group of workers.
    #[must_use]
    pub fn work(mut self, spec: WorkSpec) -> Self {
        self.workers.push(spec);
        self
    }

    /// Run the staged payload `name` with `args` in this cgroup.
    #[must_use]
    pub fn payload(mut self, name: impl Into<String>, args: &[&str]) -> Self {
        self.payload = Some(PayloadRef { name: name.into(), args: args.iter().map(|a| (*a).to_owned()).collect() });
        self
    }

    /// Whether a run may override the work type.
    #[must_use]
    pub fn swappable(mut self, swappable: bool) -> Self {
        self.swappable = swappable;
        self
    }
}

// ---------------------------------------------------------------------------
// Holds and topology
// ---------------------------------------------------------------------------

/// Step hold constructors.
///
/// ```rust
/// use schedbox_scenario::prelude::*;
/// use std::time::Duration;
///
/// assert_eq!(HoldSpec::FULL, HoldSpec::frac(1.0));
/// assert_eq!(HoldSpec::fixed(Duration::from_millis(200)), HoldSpec::fixed(200));
/// let churn = HoldSpec::loop_every(Duration::from_millis(50));
/// # let _ = churn;
/// ```
impl HoldSpec {
    /// Hold for the whole scenario duration (`frac(1.0)`).
    pub const FULL: HoldSpec = HoldSpec::Frac(1.0);

    /// Hold for `frac` (`0 < frac <= 1`) of the scenario duration.
    pub fn frac(frac: f64) -> Self {
        HoldSpec::Frac(frac)
    }

    /// Hold for a fixed time: a [`Duration`] or a millisecond count.
    pub fn fixed(span: impl IntoMillis) -> Self {
        HoldSpec::Fixed(span.into_millis())
    }

    /// Re-apply the step's ops every `interval` until the scenario duration
    /// is used (`loop` is a Rust keyword, hence the name).
    pub fn loop_every(interval: impl IntoMillis) -> Self {
        HoldSpec::Loop(interval.into_millis())
    }
}

impl Topology {
    /// `numa_nodes` × `llcs_per_node` × `cores_per_llc` × `threads_per_core`.
    pub fn new(numa_nodes: u32, llcs_per_node: u32, cores_per_llc: u32, threads_per_core: u32) -> Self {
        Topology { numa_nodes, llcs_per_node, cores_per_llc, threads_per_core }
    }

    /// The number of CPUs this shape has.
    pub fn cpus(&self) -> u32 {
        self.numa_nodes
            .saturating_mul(self.llcs_per_node)
            .saturating_mul(self.cores_per_llc)
            .saturating_mul(self.threads_per_core)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_spec_default_matches_contract() {
        let spec = WorkSpec::default();
        assert_eq!(spec.work, WorkType::SpinWait);
        assert_eq!(spec.workers, WorkerCount::Count(1));
        assert_eq!(spec.policy, SchedPolicy::Normal);
        assert_eq!(spec.nice, 0);
        assert_eq!(spec.affinity, AffinityIntent::Inherit);
        assert_eq!(spec.comm, None);
    }

    #[test]
    fn work_spec_setters_chain() {
        let spec = WorkSpec::default()
            .work(WorkType::pipe_io(8))
            .workers_pct(50.0)
            .policy(SchedPolicy::fifo(10))
            .nice(-5)
            .affinity(AffinityIntent::exact([1, 3]))
            .comm("pipe");
        assert_eq!(spec.work, WorkType::PipeIo(8));
        assert_eq!(spec.workers, WorkerCount::Pct(50.0));
        assert_eq!(spec.policy, SchedPolicy::Fifo(10));
        assert_eq!(spec.nice, -5);
        assert_eq!(spec.affinity, AffinityIntent::Exact(vec![1, 3]));
        assert_eq!(spec.comm.as_deref(), Some("pipe"));
    }

    #[test]
    fn cgroup_def_setters_fill_every_knob() {
        let def = CgroupDef::named("cg")
            .cpuset(CpusetSpec::disjoint(1, 2))
            .cpuset_mems([0])
            .cpu_weight(200)
            .cpu_max(10_000, 100_000)
            .memory_max(1 << 30)
            .pids_max(32)
            .io_weight(300)
            .workers(2)
            .work(WorkSpec::default().work(WorkType::fork_exit()))
            .payload("stress", &["--cpu", "1"])
            .swappable(true);
        assert_eq!(def.name, "cg");
        assert_eq!(def.cpuset, Some(CpusetSpec::Disjoint(Partition { index: 1, of: 2 })));
        assert_eq!(def.cpuset_mems, Some(vec![0]));
        assert_eq!(def.cpu_weight, Some(200));
        assert_eq!(def.cpu_max, Some(CpuMax { quota_us: 10_000, period_us: 100_000 }));
        assert_eq!(def.memory_max, Some(1 << 30));
        assert_eq!(def.pids_max, Some(32));
        assert_eq!(def.io_weight, Some(300));
        assert_eq!(def.workers.len(), 2);
        assert_eq!(def.workers[0], WorkSpec::default().workers(2));
        assert_eq!(def.workers[1].work, WorkType::ForkExit);
        let payload = def.payload.unwrap();
        assert_eq!(payload.name, "stress");
        assert_eq!(payload.args, vec!["--cpu".to_owned(), "1".to_owned()]);
        assert!(def.swappable);
    }

    #[test]
    fn millis_accepts_durations_and_counts() {
        assert_eq!(HoldSpec::fixed(Duration::from_millis(1500)), HoldSpec::Fixed(1500));
        assert_eq!(HoldSpec::fixed(7), HoldSpec::Fixed(7));
        assert_eq!(HoldSpec::loop_every(Duration::from_secs(1)), HoldSpec::Loop(1000));
        assert_eq!(HoldSpec::FULL, HoldSpec::Frac(1.0));
        assert_eq!(Duration::MAX.into_millis(), u64::MAX);
        assert_eq!(
            WorkType::bursty(Duration::from_millis(3), 4),
            WorkType::Bursty(Bursty { burst_ms: 3, sleep_ms: 4 })
        );
    }

    #[test]
    fn kernel_constructors() {
        assert_eq!(
            KernelTarget::per_cpu_field("runqueues", "clock", 2),
            KernelTarget::PerCpuField(PerCpuField { symbol: "runqueues".into(), field: "clock".into(), cpu: 2 })
        );
        assert_eq!(KernelValue::u32(7).as_u64(), Some(7));
        assert_eq!(KernelValue::u64(u64::MAX).as_u32(), None);
        assert_eq!(KernelValue::bytes([1u8, 2]).as_bytes(), Some(&[1u8, 2][..]));
        assert_eq!(KernelValue::or_u32(1).as_u64(), None);
        assert_eq!(KernelValueWidth::bytes(16), KernelValueWidth::Bytes(16));
    }

    #[test]
    fn topology_counts_cpus() {
        assert_eq!(Topology::new(1, 2, 2, 1).cpus(), 4);
        assert_eq!(Topology::new(2, 2, 4, 2).cpus(), 32);
    }
}
