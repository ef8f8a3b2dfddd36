//! Steps, holds, the Backdrop and the whole op stream a scenario emits.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{CgroupDef, Op};

/// What the executor does after a step's ops.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
pub enum HoldSpec {
    /// This fraction (0 < frac <= 1) of the scenario duration.
    Frac(f64),
    /// A fixed time.
    FixedMs(u64),
    /// Re-apply the step's ops every `interval_ms` until the scenario duration is used.
    LoopMs(u64),
}

impl HoldSpec {
    /// The whole scenario duration.
    pub const FULL: HoldSpec = HoldSpec::Frac(1.0);

    pub const fn frac(frac: f64) -> Self {
        Self::Frac(frac)
    }
    pub const fn fixed_ms(ms: u64) -> Self {
        Self::FixedMs(ms)
    }
    pub const fn loop_ms(interval_ms: u64) -> Self {
        Self::LoopMs(interval_ms)
    }
}

/// One step: setup cgroups, ops in order, then the hold; torn down afterwards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<CgroupDef>,
    pub ops: Vec<Op>,
    pub hold: HoldSpec,
}

impl Step {
    pub fn new(ops: Vec<Op>, hold: HoldSpec) -> Self {
        Self { setup: Vec::new(), ops, hold }
    }
    pub fn with_defs(setup: Vec<CgroupDef>, ops: Vec<Op>, hold: HoldSpec) -> Self {
        Self { setup, ops, hold }
    }
}

/// What persists for the whole scenario: cgroups and their setup ops.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backdrop {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroups: Vec<CgroupDef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<Op>,
}

impl Backdrop {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push_cgroup(mut self, def: CgroupDef) -> Self {
        self.cgroups.push(def);
        self
    }
    pub fn push_op(mut self, op: Op) -> Self {
        self.ops.push(op);
        self
    }
    pub fn is_empty(&self) -> bool {
        self.cgroups.is_empty() && self.ops.is_empty()
    }
}

/// Kernel features a scenario needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
pub enum KernelFeature {
    SchedExt,
    Btf,
    CgroupV2,
}

/// The guest shape a scenario needs (at least).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub numa_nodes: u32,
    pub llcs_per_node: u32,
    pub cores_per_llc: u32,
    pub threads_per_core: u32,
}

impl Topology {
    pub fn vcpus(&self) -> u64 {
        u64::from(self.numa_nodes)
            * u64::from(self.llcs_per_node)
            * u64::from(self.cores_per_llc)
            * u64::from(self.threads_per_core)
    }
    pub fn llcs(&self) -> u64 {
        u64::from(self.numa_nodes) * u64::from(self.llcs_per_node)
    }
}

impl fmt::Display for Topology {
    /// `<nodes>n<llcs>l<cores>c<threads>t`, the CLI's topology syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}n{}l{}c{}t", self.numa_nodes, self.llcs_per_node, self.cores_per_llc, self.threads_per_core)
    }
}

/// What `describe` says about a scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioInfo {
    pub name: String,
    pub summary: String,
    pub topology: Topology,
    pub kernel_features: Vec<KernelFeature>,
    pub payloads: Vec<String>,
    pub schedulers: Vec<String>,
    pub duration_ms: u64,
}

/// Where an op sits in a stream: the Backdrop's setup or a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    Backdrop,
    Step(usize),
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Section::Backdrop => f.write_str("backdrop"),
            Section::Step(i) => write!(f, "step {i}"),
        }
    }
}

/// The whole op stream of one scenario: what `schedbox plan --json` prints
/// and what the executor runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpStream {
    /// Contract version the stream was emitted under.
    pub contract: String,
    pub scenario: ScenarioInfo,
    #[serde(default)]
    pub backdrop: Backdrop,
    pub steps: Vec<Step>,
}

impl OpStream {
    /// Number of ops, Backdrop setup included.
    pub fn op_count(&self) -> usize {
        self.backdrop.ops.len() + self.steps.iter().map(|s| s.ops.len()).sum::<usize>()
    }

    /// Every op with where it sits and its index within that section.
    pub fn ops(&self) -> impl Iterator<Item = (Section, usize, &Op)> {
        let backdrop = self.backdrop.ops.iter().enumerate().map(|(i, op)| (Section::Backdrop, i, op));
        let steps = self
            .steps
            .iter()
            .enumerate()
            .flat_map(|(s, step)| step.ops.iter().enumerate().map(move |(i, op)| (Section::Step(s), i, op)));
        backdrop.chain(steps)
    }
}
