//! The `Op` enum: every operation a scenario can ask for.
//!
//! Variants mirror the `ops` interface of the WIT one to one (the structure
//! functions aside); [`OpKind::wit_name`] is the import name. Constructors are
//! the stable surface; contracts that decide what gets rejected live in
//! [`crate::validate`].

use serde::{Deserialize, Serialize};

use crate::{AffinityIntent, CgroupDef, CpusetSpec, KernelTarget, KernelValueWidth, KernelWrite, WorkSpec};

/// Where [`Op::Spawn`] puts its workers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
pub enum SpawnPlacement {
    /// The runner's own cgroup; no cgroup ops, `workers_pct` rejected.
    RunnerCgroup,
    /// A managed cgroup that must exist when the op applies.
    Cgroup(String),
}

impl SpawnPlacement {
    pub const fn runner_cgroup() -> Self {
        Self::RunnerCgroup
    }
    pub fn cgroup(name: impl Into<String>) -> Self {
        Self::Cgroup(name.into())
    }
}

/// Which IRQ [`Op::SteerIrq`] targets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
pub enum IrqSelector {
    /// The Linux IRQ number.
    ByNumber(u32),
    /// The last token of a `/proc/interrupts` line; first match wins.
    ByLabel(String),
}

/// One operation of a step (or of the Backdrop's setup).
///
/// Cgroup names are relative to the scenario's managed parent cgroup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, strum::EnumDiscriminants)]
#[serde(deny_unknown_fields)]
#[strum_discriminants(name(OpKind))]
#[strum_discriminants(derive(strum::EnumIter, strum::IntoStaticStr, strum::EnumString, Hash, Serialize, Deserialize))]
#[strum_discriminants(strum(serialize_all = "kebab-case"))]
#[strum_discriminants(serde(rename_all = "kebab-case"))]
#[serde(tag = "op", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Op {
    /// Create an empty cgroup (no knobs, no workers).
    AddCgroup {
        name: String,
    },
    /// Create a cgroup from a full definition; names are dedup-checked
    /// against the Backdrop and the step.
    AddCgroupDef {
        def: CgroupDef,
    },
    /// Stop a cgroup's workers and remove it (step-local or Backdrop).
    RemoveCgroup {
        cgroup: String,
    },
    SetCpuset {
        cgroup: String,
        cpus: CpusetSpec,
    },
    ClearCpuset {
        cgroup: String,
    },
    SwapCpusets {
        a: String,
        b: String,
    },
    Spawn {
        placement: SpawnPlacement,
        work: WorkSpec,
    },
    /// Stop every worker of a cgroup; the cgroup stays.
    StopCgroup {
        cgroup: String,
    },
    SetAffinity {
        cgroup: String,
        affinity: AffinityIntent,
    },
    /// Move every task; `from == ""` names the runner-cgroup workers.
    /// Backdrop→step-local moves and self-moves are rejected.
    MoveAllTasks {
        from: String,
        to: String,
    },
    RunPayload {
        name: String,
        args: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cgroup: Option<String>,
    },
    /// Wait for a payload; `cgroup: None` needs exactly one live copy.
    WaitPayload {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cgroup: Option<String>,
    },
    KillPayload {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cgroup: Option<String>,
    },
    /// Write `1` to `cgroup.freeze`; auto-unfrozen at teardown.
    FreezeCgroup {
        cgroup: String,
    },
    UnfreezeCgroup {
        cgroup: String,
    },
    /// Park every vCPU and capture a named snapshot.
    CaptureSnapshot {
        name: String,
    },
    /// Capture a snapshot on every guest write to `symbol` (at most 3 per scenario).
    WatchSnapshot {
        symbol: String,
    },
    /// Live writes, in order, followed by a release fence.
    WriteKernelHot {
        writes: Vec<KernelWrite>,
    },
    /// Writes landing inside one freeze rendezvous; adjacent cold writes merge.
    WriteKernelCold {
        writes: Vec<KernelWrite>,
    },
    ReadKernelHot {
        tag: String,
        target: KernelTarget,
        width: KernelValueWidth,
    },
    /// A read under its own freeze rendezvous.
    ReadKernelCold {
        tag: String,
        target: KernelTarget,
        width: KernelValueWidth,
    },
    AttachScheduler {
        scheduler: String,
    },
    DetachScheduler,
    /// Stop the running scheduler and start the boot scheduler again.
    RestartScheduler,
    /// Stop the running scheduler and start `scheduler`, as one op.
    ReplaceScheduler {
        scheduler: String,
    },
    /// Hold a BPF map (by kernel-visible name) open until the scenario ends.
    PinBpfMap {
        name: String,
    },
    CaptureCgroupProcs {
        tag: String,
        cgroup: String,
    },
    /// Write `cpu` to `/proc/irq/<n>/smp_affinity_list`.
    SteerIrq {
        irq: IrqSelector,
        cpu: u32,
    },
    /// Write the CPU set `cpus` to `/proc/irq/<n>/smp_affinity_list`.
    SteerIrqCpus {
        irq: IrqSelector,
        cpus: Vec<u32>,
    },
}

impl OpKind {
    /// The name of the WIT import for this op (`add-cgroup`, ...).
    pub fn wit_name(self) -> &'static str {
        self.into()
    }

    /// Ops the guest agent executes (the rest go to the host's monitor or the
    /// scheduler manager).
    pub fn is_guest_side(self) -> bool {
        !matches!(
            self,
            OpKind::CaptureSnapshot
                | OpKind::WatchSnapshot
                | OpKind::WriteKernelHot
                | OpKind::WriteKernelCold
                | OpKind::ReadKernelHot
                | OpKind::ReadKernelCold
        )
    }
}

impl Op {
    pub fn kind(&self) -> OpKind {
        self.into()
    }

    pub fn add_cgroup(name: impl Into<String>) -> Self {
        Self::AddCgroup { name: name.into() }
    }
    pub fn add_cgroup_def(def: CgroupDef) -> Self {
        Self::AddCgroupDef { def }
    }
    pub fn remove_cgroup(cgroup: impl Into<String>) -> Self {
        Self::RemoveCgroup { cgroup: cgroup.into() }
    }
    pub fn set_cpuset(cgroup: impl Into<String>, cpus: CpusetSpec) -> Self {
        Self::SetCpuset { cgroup: cgroup.into(), cpus }
    }
    pub fn clear_cpuset(cgroup: impl Into<String>) -> Self {
        Self::ClearCpuset { cgroup: cgroup.into() }
    }
    pub fn swap_cpusets(a: impl Into<String>, b: impl Into<String>) -> Self {
        Self::SwapCpusets { a: a.into(), b: b.into() }
    }
    pub fn spawn(placement: SpawnPlacement, work: WorkSpec) -> Self {
        Self::Spawn { placement, work }
    }
    pub fn stop_cgroup(cgroup: impl Into<String>) -> Self {
        Self::StopCgroup { cgroup: cgroup.into() }
    }
    pub fn set_affinity(cgroup: impl Into<String>, affinity: AffinityIntent) -> Self {
        Self::SetAffinity { cgroup: cgroup.into(), affinity }
    }
    pub fn move_all_tasks(from: impl Into<String>, to: impl Into<String>) -> Self {
        Self::MoveAllTasks { from: from.into(), to: to.into() }
    }
    pub fn run_payload(name: impl Into<String>, args: Vec<String>, cgroup: Option<String>) -> Self {
        Self::RunPayload { name: name.into(), args, cgroup }
    }
    pub fn wait_payload(name: impl Into<String>, cgroup: Option<String>) -> Self {
        Self::WaitPayload { name: name.into(), cgroup }
    }
    pub fn kill_payload(name: impl Into<String>, cgroup: Option<String>) -> Self {
        Self::KillPayload { name: name.into(), cgroup }
    }
    pub fn freeze_cgroup(cgroup: impl Into<String>) -> Self {
        Self::FreezeCgroup { cgroup: cgroup.into() }
    }
    pub fn unfreeze_cgroup(cgroup: impl Into<String>) -> Self {
        Self::UnfreezeCgroup { cgroup: cgroup.into() }
    }
    pub fn capture_snapshot(name: impl Into<String>) -> Self {
        Self::CaptureSnapshot { name: name.into() }
    }
    pub fn watch_snapshot(symbol: impl Into<String>) -> Self {
        Self::WatchSnapshot { symbol: symbol.into() }
    }
    pub fn write_kernel_hot(writes: Vec<KernelWrite>) -> Self {
        Self::WriteKernelHot { writes }
    }
    pub fn write_kernel_cold(writes: Vec<KernelWrite>) -> Self {
        Self::WriteKernelCold { writes }
    }
    pub fn read_kernel_hot(tag: impl Into<String>, target: KernelTarget, width: KernelValueWidth) -> Self {
        Self::ReadKernelHot { tag: tag.into(), target, width }
    }
    pub fn read_kernel_cold(tag: impl Into<String>, target: KernelTarget, width: KernelValueWidth) -> Self {
        Self::ReadKernelCold { tag: tag.into(), target, width }
    }
    pub fn attach_scheduler(scheduler: impl Into<String>) -> Self {
        Self::AttachScheduler { scheduler: scheduler.into() }
    }
    pub const fn detach_scheduler() -> Self {
        Self::DetachScheduler
    }
    pub const fn restart_scheduler() -> Self {
        Self::RestartScheduler
    }
    pub fn replace_scheduler(scheduler: impl Into<String>) -> Self {
        Self::ReplaceScheduler { scheduler: scheduler.into() }
    }
    pub fn pin_bpf_map(name: impl Into<String>) -> Self {
        Self::PinBpfMap { name: name.into() }
    }
    pub fn capture_cgroup_procs(tag: impl Into<String>, cgroup: impl Into<String>) -> Self {
        Self::CaptureCgroupProcs { tag: tag.into(), cgroup: cgroup.into() }
    }
    pub fn steer_irq(irq: IrqSelector, cpu: u32) -> Self {
        Self::SteerIrq { irq, cpu }
    }
    pub fn steer_irq_cpus(irq: IrqSelector, cpus: impl IntoIterator<Item = u32>) -> Self {
        Self::SteerIrqCpus { irq, cpus: cpus.into_iter().collect() }
    }
}
