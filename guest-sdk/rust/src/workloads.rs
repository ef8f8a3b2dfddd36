//! Builders for `spawn-work`: the workload families and the SCHED_DEADLINE policy
//! added within contract 0.1 ([`Op::spawn_work`](crate::Op::spawn_work)).
//!
//! ```rust
//! use schedbox_scenario::prelude::*;
//!
//! let spec = WorkSpecV2::new(Work::timer_latency(1000)).workers(2);
//! let rt = WorkSpecV2::new(Work::spin_wait()).policy(Policy::deadline(2000, 10_000, 10_000));
//! let op = Op::spawn_work(SpawnPlacement::cgroup("cg"), spec);
//! # let _ = (rt, op);
//! ```

use crate::ops::{
    AsymmetricWaker, Deadline, FanOutCompute, IdleChurn, IpcVariance, MutexContention, Policy, PreemptStorm,
    PriorityInversion, ProducerConsumer, Schbench, ThunderingHerd, WakeChainWork, Work, WorkSpecV2,
};
use crate::types::{AffinityIntent, SchedPolicy, WorkSpec, WorkType, WorkerCount};

/// One constructor per `work` case (see the README's work-type table for each one's
/// group size and what it measures).
impl Work {
    /// Any work type of `spawn`.
    pub fn base(work: WorkType) -> Self {
        Work::Base(work)
    }
    /// Spin on the CPU (`base(spin-wait)`).
    pub fn spin_wait() -> Self {
        Work::Base(WorkType::SpinWait)
    }
    /// Dependent multiply/rotate/xor chains.
    pub fn alu_hot() -> Self {
        Work::AluHot
    }
    /// Pairs pinned to the SMT siblings of one core, spinning.
    pub fn smt_sibling_spin() -> Self {
        Work::SmtSiblingSpin
    }
    /// `phase_ms` of ALU work, then `phase_ms` chasing pointers through `size_kib`.
    pub fn ipc_variance(phase_ms: u64, size_kib: u32) -> Self {
        Work::IpcVariance(IpcVariance { phase_ms, size_kib })
    }
    /// One waker, `fan_out` waiters computing `compute_iters` per wake-up.
    pub fn fan_out_compute(fan_out: u32, compute_iters: u64) -> Self {
        Work::FanOutCompute(FanOutCompute { fan_out, compute_iters })
    }
    /// Pairs: the waker spins `waker_iters`, the wakee `wakee_iters`.
    pub fn asymmetric_waker(waker_iters: u64, wakee_iters: u64) -> Self {
        Work::AsymmetricWaker(AsymmetricWaker { waker_iters, wakee_iters })
    }
    /// One eventfd writer, `waiters` edge-triggered epoll waiters.
    pub fn epoll_storm(waiters: u32) -> Self {
        Work::EpollStorm(waiters)
    }
    /// One waker, `waiters` racing for one token; the winner spins `work_iters`.
    pub fn thundering_herd(waiters: u32, work_iters: u64) -> Self {
        Work::ThunderingHerd(ThunderingHerd { waiters, work_iters })
    }
    /// An absolute timer every `period_us`, recording the lateness.
    pub fn timer_latency(period_us: u64) -> Self {
        Work::TimerLatency(period_us)
    }
    /// A wake chain `depth` long, through pipes when `pipe`, `work_iters` per hop.
    pub fn wake_chain(depth: u32, pipe: bool, work_iters: u64) -> Self {
        Work::WakeChain(WakeChainWork { depth, pipe, work_iters })
    }
    /// schbench: `workers` request workers per message worker.
    pub fn schbench(workers: u32, request_us: u64, sleep_us: u64) -> Self {
        Work::Schbench(Schbench { workers, request_us, sleep_us })
    }
    /// Step the nice value through -20..=19 every `period_us`.
    pub fn nice_sweep(period_us: u64) -> Self {
        Work::NiceSweep(period_us)
    }
    /// Re-pin itself to another allowed CPU every `period_us`.
    pub fn affinity_churn(period_us: u64) -> Self {
        Work::AffinityChurn(period_us)
    }
    /// Pairs re-pinning each other every `period_us`.
    pub fn cross_affinity_churn(period_us: u64) -> Self {
        Work::CrossAffinityChurn(period_us)
    }
    /// Cycle the policy every `period_us`.
    pub fn policy_churn(period_us: u64) -> Self {
        Work::PolicyChurn(period_us)
    }
    /// Make, enter, leave and remove a child cgroup every `period_us`.
    pub fn cgroup_churn(period_us: u64) -> Self {
        Work::CgroupChurn(period_us)
    }
    /// Move between its cgroup and a shared child cgroup every `period_us`.
    pub fn cgroup_attach_storm(period_us: u64) -> Self {
        Work::CgroupAttachStorm(period_us)
    }
    /// `contenders` workers on one futex mutex.
    pub fn mutex_contention(contenders: u32, hold_iters: u64, work_iters: u64) -> Self {
        Work::MutexContention(MutexContention { contenders, hold_iters, work_iters })
    }
    /// FIFO 10/20/30 triples on one CPU sharing a lock (PI when `pi`).
    pub fn priority_inversion(pi: bool, hold_iters: u64) -> Self {
        Work::PriorityInversion(PriorityInversion { pi, hold_iters })
    }
    /// Pairs on one CPU: a FIFO 50 spinner and a normal spinner.
    pub fn rt_starvation() -> Self {
        Work::RtStarvation
    }
    /// Pairs on one CPU: a FIFO 50 worker waking every `period_us` for `burst_iters`.
    pub fn preempt_storm(period_us: u64, burst_iters: u64) -> Self {
        Work::PreemptStorm(PreemptStorm { period_us, burst_iters })
    }
    /// Pairs: one sends SIGUSR1 to the other in a loop.
    pub fn signal_storm() -> Self {
        Work::SignalStorm
    }
    /// `producers` and `consumers` of one bounded queue, `work_iters` per item.
    pub fn producer_consumer_imbalance(producers: u32, consumers: u32, work_iters: u64) -> Self {
        Work::ProducerConsumerImbalance(ProducerConsumer { producers, consumers, work_iters })
    }
    /// Map, touch and unmap `size_kib`, repeatedly.
    pub fn page_fault_churn(size_kib: u32) -> Self {
        Work::PageFaultChurn(size_kib)
    }
    /// Every `period_ms`, pin to the next NUMA node's CPUs and move a `size_kib`
    /// working set there (`move_pages`); needs 2 or more nodes.
    pub fn numa_migration_churn(period_ms: u64, size_kib: u32) -> Self {
        Work::NumaMigrationChurn(crate::ops::NumaMigrationChurn { period_ms, size_kib })
    }
    /// Bind a `size_kib` working set to each NUMA node in turn (`mbind`) and sweep it
    /// `passes` times there; needs 2 or more nodes.
    pub fn numa_working_set_sweep(size_kib: u32, passes: u32) -> Self {
        Work::NumaWorkingSetSweep(crate::ops::NumaWorkingSetSweep { size_kib, passes })
    }
    /// `O_DSYNC` writes of `block_kib` KiB (a multiple of 4) to the guest's null_blk
    /// device, sequential in a stripe of its own; each write's time is request latency.
    pub fn io_sync_write(block_kib: u32) -> Self {
        Work::IoSyncWrite(block_kib)
    }
    /// `O_DIRECT` reads of `block_kib` KiB (a multiple of 4) at random offsets of the
    /// guest's null_blk device; each read's time is request latency.
    pub fn io_rand_read(block_kib: u32) -> Self {
        Work::IoRandRead(block_kib)
    }
    /// Groups of one writer of `write_kib` `O_DIRECT|O_DSYNC` blocks and `readers` 4 KiB
    /// random readers queued behind it (spawn a multiple of `readers + 1` workers).
    pub fn io_convoy(readers: u32, write_kib: u32) -> Self {
        Work::IoConvoy(crate::ops::IoConvoy { readers, write_kib })
    }
    /// Spin `spin_iters`, sleep `sleep_us`, repeatedly.
    pub fn idle_churn(spin_iters: u64, sleep_us: u64) -> Self {
        Work::IdleChurn(IdleChurn { spin_iters, sleep_us })
    }
    /// Walk `size_kib`, then yield.
    pub fn cache_yield(size_kib: u32) -> Self {
        Work::CacheYield(size_kib)
    }
    /// Pairs passing a byte over pipes, walking `size_kib` per turn.
    pub fn cache_pipe(size_kib: u32) -> Self {
        Work::CachePipe(size_kib)
    }
}

impl From<WorkType> for Work {
    fn from(w: WorkType) -> Self {
        Work::Base(w)
    }
}

impl Policy {
    /// SCHED_DEADLINE: `runtime_us` every `period_us`, due `deadline_us` into it.
    pub fn deadline(runtime_us: u64, deadline_us: u64, period_us: u64) -> Self {
        Policy::Deadline(Deadline { runtime_us, deadline_us, period_us })
    }
}

impl From<SchedPolicy> for Policy {
    fn from(p: SchedPolicy) -> Self {
        Policy::Base(p)
    }
}

impl From<WorkSpec> for WorkSpecV2 {
    fn from(s: WorkSpec) -> Self {
        WorkSpecV2 {
            work: Work::Base(s.work),
            workers: s.workers,
            policy: Policy::Base(s.policy),
            nice: s.nice,
            affinity: s.affinity,
            comm: s.comm,
        }
    }
}

/// Chained setters, as on [`WorkSpec`].
impl WorkSpecV2 {
    /// One worker (or group) doing `work`, `SCHED_NORMAL`, nice 0, inherited affinity.
    pub fn new(work: impl Into<Work>) -> Self {
        WorkSpecV2 {
            work: work.into(),
            workers: WorkerCount::Count(1),
            policy: Policy::Base(SchedPolicy::Normal),
            nice: 0,
            affinity: AffinityIntent::Inherit,
            comm: None,
        }
    }
    /// Exactly `count` workers (a multiple of the work type's group size).
    #[must_use]
    pub fn workers(mut self, count: u32) -> Self {
        self.workers = WorkerCount::Count(count);
        self
    }
    /// `pct` percent of the target cgroup's CPUs.
    #[must_use]
    pub fn workers_pct(mut self, pct: f64) -> Self {
        self.workers = WorkerCount::Pct(pct);
        self
    }
    /// Scheduling policy of each worker.
    #[must_use]
    pub fn policy(mut self, policy: impl Into<Policy>) -> Self {
        self.policy = policy.into();
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
    /// Thread name (at most 15 bytes).
    #[must_use]
    pub fn comm(mut self, comm: impl Into<String>) -> Self {
        self.comm = Some(comm.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_fill_the_wit_records() {
        let s = WorkSpecV2::new(Work::schbench(4, 100, 1000)).workers(10).policy(Policy::deadline(1, 2, 3)).nice(-2);
        assert_eq!(s.work, Work::Schbench(Schbench { workers: 4, request_us: 100, sleep_us: 1000 }));
        assert_eq!(s.workers, WorkerCount::Count(10));
        assert_eq!(s.policy, Policy::Deadline(Deadline { runtime_us: 1, deadline_us: 2, period_us: 3 }));
        let old: WorkSpecV2 = WorkSpec::default().workers(2).into();
        assert_eq!((old.work, old.policy), (Work::Base(WorkType::SpinWait), Policy::Base(SchedPolicy::Normal)));
        assert_eq!(
            WorkSpecV2::new(WorkType::Mixed).policy(SchedPolicy::Batch).policy,
            Policy::Base(SchedPolicy::Batch)
        );
    }
}
