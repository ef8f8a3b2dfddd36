//! The one place where WIT values become op-model values.

use crate::contract::schedbox::scenario::types as wit;

use super::*;

impl From<wit::CpusetSpec> for CpusetSpec {
    fn from(v: wit::CpusetSpec) -> Self {
        match v {
            wit::CpusetSpec::Llc(i) => Self::Llc(i),
            wit::CpusetSpec::Numa(i) => Self::Numa(i),
            wit::CpusetSpec::Range(r) => Self::Range { start: r.start, end: r.end },
            wit::CpusetSpec::Disjoint(p) => Self::Disjoint { index: p.index, of: p.of },
            wit::CpusetSpec::Overlap(p) => Self::Overlap { index: p.index, of: p.of, frac: p.frac },
            // Kept as given (not deduplicated) so validation can name duplicates.
            wit::CpusetSpec::Exact(cpus) => Self::Exact(cpus),
        }
    }
}

impl From<wit::SpawnPlacement> for SpawnPlacement {
    fn from(v: wit::SpawnPlacement) -> Self {
        match v {
            wit::SpawnPlacement::RunnerCgroup => Self::RunnerCgroup,
            wit::SpawnPlacement::Cgroup(name) => Self::Cgroup(name),
        }
    }
}

impl From<wit::IrqSelector> for IrqSelector {
    fn from(v: wit::IrqSelector) -> Self {
        match v {
            wit::IrqSelector::ByNumber(n) => Self::ByNumber(n),
            wit::IrqSelector::ByLabel(l) => Self::ByLabel(l),
        }
    }
}

impl From<wit::KernelTarget> for KernelTarget {
    fn from(v: wit::KernelTarget) -> Self {
        match v {
            wit::KernelTarget::Symbol(s) => Self::Symbol(s),
            wit::KernelTarget::Direct(a) => Self::Direct(a),
            wit::KernelTarget::Kva(a) => Self::Kva(a),
            wit::KernelTarget::PerCpuField(f) => Self::PerCpuField { symbol: f.symbol, field: f.field, cpu: f.cpu },
            wit::KernelTarget::TaskField(f) => {
                Self::TaskField { pid: f.pid, expected_start_time_ns: f.expected_start_time_ns, field: f.field }
            }
        }
    }
}

impl From<wit::KernelValue> for KernelValue {
    fn from(v: wit::KernelValue) -> Self {
        match v {
            wit::KernelValue::U32(x) => Self::U32(x),
            wit::KernelValue::U64(x) => Self::U64(x),
            wit::KernelValue::Bytes(b) => Self::Bytes(b),
            wit::KernelValue::OrU32(x) => Self::OrU32(x),
        }
    }
}

impl From<KernelValue> for wit::KernelValue {
    fn from(v: KernelValue) -> Self {
        match v {
            KernelValue::U32(x) => Self::U32(x),
            KernelValue::U64(x) => Self::U64(x),
            KernelValue::Bytes(b) => Self::Bytes(b),
            KernelValue::OrU32(x) => Self::OrU32(x),
        }
    }
}

impl From<wit::KernelValueWidth> for KernelValueWidth {
    fn from(v: wit::KernelValueWidth) -> Self {
        match v {
            wit::KernelValueWidth::U32 => Self::U32,
            wit::KernelValueWidth::U64 => Self::U64,
            wit::KernelValueWidth::Bytes(n) => Self::Bytes(n),
        }
    }
}

impl From<wit::KernelWrite> for KernelWrite {
    fn from(v: wit::KernelWrite) -> Self {
        Self { target: v.target.into(), value: v.value.into() }
    }
}

impl From<wit::Phase> for Phase {
    fn from(v: wit::Phase) -> Self {
        match v {
            wit::Phase::Spin(ms) => Self::SpinMs(ms),
            wit::Phase::Sleep(ms) => Self::SleepMs(ms),
            wit::Phase::Yield(ms) => Self::YieldMs(ms),
        }
    }
}

impl From<wit::WorkType> for WorkType {
    fn from(v: wit::WorkType) -> Self {
        match v {
            wit::WorkType::SpinWait => Self::SpinWait,
            wit::WorkType::YieldHeavy => Self::YieldHeavy,
            wit::WorkType::Mixed => Self::Mixed,
            wit::WorkType::Bursty(b) => Self::Bursty { burst_ms: b.burst_ms, sleep_ms: b.sleep_ms },
            wit::WorkType::FutexPingPong(spin_iters) => Self::FutexPingPong { spin_iters },
            wit::WorkType::FutexFanOut(f) => Self::FutexFanOut { fan_out: f.fan_out, spin_iters: f.spin_iters },
            wit::WorkType::PipeIo(burst_iters) => Self::PipeIo { burst_iters },
            wit::WorkType::CachePressure(c) => Self::CachePressure { size_kib: c.size_kib, stride: c.stride },
            wit::WorkType::WakeChain(depth) => Self::WakeChain { depth, pipe: false, work_iters: 0 },
            wit::WorkType::ForkExit => Self::ForkExit,
            wit::WorkType::Sleep(duration_ms) => Self::Sleep { duration_ms },
            wit::WorkType::WaitOnFutex => Self::WaitOnFutex,
            wit::WorkType::Sequence(phases) => Self::Sequence(phases.into_iter().map(Into::into).collect()),
        }
    }
}

impl From<wit::SchedPolicy> for SchedPolicy {
    fn from(v: wit::SchedPolicy) -> Self {
        match v {
            wit::SchedPolicy::Normal => Self::Normal,
            wit::SchedPolicy::Batch => Self::Batch,
            wit::SchedPolicy::Idle => Self::Idle,
            wit::SchedPolicy::Fifo(p) => Self::Fifo(p),
            wit::SchedPolicy::Rr(p) => Self::Rr(p),
            wit::SchedPolicy::Ext => Self::Ext,
        }
    }
}

impl From<wit::AffinityIntent> for AffinityIntent {
    fn from(v: wit::AffinityIntent) -> Self {
        match v {
            wit::AffinityIntent::Inherit => Self::Inherit,
            wit::AffinityIntent::RandomSubset(n) => Self::RandomSubset(n),
            wit::AffinityIntent::LlcAligned => Self::LlcAligned,
            wit::AffinityIntent::CrossCgroup => Self::CrossCgroup,
            wit::AffinityIntent::SingleCpu => Self::SingleCpu,
            wit::AffinityIntent::Exact(cpus) => Self::Exact(cpus),
            wit::AffinityIntent::SmtSiblingPair => Self::SmtSiblingPair,
        }
    }
}

impl From<wit::WorkSpec> for WorkSpec {
    fn from(v: wit::WorkSpec) -> Self {
        Self {
            work: v.work.into(),
            workers: match v.workers {
                wit::WorkerCount::Count(n) => WorkerCount::Count(n),
                wit::WorkerCount::Pct(p) => WorkerCount::Pct(p),
            },
            policy: v.policy.into(),
            nice: v.nice,
            affinity: v.affinity.into(),
            comm: v.comm,
            mode: Default::default(),
        }
    }
}

impl From<wit::CgroupDef> for CgroupDef {
    fn from(v: wit::CgroupDef) -> Self {
        Self {
            name: v.name,
            cpuset: v.cpuset.map(Into::into),
            cpuset_mems: v.cpuset_mems,
            cpu_weight: v.cpu_weight,
            cpu_max: v.cpu_max.map(|c| CpuMax { quota_us: c.quota_us, period_us: c.period_us }),
            memory_max: v.memory_max,
            pids_max: v.pids_max,
            io_weight: v.io_weight,
            workers: v.workers.into_iter().map(Into::into).collect(),
            payload: v.payload.map(|p| PayloadRef { name: p.name, args: p.args }),
            swappable: v.swappable,
        }
    }
}

impl From<wit::HoldSpec> for HoldSpec {
    fn from(v: wit::HoldSpec) -> Self {
        match v {
            wit::HoldSpec::Frac(f) => Self::Frac(f),
            wit::HoldSpec::Fixed(ms) => Self::FixedMs(ms),
            wit::HoldSpec::Loop(ms) => Self::LoopMs(ms),
        }
    }
}

impl From<wit::ScenarioInfo> for ScenarioInfo {
    fn from(v: wit::ScenarioInfo) -> Self {
        Self {
            name: v.name,
            summary: v.summary,
            topology: Topology {
                numa_nodes: v.topology.numa_nodes,
                llcs_per_node: v.topology.llcs_per_node,
                cores_per_llc: v.topology.cores_per_llc,
                threads_per_core: v.topology.threads_per_core,
            },
            kernel_features: v
                .kernel_features
                .into_iter()
                .map(|f| match f {
                    wit::KernelFeature::SchedExt => KernelFeature::SchedExt,
                    wit::KernelFeature::Btf => KernelFeature::Btf,
                    wit::KernelFeature::CgroupV2 => KernelFeature::CgroupV2,
                })
                .collect(),
            payloads: v.payloads,
            schedulers: v.schedulers,
            duration_ms: v.duration_ms,
        }
    }
}

mod v2 {
    //! The work types and policies of `spawn-work` (added within 0.1).
    use super::*;
    use crate::contract::schedbox::scenario::ops as w;

    impl From<w::Work> for WorkType {
        fn from(v: w::Work) -> Self {
            match v {
                w::Work::Base(b) => b.into(),
                w::Work::AluHot => Self::AluHot,
                w::Work::SmtSiblingSpin => Self::SmtSiblingSpin,
                w::Work::IpcVariance(x) => Self::IpcVariance { phase_ms: x.phase_ms, size_kib: x.size_kib },
                w::Work::FanOutCompute(x) => Self::FanOutCompute { fan_out: x.fan_out, compute_iters: x.compute_iters },
                w::Work::AsymmetricWaker(x) => {
                    Self::AsymmetricWaker { waker_iters: x.waker_iters, wakee_iters: x.wakee_iters }
                }
                w::Work::EpollStorm(waiters) => Self::EpollStorm { waiters },
                w::Work::ThunderingHerd(x) => Self::ThunderingHerd { waiters: x.waiters, work_iters: x.work_iters },
                w::Work::TimerLatency(period_us) => Self::TimerLatency { period_us },
                w::Work::WakeChain(x) => Self::WakeChain { depth: x.depth, pipe: x.pipe, work_iters: x.work_iters },
                w::Work::Schbench(x) => {
                    Self::Schbench { workers: x.workers, request_us: x.request_us, sleep_us: x.sleep_us }
                }
                w::Work::NiceSweep(period_us) => Self::NiceSweep { period_us },
                w::Work::AffinityChurn(period_us) => Self::AffinityChurn { period_us },
                w::Work::CrossAffinityChurn(period_us) => Self::CrossAffinityChurn { period_us },
                w::Work::PolicyChurn(period_us) => Self::PolicyChurn { period_us },
                w::Work::CgroupChurn(period_us) => Self::CgroupChurn { period_us },
                w::Work::CgroupAttachStorm(period_us) => Self::CgroupAttachStorm { period_us },
                w::Work::MutexContention(x) => Self::MutexContention {
                    contenders: x.contenders,
                    hold_iters: x.hold_iters,
                    work_iters: x.work_iters,
                },
                w::Work::PriorityInversion(x) => Self::PriorityInversion { pi: x.pi, hold_iters: x.hold_iters },
                w::Work::RtStarvation => Self::RtStarvation,
                w::Work::PreemptStorm(x) => Self::PreemptStorm { period_us: x.period_us, burst_iters: x.burst_iters },
                w::Work::SignalStorm => Self::SignalStorm,
                w::Work::ProducerConsumerImbalance(x) => Self::ProducerConsumerImbalance {
                    producers: x.producers,
                    consumers: x.consumers,
                    work_iters: x.work_iters,
                },
                w::Work::PageFaultChurn(size_kib) => Self::PageFaultChurn { size_kib },
                w::Work::NumaMigrationChurn(x) => {
                    Self::NumaMigrationChurn { period_ms: x.period_ms, size_kib: x.size_kib }
                }
                w::Work::NumaWorkingSetSweep(x) => Self::NumaWorkingSetSweep { size_kib: x.size_kib, passes: x.passes },
                w::Work::IoSyncWrite(block_kib) => Self::IoSyncWrite { block_kib },
                w::Work::IoRandRead(block_kib) => Self::IoRandRead { block_kib },
                w::Work::IoConvoy(x) => Self::IoConvoy { readers: x.readers, write_kib: x.write_kib },
                w::Work::IdleChurn(x) => Self::IdleChurn { spin_iters: x.spin_iters, sleep_us: x.sleep_us },
                w::Work::CacheYield(size_kib) => Self::CacheYield { size_kib },
                w::Work::CachePipe(size_kib) => Self::CachePipe { size_kib },
            }
        }
    }

    impl From<w::Policy> for SchedPolicy {
        fn from(v: w::Policy) -> Self {
            match v {
                w::Policy::Base(p) => p.into(),
                w::Policy::Deadline(d) => {
                    Self::Deadline { runtime_us: d.runtime_us, deadline_us: d.deadline_us, period_us: d.period_us }
                }
            }
        }
    }

    impl From<w::WorkSpecV2> for WorkSpec {
        fn from(v: w::WorkSpecV2) -> Self {
            Self {
                work: v.work.into(),
                workers: match v.workers {
                    wit::WorkerCount::Count(n) => WorkerCount::Count(n),
                    wit::WorkerCount::Pct(p) => WorkerCount::Pct(p),
                },
                policy: v.policy.into(),
                nice: v.nice,
                affinity: v.affinity.into(),
                comm: v.comm,
                mode: Default::default(),
            }
        }
    }
}
