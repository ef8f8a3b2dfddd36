//! The incremental validator: stream structure, cgroup ownership, payload
//! handles and declared names, tracked op by op.

use std::collections::{BTreeMap, BTreeSet};

use super::{args, Problem, ValidationError, MAX_WATCHES};
use crate::op_model::*;

/// Who owns a live cgroup or payload handle: its lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Backdrop,
    Step,
}

impl Owner {
    fn describe(self) -> &'static str {
        match self {
            Owner::Backdrop => "the Backdrop",
            Owner::Step => "the current step",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    InBackdrop,
    InStep(usize),
}

/// Validates a stream as it is emitted. Feed it in stream order:
/// `open_backdrop`/`op`…/`close_backdrop`, then per step
/// `open_step`/`op`…/`close_step`, and `finish` at the end.
#[derive(Debug)]
pub struct Validator {
    info: ScenarioInfo,
    state: State,
    backdrop_seen: bool,
    steps: usize,
    /// Index of the next op in the open section.
    next_op: usize,
    cgroups: BTreeMap<String, Owner>,
    /// Live payload copies: (name, cgroup) → owner.
    payloads: Vec<(String, Option<String>, Owner)>,
    watches: usize,
    /// Cgroups frozen now: a freeze lasts, across steps, until an unfreeze-cgroup or
    /// the cgroup's removal (its step's teardown, for a step-local cgroup).
    frozen: BTreeSet<String>,
}

impl Validator {
    /// Starts validating a stream of the scenario `info` describes; checks `info` itself.
    pub fn new(info: &ScenarioInfo) -> Result<Self, ValidationError> {
        let v = Self {
            info: info.clone(),
            state: State::Idle,
            backdrop_seen: false,
            steps: 0,
            next_op: 0,
            cgroups: BTreeMap::new(),
            payloads: Vec::new(),
            watches: 0,
            frozen: BTreeSet::new(),
        };
        describe(info).map_err(|p| v.located(None, None, None, p))?;
        Ok(v)
    }

    /// The section an op emitted now would land in.
    pub fn section(&self) -> Option<Section> {
        match self.state {
            State::Idle => None,
            State::InBackdrop => Some(Section::Backdrop),
            State::InStep(i) => Some(Section::Step(i)),
        }
    }

    /// Index the next op would get in its section.
    pub fn next_op_index(&self) -> usize {
        self.next_op
    }

    fn located(
        &self,
        section: Option<Section>,
        op_index: Option<usize>,
        op: Option<OpKind>,
        p: Problem,
    ) -> ValidationError {
        ValidationError { scenario: self.info.name.clone(), section, op_index, op, message: p.message, fix: p.fix }
    }

    fn structural(&self, p: Problem) -> ValidationError {
        let section = self.section().or(Some(Section::Step(self.steps)));
        self.located(section, None, None, p)
    }

    pub fn open_backdrop(&mut self, cgroups: &[CgroupDef]) -> Result<(), ValidationError> {
        if self.backdrop_seen || self.steps > 0 || self.state != State::Idle {
            let why = if self.backdrop_seen { "the Backdrop was already opened" } else { "a step was already opened" };
            return Err(self.located(
                Some(Section::Backdrop),
                None,
                None,
                Problem::new(
                    format!("open-backdrop called out of order: {why}"),
                    "declare the Backdrop once, before the first step",
                ),
            ));
        }
        self.state = State::InBackdrop;
        self.backdrop_seen = true;
        self.next_op = 0;
        self.declare(cgroups, Owner::Backdrop)
    }

    pub fn close_backdrop(&mut self) -> Result<(), ValidationError> {
        if self.state != State::InBackdrop {
            return Err(self.structural(Problem::new(
                "close-backdrop without an open Backdrop",
                "call open-backdrop first (Backdrop::new() in the Rust SDK)",
            )));
        }
        self.state = State::Idle;
        Ok(())
    }

    pub fn open_step(&mut self, setup: &[CgroupDef]) -> Result<(), ValidationError> {
        match self.state {
            State::Idle => {}
            State::InBackdrop => {
                return Err(self.structural(Problem::new(
                    "open-step while the Backdrop is open",
                    "call close-backdrop before the first step",
                )))
            }
            State::InStep(i) => {
                return Err(self.structural(Problem::new(
                    format!("open-step while step {i} is still open"),
                    "close each step with close-step (its hold) before opening the next",
                )))
            }
        }
        self.state = State::InStep(self.steps);
        self.next_op = 0;
        self.declare(setup, Owner::Step)
    }

    pub fn close_step(&mut self, hold: &HoldSpec) -> Result<(), ValidationError> {
        let State::InStep(i) = self.state else {
            return Err(self.structural(Problem::new(
                "close-step without an open step",
                "call open-step before adding ops and closing",
            )));
        };
        args::hold(hold, Some(self.info.duration_ms))
            .map_err(|p| self.located(Some(Section::Step(i)), None, None, p.context("hold")))?;
        // Step teardown: step-local cgroups go, step-owned payloads are drained.
        self.cgroups.retain(|_, o| *o == Owner::Backdrop);
        self.payloads.retain(|(_, _, o)| *o == Owner::Backdrop);
        let live = &self.cgroups;
        self.frozen.retain(|c| live.contains_key(c));
        self.state = State::Idle;
        self.steps += 1;
        Ok(())
    }

    /// Checks the end of the stream.
    pub fn finish(self) -> Result<(), ValidationError> {
        match self.state {
            State::Idle if self.steps == 0 => Err(self.located(
                None,
                None,
                None,
                Problem::new("the scenario emitted no steps", "emit at least one step (open-step … close-step)"),
            )),
            State::Idle => Ok(()),
            State::InBackdrop => {
                Err(self.structural(Problem::new("the Backdrop was never closed", "call close-backdrop")))
            }
            State::InStep(i) => Err(self.structural(Problem::new(
                format!("step {i} was never closed"),
                "close the step with close-step and its hold",
            ))),
        }
    }

    fn declare(&mut self, defs: &[CgroupDef], owner: Owner) -> Result<(), ValidationError> {
        let section = self.section();
        let where_ = if owner == Owner::Backdrop { "Backdrop cgroup" } else { "setup cgroup" };
        for def in defs {
            let topo = &self.info.topology;
            args::cgroup_def(def, Some(topo))
                .and_then(|()| self.add(&def.name, owner))
                .and_then(|()| self.payload_of_def(def, owner))
                .map_err(|p| self.located(section, None, None, p.context(where_)))?;
        }
        Ok(())
    }

    fn add(&mut self, name: &str, owner: Owner) -> Result<(), Problem> {
        if let Some(existing) = self.cgroups.get(name) {
            return Err(Problem::new(
                format!("cgroup {name:?} already exists (owned by {})", existing.describe()),
                "give the cgroup a name not used by the Backdrop or this step, or remove the old one first",
            ));
        }
        self.cgroups.insert(name.to_owned(), owner);
        Ok(())
    }

    fn payload_of_def(&mut self, def: &CgroupDef, owner: Owner) -> Result<(), Problem> {
        if let Some(p) = &def.payload {
            self.declared_payload(&p.name)?;
            self.payloads.push((p.name.clone(), Some(def.name.clone()), owner));
        }
        Ok(())
    }

    fn owner_of(&self, cgroup: &str) -> Result<Owner, Problem> {
        self.cgroups.get(cgroup).copied().ok_or_else(|| {
            let known: Vec<&str> = self.cgroups.keys().map(String::as_str).collect();
            let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
            Problem::new(
                format!("cgroup {cgroup:?} does not exist at this point (live cgroups: {known})"),
                "create it first: a Backdrop cgroup, a step setup cgroup, add-cgroup or add-cgroup-def earlier in the step",
            )
        })
    }

    /// A task started in a frozen cgroup would freeze before it execs.
    fn not_frozen(&self, cgroup: &str, what: &str) -> Result<(), Problem> {
        if self.frozen.contains(cgroup) {
            return Err(Problem::new(
                format!(
                    "cgroup {cgroup:?} is frozen here: a freeze-cgroup lasts, across steps, until unfreeze-cgroup \
                     or the cgroup's removal, and a task started in a frozen cgroup never runs"
                ),
                format!("unfreeze-cgroup {cgroup:?} before you {what} in it"),
            ));
        }
        Ok(())
    }

    fn declared_payload(&self, name: &str) -> Result<(), Problem> {
        if self.info.payloads.iter().any(|p| p == name) {
            Ok(())
        } else {
            Err(Problem::new(
                format!("payload {name:?} is not declared in describe (declared: {})", list(&self.info.payloads)),
                format!("add {name:?} to the payloads of describe and stage it with --payload {name}=PATH"),
            ))
        }
    }

    fn declared_scheduler(&self, name: &str) -> Result<(), Problem> {
        if self.info.schedulers.iter().any(|s| s == name) {
            Ok(())
        } else {
            Err(Problem::new(
                format!("scheduler {name:?} is not declared in describe (declared: {})", list(&self.info.schedulers)),
                format!("add {name:?} to the schedulers of describe"),
            ))
        }
    }

    /// Validates one op in the open section and applies its effect on the
    /// tracked state. On error nothing is applied.
    pub fn op(&mut self, op: &Op) -> Result<(), ValidationError> {
        let section = self.section();
        let index = self.next_op;
        let Some(section) = section else {
            return Err(self.located(
                Some(Section::Step(self.steps)),
                Some(0),
                Some(op.kind()),
                Problem::new(
                    "op emitted outside any step or Backdrop",
                    "open a step (open-step) or the Backdrop (open-backdrop) before emitting ops",
                ),
            ));
        };
        let owner = if section == Section::Backdrop { Owner::Backdrop } else { Owner::Step };
        self.apply(op, owner).map_err(|p| self.located(Some(section), Some(index), Some(op.kind()), p))?;
        self.next_op += 1;
        Ok(())
    }

    fn apply(&mut self, op: &Op, owner: Owner) -> Result<(), Problem> {
        op_args(op, Some(&self.info.topology))?;
        match op {
            Op::AddCgroup { name } => self.add(name, owner)?,
            Op::AddCgroupDef { def } => {
                self.add(&def.name, owner)?;
                if let Err(p) = self.payload_of_def(def, owner) {
                    self.cgroups.remove(&def.name);
                    return Err(p);
                }
            }
            Op::RemoveCgroup { cgroup } => {
                self.owner_of(cgroup)?;
                self.cgroups.remove(cgroup);
                self.frozen.remove(cgroup);
                self.payloads.retain(|(_, cg, _)| cg.as_deref() != Some(cgroup.as_str()));
            }
            Op::SetCpuset { cgroup, .. }
            | Op::ClearCpuset { cgroup }
            | Op::StopCgroup { cgroup }
            | Op::SetAffinity { cgroup, .. }
            | Op::CaptureCgroupProcs { cgroup, .. } => {
                self.owner_of(cgroup)?;
            }
            Op::FreezeCgroup { cgroup } => {
                self.owner_of(cgroup)?;
                self.frozen.insert(cgroup.clone());
            }
            Op::UnfreezeCgroup { cgroup } => {
                self.owner_of(cgroup)?;
                self.frozen.remove(cgroup);
            }
            Op::SwapCpusets { a, b } => {
                self.owner_of(a)?;
                self.owner_of(b)?;
            }
            Op::Spawn { placement: SpawnPlacement::Cgroup(cg), .. } => {
                self.owner_of(cg)?;
                self.not_frozen(cg, "spawn workers")?;
            }
            Op::MoveAllTasks { from, to } => {
                let to_owner = self.owner_of(to)?;
                if !from.is_empty() {
                    let from_owner = self.owner_of(from)?;
                    if from_owner == Owner::Backdrop && to_owner == Owner::Step && owner == Owner::Step {
                        return Err(Problem::new(
                            format!(
                                "move-all-tasks {from:?} -> {to:?} moves Backdrop tasks into a step-local cgroup, \
                                 which is removed at step teardown and would strand them"
                            ),
                            format!(
                                "declare {to:?} in the Backdrop too, or move the tasks into a Backdrop-owned cgroup"
                            ),
                        ));
                    }
                }
            }
            Op::RunPayload { name, cgroup, .. } => {
                self.declared_payload(name)?;
                if let Some(cg) = cgroup {
                    self.owner_of(cg)?;
                    self.not_frozen(cg, "start a payload")?;
                }
                self.payloads.push((name.clone(), cgroup.clone(), owner));
            }
            Op::WaitPayload { name, cgroup } | Op::KillPayload { name, cgroup } => {
                self.declared_payload(name)?;
                let i = self.find_payload(name, cgroup.as_deref())?;
                self.payloads.remove(i);
            }
            Op::WatchSnapshot { .. } => {
                if self.watches >= MAX_WATCHES {
                    return Err(Problem::new(
                        format!("more than {MAX_WATCHES} watch-snapshot ops in one scenario"),
                        format!("keep at most {MAX_WATCHES} watches (hardware slot 0 is reserved); use capture-snapshot for time-driven captures"),
                    ));
                }
                self.watches += 1;
            }
            Op::AttachScheduler { scheduler } | Op::ReplaceScheduler { scheduler } => {
                self.declared_scheduler(scheduler)?;
            }
            Op::SteerIrq { cpu, .. } => {
                let n = self.info.topology.vcpus();
                if u64::from(*cpu) >= n {
                    return Err(Problem::new(
                        format!("steer-irq to CPU {cpu}, but the scenario declares {n} vCPUs"),
                        format!("steer to a CPU in 0..{n}"),
                    ));
                }
            }
            Op::SteerIrqCpus { cpus, .. } => {
                let n = self.info.topology.vcpus();
                if cpus.is_empty() {
                    return Err(Problem::new("steer-irq-cpus with no CPU", "give at least one CPU"));
                }
                if let Some(cpu) = cpus.iter().find(|c| u64::from(**c) >= n) {
                    return Err(Problem::new(
                        format!("steer-irq-cpus to CPU {cpu}, but the scenario declares {n} vCPUs"),
                        format!("steer to CPUs in 0..{n}"),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn find_payload(&self, name: &str, cgroup: Option<&str>) -> Result<usize, Problem> {
        let matches: Vec<usize> = self
            .payloads
            .iter()
            .enumerate()
            .filter(|(_, (n, cg, _))| n == name && (cgroup.is_none() || cg.as_deref() == cgroup))
            .map(|(i, _)| i)
            .collect();
        let at = cgroup.map(|c| format!(" in cgroup {c:?}")).unwrap_or_default();
        match matches.as_slice() {
            [i] => Ok(*i),
            [] => Err(Problem::new(
                format!("payload {name:?}{at} is not running here: never started, or already waited for or killed"),
                "start it with run-payload earlier in this step or in the Backdrop, and wait or kill each copy once",
            )),
            many => {
                let where_: Vec<String> =
                    many.iter().map(|&i| self.payloads[i].1.clone().unwrap_or_else(|| "<runner>".into())).collect();
                Err(Problem::new(
                    format!(
                        "payload {name:?} is ambiguous: {} copies are live (cgroups: {})",
                        many.len(),
                        where_.join(", ")
                    ),
                    "name the cgroup (wait-payload/kill-payload with a cgroup)",
                ))
            }
        }
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn describe(info: &ScenarioInfo) -> Result<(), Problem> {
    args::name("scenario name", &info.name)?;
    let t = &info.topology;
    if t.numa_nodes == 0 || t.llcs_per_node == 0 || t.cores_per_llc == 0 || t.threads_per_core == 0 {
        return Err(Problem::new(
            format!("topology {t} has a zero dimension"),
            "every topology dimension must be at least 1, e.g. 1n1l2c1t",
        ));
    }
    if t.vcpus() > 256 {
        return Err(Problem::new(format!("topology {t} asks for {} vCPUs", t.vcpus()), "ask for at most 256 vCPUs"));
    }
    if info.duration_ms == 0 || info.duration_ms > 86_400_000 {
        return Err(Problem::new(
            format!("duration {} ms is outside 1 ms..=24 h", info.duration_ms),
            "give the scenario a duration between 1 ms and 24 h",
        ));
    }
    for (what, names) in [("payload name", &info.payloads), ("scheduler name", &info.schedulers)] {
        for (i, n) in names.iter().enumerate() {
            args::staged_name(what, n)?;
            if names[..i].contains(n) {
                return Err(Problem::new(format!("{what} {n:?} is declared twice"), "declare each name once"));
            }
        }
    }
    Ok(())
}

/// Checks an op's own arguments against the declared topology.
pub(super) fn op_args(op: &Op, topo: Option<&Topology>) -> Result<(), Problem> {
    match op {
        Op::AddCgroup { name } => args::cgroup_name(name),
        Op::AddCgroupDef { def } => args::cgroup_def(def, topo),
        Op::RemoveCgroup { cgroup }
        | Op::ClearCpuset { cgroup }
        | Op::StopCgroup { cgroup }
        | Op::FreezeCgroup { cgroup }
        | Op::UnfreezeCgroup { cgroup } => args::cgroup_name(cgroup),
        Op::SetCpuset { cgroup, cpus } => {
            args::cgroup_name(cgroup)?;
            args::cpuset(cpus, topo)
        }
        Op::SwapCpusets { a, b } => {
            args::cgroup_name(a)?;
            args::cgroup_name(b)?;
            if a == b {
                return Err(Problem::new(format!("swap-cpusets of {a:?} with itself"), "swap two different cgroups"));
            }
            Ok(())
        }
        Op::Spawn { placement, work } => {
            if let SpawnPlacement::Cgroup(cg) = placement {
                args::cgroup_name(cg)?;
            }
            if *placement == SpawnPlacement::RunnerCgroup && matches!(work.workers, WorkerCount::Pct(_)) {
                return Err(Problem::new(
                    "workers-pct with runner-cgroup placement: the runner's cgroup has no managed cpuset to take a percentage of",
                    "give an explicit worker count, or spawn into a managed cgroup with a cpuset",
                ));
            }
            if *placement == SpawnPlacement::RunnerCgroup
                && matches!(work.work, WorkType::CgroupChurn { .. } | WorkType::CgroupAttachStorm { .. })
            {
                return Err(Problem::new(
                    "cgroup-churn and cgroup-attach-storm make child cgroups of their own, which the runner's cgroup \
                     cannot have",
                    "spawn them into a managed cgroup",
                ));
            }
            args::work_spec(work, topo)
        }
        Op::SetAffinity { cgroup, affinity } => {
            args::cgroup_name(cgroup)?;
            let spec = WorkSpec::default().affinity(affinity.clone());
            args::work_spec(&spec, topo)
        }
        Op::MoveAllTasks { from, to } => {
            if from == to {
                return Err(Problem::new(
                    format!("move-all-tasks from {from:?} to {to:?} moves a cgroup onto itself and would do nothing"),
                    "name two different cgroups (\"\" as the source means the runner-cgroup workers)",
                ));
            }
            if to.is_empty() {
                return Err(Problem::new(
                    "move-all-tasks into \"\": the runner cgroup is not a move target",
                    "move the tasks into a managed cgroup",
                ));
            }
            if !from.is_empty() {
                args::cgroup_name(from)?;
            }
            args::cgroup_name(to)
        }
        Op::RunPayload { name, args: a, cgroup } => {
            args::staged_name("payload name", name)?;
            if let Some(cg) = cgroup {
                args::cgroup_name(cg)?;
            }
            if a.iter().any(|s| s.contains('\0')) {
                return Err(Problem::new("a payload argument contains a NUL byte", "remove the NUL byte"));
            }
            Ok(())
        }
        Op::WaitPayload { name, cgroup } | Op::KillPayload { name, cgroup } => {
            args::staged_name("payload name", name)?;
            cgroup.as_deref().map_or(Ok(()), args::cgroup_name)
        }
        Op::CaptureSnapshot { name } => args::name("snapshot name", name),
        Op::WatchSnapshot { symbol } => args::name("watch symbol", symbol),
        Op::WriteKernelHot { writes } => args::kernel_writes(writes, true),
        Op::WriteKernelCold { writes } => args::kernel_writes(writes, false),
        Op::ReadKernelHot { tag, target, width } => args::kernel_read(tag, target, width, true),
        Op::ReadKernelCold { tag, target, width } => args::kernel_read(tag, target, width, false),
        Op::AttachScheduler { scheduler } | Op::ReplaceScheduler { scheduler } => {
            args::staged_name("scheduler name", scheduler)
        }
        Op::DetachScheduler | Op::RestartScheduler => Ok(()),
        Op::PinBpfMap { name } => {
            args::name("BPF map name", name)?;
            if name.len() > 15 {
                return Err(Problem::new(
                    format!("BPF map name {name:?} is {} bytes; the kernel keeps 15", name.len()),
                    "pass the kernel-visible (truncated) name, e.g. `scx_fifo.bss`",
                ));
            }
            Ok(())
        }
        Op::CaptureCgroupProcs { tag, cgroup } => {
            args::name("capture tag", tag)?;
            args::cgroup_name(cgroup)
        }
        Op::SteerIrq { irq, .. } | Op::SteerIrqCpus { irq, .. } => match irq {
            IrqSelector::ByLabel(l) => args::name("IRQ label", l),
            IrqSelector::ByNumber(_) => Ok(()),
        },
        other => Err(Problem::new(
            format!("op {} has no validation rules in this host", other.kind().wit_name()),
            "upgrade schedbox: this op is newer than the validator",
        )),
    }
}
