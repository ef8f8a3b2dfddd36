//! What executing a stream produced, and the scenario's verdict on it.
//! Mirrors the WIT `results` and `verdict` records (converted in the host).

use serde::{Deserialize, Serialize};

use crate::KernelValue;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Passed,
    Failed,
    Skipped,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepResult {
    pub index: u32,
    pub status: StepStatus,
    pub error: Option<String>,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VcpuRegisters {
    pub cpu: u32,
    pub rip: u64,
    pub rsp: u64,
    pub cr3: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub name: String,
    pub vcpus: Vec<VcpuRegisters>,
    pub values: Vec<(String, KernelValue)>,
    pub sched_ext_state: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupProcs {
    pub tag: String,
    pub cgroup: String,
    pub pids: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelRead {
    pub tag: String,
    pub value: KernelValue,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerMetrics {
    pub cgroup: String,
    pub workers: u32,
    pub iterations: u64,
    pub cpu_time_ns: u64,
    pub run_delay_ns: u64,
    pub migrations: u64,
    /// (cpu, times seen there).
    pub cpus: Vec<(u32, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadExit {
    pub name: String,
    pub cgroup: Option<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout_tail: String,
    pub stderr_tail: String,
}

/// One worker's counters, cumulative since it started (diff two steps' entries of the
/// same `tid` for what happened in between).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStat {
    /// Scenario cgroup (`""` = runner cgroup).
    pub cgroup: String,
    /// The worker's task id: its pid (a process worker), or its thread id (a worker of
    /// `spawn-threads`).
    pub tid: u32,
    /// Its index within its spawn.
    pub index: u32,
    /// False once it was stopped (stop-cgroup, remove-cgroup): the counters are its last.
    pub alive: bool,
    /// Iterations of its work loop.
    pub work_units: u64,
    /// Time on a CPU (`/proc/<pid>/schedstat`), ns.
    pub cpu_time_ns: u64,
    /// Time since it was started, ns.
    pub wall_time_ns: u64,
    /// `wall_time_ns - cpu_time_ns`: runnable-but-waiting, sleeping or frozen.
    pub off_cpu_ns: u64,
    /// Time runnable on a run queue but not running (`schedstat`), ns.
    pub run_delay_ns: u64,
    /// `se.nr_migrations` of `/proc/<pid>/sched`.
    pub migrations: u64,
    /// The longest gap between two iterations of its loop, ns: off-CPU (preempted,
    /// frozen) for spinning work types; it includes the sleeps of work types that sleep.
    pub max_gap_ns: u64,
    /// The CPU it resumed on after that gap.
    pub max_gap_cpu: u32,
    /// When that gap ended, ns since the worker started.
    pub max_gap_at_ns: u64,
    /// (cpu, times seen there), sampled at most once a millisecond.
    pub cpus: Vec<(u32, u64)>,
    /// Wake-up latency of the work types that measure it (timer-latency: lateness past
    /// the programmed expiry; the wake paths and schbench: from the waker's post to the
    /// wakee running; preempt-storm: the real-time worker's timer lateness).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_latency: Option<Latency>,
    /// Request latency of schbench (post to request done), lock wait of
    /// mutex-contention and priority-inversion (the high-priority worker), and each
    /// request of the block I/O work types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_latency: Option<Latency>,
}

/// A latency distribution, cumulative since the worker started. Percentiles come from
/// a log-linear histogram (4 buckets per power of two, so within 25 %).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_ns: u64,
    /// 90th percentile (absent in reports written before it existed: 0).
    #[serde(default)]
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

/// A live scenario cgroup as the kernel shows it at a step boundary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupState {
    pub name: String,
    /// Owned by the Backdrop (else by the step, removed right after this reading).
    pub backdrop: bool,
    /// `cpuset.cpus.effective`: the CPUs the kernel resolved for it.
    pub cpus_effective: Vec<u32>,
    /// `cgroup.events` says `frozen 1`.
    pub frozen: bool,
    /// `cpu.stat` `usage_usec`: CPU time of every task that ran in it, cumulative.
    pub usage_usec: u64,
    /// Processes in `cgroup.procs`.
    pub procs: u32,
    /// Its live workers' counters summed (cumulative since they started).
    pub metrics: WorkerMetrics,
}

/// An IRQ a scenario steered, as `/proc/irq/<n>/` shows it at a step boundary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IrqAffinity {
    pub irq: u32,
    /// `smp_affinity_list`.
    pub affinity: Vec<u32>,
    /// `effective_affinity_list` (empty where the kernel has none).
    pub effective: Vec<u32>,
}

/// The guest at the end of a step, read after its hold and before its teardown: every
/// live cgroup (Backdrop and step-local), every worker, steered IRQs, sched_ext.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: u32,
    pub cgroups: Vec<CgroupState>,
    /// Live workers, then those stopped during the step.
    pub workers: Vec<WorkerStat>,
    pub irqs: Vec<IrqAffinity>,
    /// `/sys/kernel/sched_ext/state` ("unsupported" without sched_ext).
    pub sched_ext_state: String,
    /// `/sys/kernel/sched_ext/root/ops` (empty when none is attached).
    pub sched_ext_ops: String,
}

/// Everything the executor observed, handed to the scenario's `check`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Results {
    pub steps: Vec<StepResult>,
    pub snapshots: Vec<Snapshot>,
    pub cgroup_procs: Vec<CgroupProcs>,
    pub kernel_reads: Vec<KernelRead>,
    pub workers: Vec<WorkerMetrics>,
    pub payloads: Vec<PayloadExit>,
    /// One entry per step that reached its end, in step order (the JSON report's
    /// `step_metrics`; not part of the WIT `results` record).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_metrics: Vec<StepMetrics>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

/// The scenario's judgement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub outcome: Outcome,
    pub messages: Vec<String>,
}
