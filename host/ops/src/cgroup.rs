//! Cgroup definitions: a cgroup with its knobs and workload, created at once.

use serde::{Deserialize, Serialize};

use crate::{CpusetSpec, WorkSpec};

/// `cpu.max`: `quota_us` of CPU time per `period_us`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuMax {
    pub quota_us: u64,
    pub period_us: u64,
}

/// A payload binary started in a cgroup, by name, with extra arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadRef {
    pub name: String,
    pub args: Vec<String>,
}

/// A cgroup declaration. Knobs left `None` are not written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CgroupDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<CpusetSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset_mems: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_max: Option<CpuMax>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_max: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_max: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<PayloadRef>,
    #[serde(default)]
    pub swappable: bool,
}

impl CgroupDef {
    /// A cgroup with no knobs and no workers.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
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
    pub fn cpuset(mut self, spec: CpusetSpec) -> Self {
        self.cpuset = Some(spec);
        self
    }
    /// Adds one default work spec with `n` workers.
    pub fn workers(mut self, n: u32) -> Self {
        self.workers.push(WorkSpec::default().workers(n));
        self
    }
    pub fn work(mut self, spec: WorkSpec) -> Self {
        self.workers.push(spec);
        self
    }
}
