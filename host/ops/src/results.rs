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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// Everything the executor observed, handed to the scenario's `check`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Results {
    pub steps: Vec<StepResult>,
    pub snapshots: Vec<Snapshot>,
    pub cgroup_procs: Vec<CgroupProcs>,
    pub kernel_reads: Vec<KernelRead>,
    pub workers: Vec<WorkerMetrics>,
    pub payloads: Vec<PayloadExit>,
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
