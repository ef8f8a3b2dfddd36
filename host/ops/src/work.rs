//! Worker specifications: what the workers spawned by an op or a cgroup do.

use serde::{Deserialize, Serialize};

/// What each worker does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
pub enum WorkType {
    /// Spin on the CPU.
    SpinWait,
    /// Call `sched_yield` in a loop.
    YieldHeavy,
    /// Spin, yield and short sleeps mixed.
    Mixed,
    /// Spin for `burst_ms`, sleep for `sleep_ms`, repeat.
    Bursty { burst_ms: u64, sleep_ms: u64 },
    /// Worker pairs wake each other through a futex, spinning `spin_iters` between.
    FutexPingPong { spin_iters: u64 },
    /// One waker wakes `fan_out` waiters per round.
    FutexFanOut { fan_out: u32, spin_iters: u64 },
    /// Worker pairs exchange bursts of `burst_iters` messages over a pipe.
    PipeIo { burst_iters: u64 },
    /// Walk a `size_kib` buffer with `stride` bytes between touches.
    CachePressure { size_kib: u32, stride: u32 },
    /// A chain of `depth` workers, each waking the next: through a futex word, or with
    /// `pipe` through a pipe per hop (one byte); each hop first spins `work_iters`.
    WakeChain {
        depth: u32,
        #[serde(default, skip_serializing_if = "is_false")]
        pipe: bool,
        #[serde(default, skip_serializing_if = "is_zero")]
        work_iters: u64,
    },
    /// Fork a child that exits at once, repeat.
    ForkExit,
    /// Sleep `duration_ms` per iteration (a blocking worker).
    Sleep { duration_ms: u64 },
    /// Block on a futex nobody wakes (a blocking worker).
    WaitOnFutex,
    /// Run the phases in order, repeat.
    Sequence(Vec<Phase>),
    // --- CPU ---
    /// Dependent integer multiply/xor/rotate chains: the ALU busy, no memory traffic.
    AluHot,
    /// Pairs, each pinned to the SMT siblings of one core of its allowed CPUs (core
    /// picked by pair index), both spinning (a lone CPU if a core has no sibling).
    SmtSiblingSpin,
    /// Alternates `phase_ms` of ALU work with `phase_ms` of pointer chasing through a
    /// `size_kib` buffer (high and low instructions per cycle).
    IpcVariance { phase_ms: u64, size_kib: u32 },
    // --- wake paths ---
    /// One waker wakes `fan_out` waiters per round; each computes `compute_iters` and
    /// acknowledges; the waiters record their wake-up latency.
    FanOutCompute { fan_out: u32, compute_iters: u64 },
    /// Pairs: the waker spins `waker_iters` then wakes the wakee, which spins
    /// `wakee_iters` and hands back; the wakee records its wake-up latency.
    AsymmetricWaker { waker_iters: u64, wakee_iters: u64 },
    /// One writer signals an eventfd that `waiters` workers each watch with their own
    /// edge-triggered epoll; every write wakes them all (wake-up latency recorded).
    EpollStorm { waiters: u32 },
    /// One waker wakes `waiters` workers on one futex at once; they race for a single
    /// token and only the winner spins `work_iters` (wake-up latency recorded).
    ThunderingHerd { waiters: u32, work_iters: u64 },
    /// Sleeps `period_us` on an absolute timer and records how late it woke.
    TimerLatency { period_us: u64 },
    // --- benchmarks ---
    /// schbench-style: one message worker wakes `workers` request workers per round,
    /// each handles a request of `request_us` of CPU, then the messenger sleeps
    /// `sleep_us`. Records wake-up latency and request latency (post to done).
    Schbench { workers: u32, request_us: u64, sleep_us: u64 },
    // --- churn ---
    /// Spins and steps its own nice value through -20..=19 every `period_us`.
    NiceSweep { period_us: u64 },
    /// Spins and re-pins itself to another CPU of its allowed set every `period_us`.
    AffinityChurn { period_us: u64 },
    /// Pairs that re-pin each other (not themselves) every `period_us`.
    CrossAffinityChurn { period_us: u64 },
    /// Spins and cycles its own policy (other, batch, idle, fifo 1, rr 1) every
    /// `period_us`.
    PolicyChurn { period_us: u64 },
    /// Spins and, every `period_us`, creates a child cgroup of its own cgroup, moves
    /// itself in, and next period moves back and removes it.
    CgroupChurn { period_us: u64 },
    /// Moves itself between its own cgroup and a child cgroup its spawn shares,
    /// every `period_us` (many workers: many attaches at once).
    CgroupAttachStorm { period_us: u64 },
    // --- contention ---
    /// `contenders` workers share one futex mutex: lock, spin `hold_iters`, unlock,
    /// spin `work_iters` (lock wait recorded as request latency).
    MutexContention { contenders: u32, hold_iters: u64, work_iters: u64 },
    /// Triples on one CPU: a SCHED_FIFO 10 worker holds a lock for `hold_iters`, a FIFO
    /// 30 one takes it, a FIFO 20 one spins. `pi`: a PI futex (the holder is boosted);
    /// otherwise a plain one (the high one can wait behind the middle one). The high
    /// worker records its lock wait as request latency.
    PriorityInversion { pi: bool, hold_iters: u64 },
    /// Pairs on one CPU: a SCHED_FIFO 50 spinner and a normal spinner, which only runs
    /// when the kernel throttles real-time tasks.
    RtStarvation,
    /// Pairs on one CPU: a SCHED_FIFO 50 worker that wakes every `period_us` (recording
    /// its timer lateness) and spins `burst_iters`, preempting a normal spinner.
    PreemptStorm { period_us: u64, burst_iters: u64 },
    /// Pairs: one sends SIGUSR1 to the other in a loop; the other counts what it got.
    SignalStorm,
    /// `producers` workers fill a shared queue (bounded at 1024 items) that `consumers`
    /// workers drain, each item costing `work_iters`.
    ProducerConsumerImbalance { producers: u32, consumers: u32, work_iters: u64 },
    // --- memory ---
    /// Maps `size_kib` of anonymous memory, touches every page, unmaps, repeats.
    PageFaultChurn { size_kib: u32 },
    // --- NUMA (2 or more nodes) ---
    /// Spins over a `size_kib` working set; every `period_ms` pins itself to the CPUs of
    /// the next NUMA node (of those it may use) and moves the working set there with
    /// `move_pages(2)`. One work unit per move.
    NumaMigrationChurn { period_ms: u64, size_kib: u32 },
    /// Binds a `size_kib` working set to one NUMA node after another (`mbind(2)`
    /// MPOL_BIND with MPOL_MF_MOVE) and sweeps it `passes` times on each, from the CPUs
    /// of the first node (local, then remote passes). One work unit per pass.
    NumaWorkingSetSweep { size_kib: u32, passes: u32 },
    // --- block I/O (the guest's null_blk device, `/dev/nullb0`) ---
    /// Writes `block_kib` blocks one after another through the page cache with
    /// `O_DSYNC` (each write waits for the device), in a stripe of the device of its
    /// own. One work unit per write; the write's time is its request latency.
    IoSyncWrite { block_kib: u32 },
    /// Reads `block_kib` blocks at random aligned offsets with `O_DIRECT` (no page
    /// cache: every read goes to the device). One work unit per read; the read's time
    /// is its request latency.
    IoRandRead { block_kib: u32 },
    /// Groups of one writer and `readers` readers: the writer issues `write_kib`
    /// `O_DIRECT|O_DSYNC` writes back to back; the readers issue 4 KiB `O_DIRECT`
    /// random reads that queue behind them. Every worker records each request's time
    /// as request latency (the readers' shows the convoy).
    IoConvoy { readers: u32, write_kib: u32 },
    // --- sleep / cache ---
    /// Spins `spin_iters`, sleeps `sleep_us`, repeats: many short idle entries.
    IdleChurn { spin_iters: u64, sleep_us: u64 },
    /// Walks a `size_kib` buffer, then yields.
    CacheYield { size_kib: u32 },
    /// Pairs that exchange a byte over pipes, each walking its `size_kib` buffer per
    /// turn (the cache goes cold across each wake-up).
    CachePipe { size_kib: u32 },
}

impl WorkType {
    /// Whether the workers act on their own process (move it between cgroups, pass it
    /// descriptors, move its pages), so they cannot be threads of one.
    pub fn needs_own_process(&self) -> bool {
        matches!(
            self,
            WorkType::PipeIo { .. }
                | WorkType::CgroupChurn { .. }
                | WorkType::CgroupAttachStorm { .. }
                | WorkType::NumaMigrationChurn { .. }
                | WorkType::NumaWorkingSetSweep { .. }
        )
    }

    /// Whether the workers do block I/O (they need the guest's block device).
    pub fn is_block_io(&self) -> bool {
        matches!(self, WorkType::IoSyncWrite { .. } | WorkType::IoRandRead { .. } | WorkType::IoConvoy { .. })
    }

    /// Workers per group: pairs, a waker plus its waiters, a chain, contenders, the
    /// priority-inversion triple; 1 otherwise. A spawn's count is a multiple of it.
    pub fn group_size(&self) -> u32 {
        match self {
            WorkType::FutexPingPong { .. }
            | WorkType::PipeIo { .. }
            | WorkType::SmtSiblingSpin
            | WorkType::AsymmetricWaker { .. }
            | WorkType::CrossAffinityChurn { .. }
            | WorkType::RtStarvation
            | WorkType::PreemptStorm { .. }
            | WorkType::SignalStorm
            | WorkType::CachePipe { .. } => 2,
            WorkType::PriorityInversion { .. } => 3,
            WorkType::FutexFanOut { fan_out: n, .. }
            | WorkType::FanOutCompute { fan_out: n, .. }
            | WorkType::EpollStorm { waiters: n }
            | WorkType::ThunderingHerd { waiters: n, .. }
            | WorkType::Schbench { workers: n, .. }
            | WorkType::IoConvoy { readers: n, .. } => n.saturating_add(1),
            WorkType::WakeChain { depth, .. } => *depth,
            WorkType::MutexContention { contenders, .. } => *contenders,
            WorkType::ProducerConsumerImbalance { producers, consumers, .. } => producers.saturating_add(*consumers),
            _ => 1,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One phase of a [`WorkType::Sequence`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    SpinMs(u64),
    SleepMs(u64),
    YieldMs(u64),
}

/// Scheduling policy of each worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
pub enum SchedPolicy {
    Normal,
    Batch,
    Idle,
    Fifo(u8),
    Rr(u8),
    /// SCHED_EXT; needs an attached sched_ext scheduler.
    Ext,
    /// SCHED_DEADLINE: `runtime_us` of CPU every `period_us`, due `deadline_us` after
    /// each period starts (runtime <= deadline <= period). The kernel refuses it for a
    /// task whose allowed CPUs are not a whole root domain (a cpuset or pinned worker)
    /// and when the CPUs' deadline bandwidth is used up.
    Deadline {
        runtime_us: u64,
        deadline_us: u64,
        period_us: u64,
    },
}

/// CPU affinity of each worker, resolved when the op applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
pub enum AffinityIntent {
    Inherit,
    RandomSubset(u32),
    LlcAligned,
    CrossCgroup,
    SingleCpu,
    Exact(Vec<u32>),
    SmtSiblingPair,
}

/// How many workers to start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerCount {
    Count(u32),
    /// Percent of the target cgroup's cpuset size (0 < pct <= 100).
    Pct(f64),
}

/// What a worker is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerMode {
    /// A process of its own (the default).
    #[default]
    Process,
    /// A thread: the workers of one spawn are the threads of one process.
    Thread,
}

impl WorkerMode {
    fn is_process(&self) -> bool {
        *self == WorkerMode::Process
    }
}

/// A set of identical workers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkSpec {
    pub work: WorkType,
    pub workers: WorkerCount,
    pub policy: SchedPolicy,
    pub nice: i8,
    pub affinity: AffinityIntent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// Processes or threads; absent in a stream: processes.
    #[serde(default, skip_serializing_if = "WorkerMode::is_process")]
    pub mode: WorkerMode,
}

impl Default for WorkSpec {
    /// One spin-wait worker, normal policy, nice 0, inherited affinity.
    fn default() -> Self {
        Self {
            work: WorkType::SpinWait,
            workers: WorkerCount::Count(1),
            policy: SchedPolicy::Normal,
            nice: 0,
            affinity: AffinityIntent::Inherit,
            comm: None,
            mode: WorkerMode::Process,
        }
    }
}

impl WorkSpec {
    pub fn work(mut self, work: WorkType) -> Self {
        self.work = work;
        self
    }
    pub fn workers(mut self, n: u32) -> Self {
        self.workers = WorkerCount::Count(n);
        self
    }
    pub fn workers_pct(mut self, pct: f64) -> Self {
        self.workers = WorkerCount::Pct(pct);
        self
    }
    pub fn policy(mut self, policy: SchedPolicy) -> Self {
        self.policy = policy;
        self
    }
    pub fn nice(mut self, nice: i8) -> Self {
        self.nice = nice;
        self
    }
    pub fn affinity(mut self, affinity: AffinityIntent) -> Self {
        self.affinity = affinity;
        self
    }
    pub fn comm(mut self, comm: impl Into<String>) -> Self {
        self.comm = Some(comm.into());
        self
    }
    pub fn mode(mut self, mode: WorkerMode) -> Self {
        self.mode = mode;
        self
    }
}
