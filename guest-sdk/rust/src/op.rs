//! [`Op`]: one value per `ops` import, built with ktstr-style constructors.

use crate::types::{
    AffinityIntent, CgroupDef, CpusetSpec, IrqSelector, KernelTarget, KernelValue, KernelValueWidth, KernelWrite,
    OpError, SpawnPlacement, WorkSpec,
};

/// One operation of the op stream.
///
/// There is one variant per import of the WIT `ops` interface, except the
/// structure functions (`open-backdrop`, `close-backdrop`, `open-step`,
/// `close-step`), which [`emit`](crate::emit) calls from the [`Backdrop`] and
/// [`Step`] values. Build ops with the constructors (`Op::set_cpuset(..)`) and
/// hand them to a [`Step`] or a [`Backdrop`]; [`emit`](crate::emit) calls the
/// matching import for each.
///
/// Cgroup names address managed cgroups: step-local ones first, then the
/// Backdrop's.
///
/// [`Backdrop`]: crate::Backdrop
/// [`Step`]: crate::Step
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Op {
    /// `add-cgroup`
    AddCgroup {
        /// Name of the new cgroup.
        name: String,
    },
    /// `add-cgroup-def`
    AddCgroupDef {
        /// The cgroup, its knobs and its workload.
        def: CgroupDef,
    },
    /// `remove-cgroup`
    RemoveCgroup {
        /// The cgroup to remove (its workers are stopped first).
        cgroup: String,
    },
    /// `set-cpuset`
    SetCpuset {
        /// The cgroup.
        cgroup: String,
        /// Its new `cpuset.cpus`.
        cpus: CpusetSpec,
    },
    /// `clear-cpuset`
    ClearCpuset {
        /// The cgroup.
        cgroup: String,
    },
    /// `swap-cpusets`
    SwapCpusets {
        /// One cgroup.
        a: String,
        /// The other cgroup.
        b: String,
    },
    /// `freeze-cgroup`
    FreezeCgroup {
        /// The cgroup.
        cgroup: String,
    },
    /// `unfreeze-cgroup`
    UnfreezeCgroup {
        /// The cgroup.
        cgroup: String,
    },
    /// `capture-cgroup-procs`
    CaptureCgroupProcs {
        /// The tag the capture is found under in the results.
        tag: String,
        /// The cgroup.
        cgroup: String,
    },
    /// `spawn`
    Spawn {
        /// Where the workers go.
        placement: SpawnPlacement,
        /// What they do.
        work: WorkSpec,
    },
    /// `spawn-work` (the work types and policies added within 0.1)
    SpawnWork {
        /// Where the workers go.
        placement: SpawnPlacement,
        /// What they do.
        work: crate::ops::WorkSpecV2,
    },
    /// `spawn-threads`: `spawn-work` with the workers threads of one process
    SpawnThreads {
        /// Where the workers go.
        placement: SpawnPlacement,
        /// What they do.
        work: crate::ops::WorkSpecV2,
    },
    /// `stop-cgroup`
    StopCgroup {
        /// The cgroup whose workers stop.
        cgroup: String,
    },
    /// `set-affinity`
    SetAffinity {
        /// The cgroup whose workers are re-pinned.
        cgroup: String,
        /// The new affinity.
        affinity: AffinityIntent,
    },
    /// `move-all-tasks`
    MoveAllTasks {
        /// Source cgroup; `""` is the runner cgroup.
        from: String,
        /// Destination cgroup.
        to: String,
    },
    /// `run-payload`
    RunPayload {
        /// A payload declared in [`ScenarioInfo::payloads`](crate::types::ScenarioInfo).
        name: String,
        /// Its arguments.
        args: Vec<String>,
        /// The cgroup it runs in; `None` for the runner cgroup.
        cgroup: Option<String>,
    },
    /// `wait-payload`
    WaitPayload {
        /// The payload.
        name: String,
        /// The cgroup it was started in.
        cgroup: Option<String>,
    },
    /// `kill-payload`
    KillPayload {
        /// The payload.
        name: String,
        /// The cgroup it was started in.
        cgroup: Option<String>,
    },
    /// `capture-snapshot`
    CaptureSnapshot {
        /// The snapshot's name in the results.
        name: String,
    },
    /// `watch-snapshot`
    WatchSnapshot {
        /// The kernel symbol whose writes trigger a snapshot.
        symbol: String,
    },
    /// `write-kernel-hot`
    WriteKernelHot {
        /// The writes, applied while the guest runs.
        writes: Vec<KernelWrite>,
    },
    /// `write-kernel-cold`
    WriteKernelCold {
        /// The writes, applied with the guest paused.
        writes: Vec<KernelWrite>,
    },
    /// `read-kernel-hot`
    ReadKernelHot {
        /// The tag the value is found under in the results.
        tag: String,
        /// The address.
        target: KernelTarget,
        /// How much to read.
        width: KernelValueWidth,
    },
    /// `read-kernel-cold`
    ReadKernelCold {
        /// The tag the value is found under in the results.
        tag: String,
        /// The address.
        target: KernelTarget,
        /// How much to read.
        width: KernelValueWidth,
    },
    /// `attach-scheduler`
    AttachScheduler {
        /// A scheduler declared in [`ScenarioInfo::schedulers`](crate::types::ScenarioInfo).
        name: String,
    },
    /// `detach-scheduler`
    DetachScheduler,
    /// `restart-scheduler`
    RestartScheduler,
    /// `replace-scheduler`
    ReplaceScheduler {
        /// The scheduler that replaces the attached one.
        name: String,
    },
    /// `pin-bpf-map`
    PinBpfMap {
        /// The attached scheduler's map.
        name: String,
    },
    /// `steer-irq`
    SteerIrq {
        /// The IRQ.
        irq: IrqSelector,
        /// The CPU it is steered to.
        cpu: u32,
    },
    /// `steer-irq-cpus`
    SteerIrqCpus {
        /// The IRQ.
        irq: IrqSelector,
        /// The CPUs it is steered to.
        cpus: Vec<u32>,
    },
}

/// # Cgroups
///
/// ```rust
/// use schedbox_scenario::prelude::*;
///
/// let ops = vec![
///     Op::add_cgroup("a"),
///     Op::add_cgroup_def(CgroupDef::named("b").cpuset(CpusetSpec::disjoint(1, 2)).workers(2)),
///     Op::set_cpuset("a", CpusetSpec::disjoint(0, 2)),
///     Op::swap_cpusets("a", "b"),
///     Op::freeze_cgroup("b"),
///     Op::capture_cgroup_procs("b-frozen", "b"),
///     Op::unfreeze_cgroup("b"),
///     Op::clear_cpuset("a"),
///     Op::remove_cgroup("a"),
/// ];
/// let step = Step::new(ops, HoldSpec::frac(0.5));
/// # let _ = step;
/// ```
///
/// # Workers
///
/// ```rust
/// use schedbox_scenario::prelude::*;
///
/// let ops = vec![
///     Op::add_cgroup("src"),
///     Op::add_cgroup("dst"),
///     Op::spawn(SpawnPlacement::cgroup("src"), WorkSpec::default().workers(3)),
///     Op::spawn(
///         SpawnPlacement::runner_cgroup(),
///         WorkSpec::default().work(WorkType::futex_ping_pong(100)).workers(2),
///     ),
///     Op::set_affinity("src", AffinityIntent::SingleCpu),
///     Op::move_all_tasks("src", "dst"),
///     Op::stop_cgroup("dst"),
/// ];
/// # let _ = ops;
/// ```
///
/// # Payloads
///
/// ```rust
/// use schedbox_scenario::prelude::*;
///
/// // Both payloads must be listed with `ScenarioInfo::payload(..)`.
/// let backdrop = Backdrop::new().push_cgroup(CgroupDef::named("hog"));
/// let steps = vec![
///     Step::with_op(Op::run_payload("stress", &["--cpu", "2"], Some("hog")), HoldSpec::frac(0.5)),
///     Step::with_op(Op::kill_payload_in_cgroup("stress", "hog"), HoldSpec::fixed(100)),
///     Step::new(
///         vec![Op::run_payload("probe", &[], None), Op::wait_payload("probe")],
///         HoldSpec::fixed(100),
///     ),
/// ];
/// # let _ = (backdrop, steps);
/// ```
///
/// # Kernel memory
///
/// ```rust
/// use schedbox_scenario::prelude::*;
///
/// let ops = vec![
///     Op::read_kernel_cold("jiffies", KernelTarget::symbol("jiffies_64"), KernelValueWidth::u64()),
///     Op::read_kernel_hot(
///         "rq1-nr-running",
///         KernelTarget::per_cpu_field("runqueues", "nr_running", 1),
///         KernelValueWidth::u32(),
///     ),
///     Op::write_kernel_cold(KernelTarget::symbol("sysctl_sched_migration_cost"), KernelValue::u32(0)),
///     Op::write_kernel_hot_batch(vec![
///         KernelWrite::new(KernelTarget::kva(0xffff_8880_0000_1000), KernelValue::u64(1)),
///         KernelWrite::new(KernelTarget::direct(0xffff_8880_0000_2000), KernelValue::bytes([0u8; 4])),
///     ]),
///     Op::watch_snapshot("scx_watchdog_timestamp"),
///     Op::capture_snapshot("after-writes"),
/// ];
/// # let _ = ops;
/// ```
///
/// # Schedulers
///
/// ```rust
/// use schedbox_scenario::prelude::*;
///
/// // Declare every name with `ScenarioInfo::scheduler(..)`, the built-in `fixture` too.
/// let steps = vec![
///     Step::with_op(Op::attach_scheduler("fixture"), HoldSpec::frac(0.3)),
///     Step::new(vec![Op::pin_bpf_map("stats"), Op::restart_scheduler()], HoldSpec::frac(0.2)),
///     Step::with_op(Op::replace_scheduler("fixture-alt"), HoldSpec::frac(0.3)),
///     Step::with_op(Op::detach_scheduler(), HoldSpec::frac(0.2)),
/// ];
/// # let _ = steps;
/// ```
///
/// # IRQs
///
/// ```rust
/// use schedbox_scenario::prelude::*;
///
/// let ops = vec![
///     Op::steer_irq(IrqSelector::by_number(24), 1),
///     Op::steer_irq(IrqSelector::by_label("virtio0-input.0"), 0),
///     Op::steer_irq_cpus(IrqSelector::by_number(24), [0, 1, 2, 3]),
/// ];
/// # let _ = ops;
/// ```
impl Op {
    // Cgroups.

    /// Create an empty cgroup.
    pub fn add_cgroup(name: impl Into<String>) -> Self {
        Op::AddCgroup { name: name.into() }
    }

    /// Create a cgroup with its knobs and workload at once, at op time.
    pub fn add_cgroup_def(def: CgroupDef) -> Self {
        Op::AddCgroupDef { def }
    }

    /// Remove a cgroup (its workers are stopped first).
    pub fn remove_cgroup(cgroup: impl Into<String>) -> Self {
        Op::RemoveCgroup { cgroup: cgroup.into() }
    }

    /// Set a cgroup's `cpuset.cpus`.
    pub fn set_cpuset(cgroup: impl Into<String>, cpus: CpusetSpec) -> Self {
        Op::SetCpuset { cgroup: cgroup.into(), cpus }
    }

    /// Reset a cgroup's `cpuset.cpus` to its parent's.
    pub fn clear_cpuset(cgroup: impl Into<String>) -> Self {
        Op::ClearCpuset { cgroup: cgroup.into() }
    }

    /// Exchange the cpusets of two cgroups.
    pub fn swap_cpusets(a: impl Into<String>, b: impl Into<String>) -> Self {
        Op::SwapCpusets { a: a.into(), b: b.into() }
    }

    /// Freeze a cgroup (`cgroup.freeze = 1`).
    pub fn freeze_cgroup(cgroup: impl Into<String>) -> Self {
        Op::FreezeCgroup { cgroup: cgroup.into() }
    }

    /// Thaw a frozen cgroup.
    pub fn unfreeze_cgroup(cgroup: impl Into<String>) -> Self {
        Op::UnfreezeCgroup { cgroup: cgroup.into() }
    }

    /// Record the cgroup's `cgroup.procs` under `tag`
    /// (see [`Results::procs`](crate::types::Results::procs)).
    pub fn capture_cgroup_procs(tag: impl Into<String>, cgroup: impl Into<String>) -> Self {
        Op::CaptureCgroupProcs { tag: tag.into(), cgroup: cgroup.into() }
    }

    // Workers.

    /// Start workers.
    pub fn spawn(placement: SpawnPlacement, work: WorkSpec) -> Self {
        Op::Spawn { placement, work }
    }

    /// Start workers of the added work types or with SCHED_DEADLINE
    /// (see [`WorkSpecV2`](crate::ops::WorkSpecV2)); the host records a `spawn`.
    pub fn spawn_work(placement: SpawnPlacement, work: crate::ops::WorkSpecV2) -> Self {
        Op::SpawnWork { placement, work }
    }

    /// [`Op::spawn_work`] with the workers threads of one process (one address space)
    /// instead of processes; work types that act on their own process are refused.
    pub fn spawn_threads(placement: SpawnPlacement, work: crate::ops::WorkSpecV2) -> Self {
        Op::SpawnThreads { placement, work }
    }

    /// Stop the workers of a cgroup.
    pub fn stop_cgroup(cgroup: impl Into<String>) -> Self {
        Op::StopCgroup { cgroup: cgroup.into() }
    }

    /// Re-pin the workers of a cgroup.
    pub fn set_affinity(cgroup: impl Into<String>, affinity: AffinityIntent) -> Self {
        Op::SetAffinity { cgroup: cgroup.into(), affinity }
    }

    /// Move every task of `from` (`""`: the runner cgroup) into `to`.
    pub fn move_all_tasks(from: impl Into<String>, to: impl Into<String>) -> Self {
        Op::MoveAllTasks { from: from.into(), to: to.into() }
    }

    // Payloads.

    /// Start the staged payload `name` with `args`, in `cgroup` or (with
    /// `None`) in the runner cgroup.
    pub fn run_payload(name: impl Into<String>, args: &[&str], cgroup: Option<&str>) -> Self {
        Op::RunPayload {
            name: name.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            cgroup: cgroup.map(str::to_owned),
        }
    }

    /// Wait for the payload `name` started in the runner cgroup to exit.
    pub fn wait_payload(name: impl Into<String>) -> Self {
        Op::WaitPayload { name: name.into(), cgroup: None }
    }

    /// Wait for the payload `name` started in `cgroup` to exit.
    pub fn wait_payload_in_cgroup(name: impl Into<String>, cgroup: impl Into<String>) -> Self {
        Op::WaitPayload { name: name.into(), cgroup: Some(cgroup.into()) }
    }

    /// Kill the payload `name` started in the runner cgroup.
    pub fn kill_payload(name: impl Into<String>) -> Self {
        Op::KillPayload { name: name.into(), cgroup: None }
    }

    /// Kill the payload `name` started in `cgroup`.
    pub fn kill_payload_in_cgroup(name: impl Into<String>, cgroup: impl Into<String>) -> Self {
        Op::KillPayload { name: name.into(), cgroup: Some(cgroup.into()) }
    }

    // Snapshots and kernel memory.

    /// Capture a snapshot (vCPU registers, watched values, sched_ext state).
    pub fn capture_snapshot(name: impl Into<String>) -> Self {
        Op::CaptureSnapshot { name: name.into() }
    }

    /// Capture a snapshot whenever the kernel writes `symbol`.
    pub fn watch_snapshot(symbol: impl Into<String>) -> Self {
        Op::WatchSnapshot { symbol: symbol.into() }
    }

    /// Write one value while the guest runs.
    pub fn write_kernel_hot(target: KernelTarget, value: KernelValue) -> Self {
        Self::write_kernel_hot_batch(vec![KernelWrite::new(target, value)])
    }

    /// Write several values while the guest runs, in order.
    pub fn write_kernel_hot_batch(writes: Vec<KernelWrite>) -> Self {
        Op::WriteKernelHot { writes }
    }

    /// Write one value with the guest paused.
    pub fn write_kernel_cold(target: KernelTarget, value: KernelValue) -> Self {
        Self::write_kernel_cold_batch(vec![KernelWrite::new(target, value)])
    }

    /// Write several values with the guest paused, as one batch.
    pub fn write_kernel_cold_batch(writes: Vec<KernelWrite>) -> Self {
        Op::WriteKernelCold { writes }
    }

    /// Read a value while the guest runs; found under `tag` in
    /// [`Results::kernel_read`](crate::types::Results::kernel_read).
    pub fn read_kernel_hot(tag: impl Into<String>, target: KernelTarget, width: KernelValueWidth) -> Self {
        Op::ReadKernelHot { tag: tag.into(), target, width }
    }

    /// Read a value with the guest paused; found under `tag` in
    /// [`Results::kernel_read`](crate::types::Results::kernel_read).
    pub fn read_kernel_cold(tag: impl Into<String>, target: KernelTarget, width: KernelValueWidth) -> Self {
        Op::ReadKernelCold { tag: tag.into(), target, width }
    }

    // Schedulers.

    /// Attach the sched_ext scheduler `name`.
    pub fn attach_scheduler(name: impl Into<String>) -> Self {
        Op::AttachScheduler { name: name.into() }
    }

    /// Detach the attached scheduler.
    pub fn detach_scheduler() -> Self {
        Op::DetachScheduler
    }

    /// Restart the attached scheduler.
    pub fn restart_scheduler() -> Self {
        Op::RestartScheduler
    }

    /// Replace the attached scheduler with `name`.
    pub fn replace_scheduler(name: impl Into<String>) -> Self {
        Op::ReplaceScheduler { name: name.into() }
    }

    /// Pin the attached scheduler's BPF map `name`.
    pub fn pin_bpf_map(name: impl Into<String>) -> Self {
        Op::PinBpfMap { name: name.into() }
    }

    // IRQs.

    /// Steer an IRQ to `cpu`.
    pub fn steer_irq(irq: IrqSelector, cpu: u32) -> Self {
        Op::SteerIrq { irq, cpu }
    }

    /// Steer an IRQ to the CPU set `cpus` (e.g. every CPU again).
    pub fn steer_irq_cpus(irq: IrqSelector, cpus: impl IntoIterator<Item = u32>) -> Self {
        Op::SteerIrqCpus { irq, cpus: cpus.into_iter().collect() }
    }

    /// The WIT name of the import this op calls, e.g. `"set-cpuset"`.
    pub fn wit_name(&self) -> &'static str {
        match self {
            Op::AddCgroup { .. } => "add-cgroup",
            Op::AddCgroupDef { .. } => "add-cgroup-def",
            Op::RemoveCgroup { .. } => "remove-cgroup",
            Op::SetCpuset { .. } => "set-cpuset",
            Op::ClearCpuset { .. } => "clear-cpuset",
            Op::SwapCpusets { .. } => "swap-cpusets",
            Op::FreezeCgroup { .. } => "freeze-cgroup",
            Op::UnfreezeCgroup { .. } => "unfreeze-cgroup",
            Op::CaptureCgroupProcs { .. } => "capture-cgroup-procs",
            Op::Spawn { .. } => "spawn",
            Op::SpawnWork { .. } => "spawn-work",
            Op::SpawnThreads { .. } => "spawn-threads",
            Op::StopCgroup { .. } => "stop-cgroup",
            Op::SetAffinity { .. } => "set-affinity",
            Op::MoveAllTasks { .. } => "move-all-tasks",
            Op::RunPayload { .. } => "run-payload",
            Op::WaitPayload { .. } => "wait-payload",
            Op::KillPayload { .. } => "kill-payload",
            Op::CaptureSnapshot { .. } => "capture-snapshot",
            Op::WatchSnapshot { .. } => "watch-snapshot",
            Op::WriteKernelHot { .. } => "write-kernel-hot",
            Op::WriteKernelCold { .. } => "write-kernel-cold",
            Op::ReadKernelHot { .. } => "read-kernel-hot",
            Op::ReadKernelCold { .. } => "read-kernel-cold",
            Op::AttachScheduler { .. } => "attach-scheduler",
            Op::DetachScheduler => "detach-scheduler",
            Op::RestartScheduler => "restart-scheduler",
            Op::ReplaceScheduler { .. } => "replace-scheduler",
            Op::PinBpfMap { .. } => "pin-bpf-map",
            Op::SteerIrq { .. } => "steer-irq",
            Op::SteerIrqCpus { .. } => "steer-irq-cpus",
        }
    }

    /// Call this op's host import now.
    ///
    /// [`emit`](crate::emit) does this for every op of a stream; call it
    /// directly only from [`Scenario::run`](crate::Scenario::run), between the
    /// structure calls of [`ops`](crate::ops). Off wasm32 (e.g. in host-side
    /// unit tests) the imports do not exist and this panics.
    pub fn call(&self) -> Result<(), OpError> {
        use crate::ops;
        match self {
            Op::AddCgroup { name } => ops::add_cgroup(name),
            Op::AddCgroupDef { def } => ops::add_cgroup_def(def),
            Op::RemoveCgroup { cgroup } => ops::remove_cgroup(cgroup),
            Op::SetCpuset { cgroup, cpus } => ops::set_cpuset(cgroup, cpus),
            Op::ClearCpuset { cgroup } => ops::clear_cpuset(cgroup),
            Op::SwapCpusets { a, b } => ops::swap_cpusets(a, b),
            Op::FreezeCgroup { cgroup } => ops::freeze_cgroup(cgroup),
            Op::UnfreezeCgroup { cgroup } => ops::unfreeze_cgroup(cgroup),
            Op::CaptureCgroupProcs { tag, cgroup } => ops::capture_cgroup_procs(tag, cgroup),
            Op::Spawn { placement, work } => ops::spawn(placement, work),
            Op::SpawnWork { placement, work } => ops::spawn_work(placement, work),
            Op::SpawnThreads { placement, work } => ops::spawn_threads(placement, work),
            Op::StopCgroup { cgroup } => ops::stop_cgroup(cgroup),
            Op::SetAffinity { cgroup, affinity } => ops::set_affinity(cgroup, affinity),
            Op::MoveAllTasks { from, to } => ops::move_all_tasks(from, to),
            Op::RunPayload { name, args, cgroup } => ops::run_payload(name, args, cgroup.as_deref()),
            Op::WaitPayload { name, cgroup } => ops::wait_payload(name, cgroup.as_deref()),
            Op::KillPayload { name, cgroup } => ops::kill_payload(name, cgroup.as_deref()),
            Op::CaptureSnapshot { name } => ops::capture_snapshot(name),
            Op::WatchSnapshot { symbol } => ops::watch_snapshot(symbol),
            Op::WriteKernelHot { writes } => ops::write_kernel_hot(writes),
            Op::WriteKernelCold { writes } => ops::write_kernel_cold(writes),
            Op::ReadKernelHot { tag, target, width } => ops::read_kernel_hot(tag, target, *width),
            Op::ReadKernelCold { tag, target, width } => ops::read_kernel_cold(tag, target, *width),
            Op::AttachScheduler { name } => ops::attach_scheduler(name),
            Op::DetachScheduler => ops::detach_scheduler(),
            Op::RestartScheduler => ops::restart_scheduler(),
            Op::ReplaceScheduler { name } => ops::replace_scheduler(name),
            Op::PinBpfMap { name } => ops::pin_bpf_map(name),
            Op::SteerIrq { irq, cpu } => ops::steer_irq(irq, *cpu),
            Op::SteerIrqCpus { irq, cpus } => ops::steer_irq_cpus(irq, cpus),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Partition, PerCpuField, WorkType};

    #[test]
    fn constructors_fill_variants() {
        assert_eq!(
            Op::set_cpuset("cg", CpusetSpec::disjoint(2, 2)),
            Op::SetCpuset { cgroup: "cg".into(), cpus: CpusetSpec::Disjoint(Partition { index: 2, of: 2 }) }
        );
        assert_eq!(
            Op::run_payload("p", &["-a"], Some("cg")),
            Op::RunPayload { name: "p".into(), args: vec!["-a".into()], cgroup: Some("cg".into()) }
        );
        assert_eq!(Op::run_payload("p", &[], None), Op::RunPayload { name: "p".into(), args: vec![], cgroup: None });
        assert_eq!(
            Op::wait_payload_in_cgroup("p", "cg"),
            Op::WaitPayload { name: "p".into(), cgroup: Some("cg".into()) }
        );
        assert_eq!(Op::kill_payload("p"), Op::KillPayload { name: "p".into(), cgroup: None });
        assert_eq!(
            Op::spawn(SpawnPlacement::cgroup("cg"), WorkSpec::default().work(WorkType::wake_chain(3))),
            Op::Spawn {
                placement: SpawnPlacement::Cgroup("cg".into()),
                work: WorkSpec::default().work(WorkType::WakeChain(3)),
            }
        );
    }

    #[test]
    fn write_sugar_wraps_a_single_write() {
        let target = KernelTarget::symbol("x");
        assert_eq!(
            Op::write_kernel_hot(target.clone(), KernelValue::u32(1)),
            Op::write_kernel_hot_batch(vec![KernelWrite::new(target.clone(), KernelValue::u32(1))])
        );
        assert_eq!(
            Op::write_kernel_cold(target.clone(), KernelValue::or_u32(4)),
            Op::WriteKernelCold { writes: vec![KernelWrite { target, value: KernelValue::OrU32(4) }] }
        );
    }

    #[test]
    fn reads_keep_tag_target_and_width() {
        assert_eq!(
            Op::read_kernel_cold("rq", KernelTarget::per_cpu_field("runqueues", "clock", 0), KernelValueWidth::u64()),
            Op::ReadKernelCold {
                tag: "rq".into(),
                target: KernelTarget::PerCpuField(PerCpuField {
                    symbol: "runqueues".into(),
                    field: "clock".into(),
                    cpu: 0,
                }),
                width: KernelValueWidth::U64,
            }
        );
    }

    #[test]
    fn wit_names_match_the_contract() {
        let cases = [
            (Op::add_cgroup("a"), "add-cgroup"),
            (Op::add_cgroup_def(CgroupDef::named("a")), "add-cgroup-def"),
            (Op::remove_cgroup("a"), "remove-cgroup"),
            (Op::set_cpuset("a", CpusetSpec::llc(0)), "set-cpuset"),
            (Op::clear_cpuset("a"), "clear-cpuset"),
            (Op::swap_cpusets("a", "b"), "swap-cpusets"),
            (Op::freeze_cgroup("a"), "freeze-cgroup"),
            (Op::unfreeze_cgroup("a"), "unfreeze-cgroup"),
            (Op::capture_cgroup_procs("t", "a"), "capture-cgroup-procs"),
            (Op::spawn(SpawnPlacement::runner_cgroup(), WorkSpec::default()), "spawn"),
            (Op::stop_cgroup("a"), "stop-cgroup"),
            (Op::set_affinity("a", AffinityIntent::Inherit), "set-affinity"),
            (Op::move_all_tasks("", "a"), "move-all-tasks"),
            (Op::run_payload("p", &[], None), "run-payload"),
            (Op::wait_payload("p"), "wait-payload"),
            (Op::kill_payload_in_cgroup("p", "a"), "kill-payload"),
            (Op::capture_snapshot("s"), "capture-snapshot"),
            (Op::watch_snapshot("s"), "watch-snapshot"),
            (Op::write_kernel_hot_batch(vec![]), "write-kernel-hot"),
            (Op::write_kernel_cold_batch(vec![]), "write-kernel-cold"),
            (Op::read_kernel_hot("t", KernelTarget::kva(0), KernelValueWidth::u32()), "read-kernel-hot"),
            (Op::read_kernel_cold("t", KernelTarget::direct(0), KernelValueWidth::bytes(8)), "read-kernel-cold"),
            (Op::attach_scheduler("fixture"), "attach-scheduler"),
            (Op::detach_scheduler(), "detach-scheduler"),
            (Op::restart_scheduler(), "restart-scheduler"),
            (Op::replace_scheduler("x"), "replace-scheduler"),
            (Op::pin_bpf_map("m"), "pin-bpf-map"),
            (Op::steer_irq(IrqSelector::by_label("eth0"), 1), "steer-irq"),
            (Op::steer_irq_cpus(IrqSelector::by_number(4), [0, 1]), "steer-irq-cpus"),
        ];
        for (op, name) in cases {
            assert_eq!(op.wit_name(), name, "{op:?}");
        }
    }
}
