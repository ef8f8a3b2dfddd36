//! Worker specifications: what the workers spawned by an op or a cgroup do.

use serde::{Deserialize, Serialize};

/// What each worker does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// A chain of `depth` workers, each waking the next.
    WakeChain { depth: u32 },
    /// Fork a child that exits at once, repeat.
    ForkExit,
    /// Sleep `duration_ms` per iteration (a blocking worker).
    Sleep { duration_ms: u64 },
    /// Block on a futex nobody wakes (a blocking worker).
    WaitOnFutex,
    /// Run the phases in order, repeat.
    Sequence(Vec<Phase>),
}

/// One phase of a [`WorkType::Sequence`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    SpinMs(u64),
    SleepMs(u64),
    YieldMs(u64),
}

/// Scheduling policy of each worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchedPolicy {
    Normal,
    Batch,
    Idle,
    Fifo(u8),
    Rr(u8),
    /// SCHED_EXT; needs an attached sched_ext scheduler.
    Ext,
}

/// CPU affinity of each worker, resolved when the op applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[serde(rename_all = "kebab-case")]
pub enum WorkerCount {
    Count(u32),
    /// Percent of the target cgroup's cpuset size (0 < pct <= 100).
    Pct(f64),
}

/// A set of identical workers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkSpec {
    pub work: WorkType,
    pub workers: WorkerCount,
    pub policy: SchedPolicy,
    pub nice: i8,
    pub affinity: AffinityIntent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
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
}
