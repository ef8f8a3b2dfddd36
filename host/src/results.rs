//! What executing a stream produced, and the scenario's verdict on it.
//! Mirrors the WIT `results` and `verdict` records; converted here only.

use serde::{Deserialize, Serialize};

use crate::contract::schedbox::scenario::types as wit;
use crate::op_model::KernelValue;

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

impl From<Results> for wit::Results {
    fn from(r: Results) -> Self {
        wit::Results {
            steps: r
                .steps
                .into_iter()
                .map(|s| wit::StepResult {
                    index: s.index,
                    status: match s.status {
                        StepStatus::Passed => wit::StepStatus::Passed,
                        StepStatus::Failed => wit::StepStatus::Failed,
                        StepStatus::Skipped => wit::StepStatus::Skipped,
                    },
                    error: s.error,
                    duration_ms: s.duration_ms,
                })
                .collect(),
            snapshots: r
                .snapshots
                .into_iter()
                .map(|s| wit::Snapshot {
                    name: s.name,
                    vcpus: s
                        .vcpus
                        .into_iter()
                        .map(|v| wit::VcpuRegisters { cpu: v.cpu, rip: v.rip, rsp: v.rsp, cr3: v.cr3 })
                        .collect(),
                    values: s
                        .values
                        .into_iter()
                        .map(|(name, value)| wit::NamedValue { name, value: value.into() })
                        .collect(),
                    sched_ext_state: s.sched_ext_state,
                })
                .collect(),
            cgroup_procs: r
                .cgroup_procs
                .into_iter()
                .map(|c| wit::CgroupProcs { tag: c.tag, cgroup: c.cgroup, pids: c.pids })
                .collect(),
            kernel_reads: r
                .kernel_reads
                .into_iter()
                .map(|k| wit::KernelRead { tag: k.tag, value: k.value.into() })
                .collect(),
            workers: r
                .workers
                .into_iter()
                .map(|w| wit::WorkerMetrics {
                    cgroup: w.cgroup,
                    workers: w.workers,
                    iterations: w.iterations,
                    cpu_time_ns: w.cpu_time_ns,
                    run_delay_ns: w.run_delay_ns,
                    migrations: w.migrations,
                    cpus: w.cpus.into_iter().map(|(cpu, count)| wit::CpuCount { cpu, count }).collect(),
                })
                .collect(),
            payloads: r
                .payloads
                .into_iter()
                .map(|p| wit::PayloadExit {
                    name: p.name,
                    cgroup: p.cgroup,
                    exit_code: p.exit_code,
                    signal: p.signal,
                    stdout_tail: p.stdout_tail,
                    stderr_tail: p.stderr_tail,
                })
                .collect(),
        }
    }
}

impl From<wit::Verdict> for Verdict {
    fn from(v: wit::Verdict) -> Self {
        Verdict {
            outcome: match v.outcome {
                wit::Outcome::Pass => Outcome::Pass,
                wit::Outcome::Fail => Outcome::Fail,
                wit::Outcome::Skip => Outcome::Skip,
            },
            messages: v.messages,
        }
    }
}
