//! The `ops` imports: each call is converted to the op model, checked where it
//! is made, and appended to the stream being recorded.

use crate::contract::schedbox::scenario::{metrics, ops, types as wit};
use crate::op_model::*;
use crate::validate::{arg_bytes, ValidationError, Validator};

use super::SandboxLimits;

/// Why recording stopped for good: a sandbox bound was hit. Traps the guest.
#[derive(Debug, thiserror::Error)]
pub enum BoundError {
    #[error(
        "the op stream exceeded {limit} ops (op {count} rejected); raise the bound with --max-ops or emit fewer ops"
    )]
    TooManyOps { limit: usize, count: usize },
    #[error(
        "{op}: an argument of {len} bytes exceeds the {limit}-byte bound on strings and lists; pass shorter values"
    )]
    TooLarge { op: &'static str, len: usize, limit: usize },
    #[error(
        "the op stream exceeded {limit} {what} ({what} {count} rejected); raise the bound with --max-ops (it bounds ops, steps and setup cgroups each) or emit fewer"
    )]
    TooManyItems { what: &'static str, limit: usize, count: usize },
    #[error(
        "the host rejected {limit} op calls; a scenario that keeps calling after an op-error is stopped (handle the op-error and return it from run)"
    )]
    TooManyRejections { limit: usize },
    #[error("{op} called from `{phase}`: ops may only be emitted from `run`")]
    WrongPhase { op: &'static str, phase: &'static str },
}

/// The export being called, which decides whether ops may be emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Describe,
    Run,
    Check,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Describe => "describe",
            Phase::Run => "run",
            Phase::Check => "check",
        }
    }
}

/// Records the stream of one `run` call.
pub struct Recorder {
    limits: SandboxLimits,
    pub(super) phase: Phase,
    validator: Option<Validator>,
    backdrop: Backdrop,
    steps: Vec<Step>,
    open: Option<Step>,
    count: usize,
    /// Steps opened and setup cgroups declared (Backdrop and steps), each bounded like ops.
    steps_opened: usize,
    setup_cgroups: usize,
    /// The first [`KEPT_REJECTIONS`] call-site rejections and the last one, each
    /// message cut to [`REJECTION_BYTES`]; the first explains a failed `run`.
    pub(super) rejections: Vec<ValidationError>,
    /// How many calls were rejected.
    rejected: usize,
    /// What the `metrics` import hands `check`: the step metrics of the run it judges.
    pub(super) step_metrics: Vec<crate::results::StepMetrics>,
}

impl Recorder {
    pub fn new(limits: SandboxLimits) -> Self {
        Self {
            limits,
            phase: Phase::Describe,
            validator: None,
            backdrop: Backdrop::default(),
            steps: Vec::new(),
            open: None,
            count: 0,
            steps_opened: 0,
            setup_cgroups: 0,
            rejections: Vec::new(),
            rejected: 0,
            step_metrics: Vec::new(),
        }
    }

    /// Starts recording a `run` of the scenario `info` describes.
    pub fn start(&mut self, info: &ScenarioInfo) -> Result<(), ValidationError> {
        self.validator = Some(Validator::new(info)?);
        self.phase = Phase::Run;
        Ok(())
    }

    /// Ends recording: checks the stream's end and hands it over.
    pub fn finish(&mut self, info: ScenarioInfo) -> Result<OpStream, ValidationError> {
        self.phase = Phase::Check;
        if let Some(v) = self.validator.take() {
            v.finish()?;
        }
        Ok(OpStream {
            contract: CONTRACT_VERSION.to_owned(),
            scenario: info,
            backdrop: std::mem::take(&mut self.backdrop),
            steps: std::mem::take(&mut self.steps),
        })
    }

    fn gate(&mut self, op: &'static str, size: usize) -> wasmtime::Result<()> {
        if self.phase != Phase::Run {
            return Err(BoundError::WrongPhase { op, phase: self.phase.name() }.into());
        }
        if size > self.limits.max_arg_bytes {
            return Err(BoundError::TooLarge { op, len: size, limit: self.limits.max_arg_bytes }.into());
        }
        Ok(())
    }

    fn reject(&mut self, mut e: ValidationError) -> wasmtime::Result<wit::OpError> {
        self.rejected += 1;
        if self.rejected > self.limits.max_ops {
            return Err(BoundError::TooManyRejections { limit: self.limits.max_ops }.into());
        }
        cut(&mut e.message);
        cut(&mut e.fix);
        let out = wit::OpError { message: e.message.clone(), fix: e.fix.clone() };
        if self.rejections.len() > KEPT_REJECTIONS {
            // Keep the first ones and the latest.
            self.rejections.pop();
        }
        self.rejections.push(e);
        Ok(out)
    }

    /// Counts `n` more of `what` (steps, setup cgroups) against the op bound.
    fn count_items(&mut self, what: &'static str, n: usize) -> wasmtime::Result<()> {
        let counter = if what == "steps" { &mut self.steps_opened } else { &mut self.setup_cgroups };
        *counter = counter.saturating_add(n);
        if *counter > self.limits.max_ops {
            return Err(BoundError::TooManyItems { what, limit: self.limits.max_ops, count: *counter }.into());
        }
        Ok(())
    }

    /// The validator of the `run` being recorded; set by `start`.
    fn validator(&mut self) -> wasmtime::Result<&mut Validator> {
        self.validator
            .as_mut()
            .ok_or_else(|| wasmtime::format_err!("internal error: op recorded before the scenario was described"))
    }

    fn push(&mut self, op: Op) -> wasmtime::Result<Result<(), wit::OpError>> {
        let name = op.kind().wit_name();
        self.gate(name, arg_bytes(&op))?;
        if self.count >= self.limits.max_ops {
            return Err(BoundError::TooManyOps { limit: self.limits.max_ops, count: self.count + 1 }.into());
        }
        if let Err(e) = self.validator()?.op(&op) {
            return Ok(Err(self.reject(e)?));
        }
        self.count += 1;
        match self.open.as_mut() {
            Some(step) => step.ops.push(op),
            None => self.backdrop.ops.push(op),
        }
        Ok(Ok(()))
    }
}

/// Rejections kept for messages (besides the latest).
const KEPT_REJECTIONS: usize = 16;
/// Bytes of a kept rejection's message or fix (a message may list every live cgroup).
const REJECTION_BYTES: usize = 4096;

/// Cuts `s` to [`REJECTION_BYTES`] at a character boundary, saying so.
fn cut(s: &mut String) {
    if s.len() > REJECTION_BYTES {
        let mut end = REJECTION_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let dropped = s.len() - end;
        s.truncate(end);
        s.push_str(&format!(" … ({dropped} more bytes)"));
    }
}

impl wit::Host for Recorder {}

impl metrics::Host for Recorder {
    /// The run's step metrics while `check` runs; empty in `describe` and `run`.
    fn steps(&mut self) -> wasmtime::Result<Vec<metrics::StepMetrics>> {
        Ok(self.step_metrics.iter().cloned().map(Into::into).collect())
    }

    /// The latencies of every worker of those step metrics; empty in `describe` and `run`.
    fn latencies(&mut self) -> wasmtime::Result<Vec<metrics::WorkerLatency>> {
        Ok(crate::results::wit_latencies(&self.step_metrics))
    }
}

impl ops::Host for Recorder {
    fn open_backdrop(&mut self, cgroups: Vec<wit::CgroupDef>) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.count_items("setup cgroups", cgroups.len())?;
        let defs: Vec<CgroupDef> = cgroups.into_iter().map(Into::into).collect();
        self.gate("open-backdrop", arg_bytes(&defs))?;
        if let Err(e) = self.validator()?.open_backdrop(&defs) {
            return Ok(Err(self.reject(e)?));
        }
        self.backdrop.cgroups = defs;
        Ok(Ok(()))
    }

    fn close_backdrop(&mut self) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.gate("close-backdrop", 0)?;
        match self.validator()?.close_backdrop() {
            Ok(()) => Ok(Ok(())),
            Err(e) => Ok(Err(self.reject(e)?)),
        }
    }

    fn open_step(&mut self, setup: Vec<wit::CgroupDef>) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.count_items("steps", 1)?;
        self.count_items("setup cgroups", setup.len())?;
        let defs: Vec<CgroupDef> = setup.into_iter().map(Into::into).collect();
        self.gate("open-step", arg_bytes(&defs))?;
        if let Err(e) = self.validator()?.open_step(&defs) {
            return Ok(Err(self.reject(e)?));
        }
        self.open = Some(Step::with_defs(defs, Vec::new(), HoldSpec::FULL));
        Ok(Ok(()))
    }

    fn close_step(&mut self, hold: wit::HoldSpec) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.gate("close-step", 0)?;
        let hold: HoldSpec = hold.into();
        if let Err(e) = self.validator()?.close_step(&hold) {
            return Ok(Err(self.reject(e)?));
        }
        if let Some(mut step) = self.open.take() {
            step.hold = hold;
            self.steps.push(step);
        }
        Ok(Ok(()))
    }

    fn add_cgroup(&mut self, name: String) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::add_cgroup(name))
    }
    fn add_cgroup_def(&mut self, def: wit::CgroupDef) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::add_cgroup_def(def.into()))
    }
    fn remove_cgroup(&mut self, cgroup: String) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::remove_cgroup(cgroup))
    }
    fn set_cpuset(&mut self, cgroup: String, cpus: wit::CpusetSpec) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::set_cpuset(cgroup, cpus.into()))
    }
    fn clear_cpuset(&mut self, cgroup: String) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::clear_cpuset(cgroup))
    }
    fn swap_cpusets(&mut self, a: String, b: String) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::swap_cpusets(a, b))
    }
    fn freeze_cgroup(&mut self, cgroup: String) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::freeze_cgroup(cgroup))
    }
    fn unfreeze_cgroup(&mut self, cgroup: String) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::unfreeze_cgroup(cgroup))
    }
    fn capture_cgroup_procs(&mut self, tag: String, cgroup: String) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::capture_cgroup_procs(tag, cgroup))
    }
    fn spawn(
        &mut self,
        placement: wit::SpawnPlacement,
        work: wit::WorkSpec,
    ) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::spawn(placement.into(), work.into()))
    }
    fn spawn_work(
        &mut self,
        placement: wit::SpawnPlacement,
        work: ops::WorkSpecV2,
    ) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::spawn(placement.into(), work.into()))
    }
    fn spawn_threads(
        &mut self,
        placement: wit::SpawnPlacement,
        work: ops::WorkSpecV2,
    ) -> wasmtime::Result<Result<(), wit::OpError>> {
        let spec = crate::op_model::WorkSpec::from(work).mode(crate::op_model::WorkerMode::Thread);
        self.push(Op::spawn(placement.into(), spec))
    }
    fn stop_cgroup(&mut self, cgroup: String) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::stop_cgroup(cgroup))
    }
    fn set_affinity(
        &mut self,
        cgroup: String,
        affinity: wit::AffinityIntent,
    ) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::set_affinity(cgroup, affinity.into()))
    }
    fn move_all_tasks(&mut self, from: String, to: String) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::move_all_tasks(from, to))
    }
    fn run_payload(
        &mut self,
        name: String,
        args: Vec<String>,
        cgroup: Option<String>,
    ) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::run_payload(name, args, cgroup))
    }
    fn wait_payload(&mut self, name: String, cgroup: Option<String>) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::wait_payload(name, cgroup))
    }
    fn kill_payload(&mut self, name: String, cgroup: Option<String>) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::kill_payload(name, cgroup))
    }
    fn capture_snapshot(&mut self, name: String) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::capture_snapshot(name))
    }
    fn watch_snapshot(&mut self, symbol: String) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::watch_snapshot(symbol))
    }
    fn write_kernel_hot(&mut self, writes: Vec<wit::KernelWrite>) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::write_kernel_hot(writes.into_iter().map(Into::into).collect()))
    }
    fn write_kernel_cold(&mut self, writes: Vec<wit::KernelWrite>) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::write_kernel_cold(writes.into_iter().map(Into::into).collect()))
    }
    fn read_kernel_hot(
        &mut self,
        tag: String,
        target: wit::KernelTarget,
        width: wit::KernelValueWidth,
    ) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::read_kernel_hot(tag, target.into(), width.into()))
    }
    fn read_kernel_cold(
        &mut self,
        tag: String,
        target: wit::KernelTarget,
        width: wit::KernelValueWidth,
    ) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::read_kernel_cold(tag, target.into(), width.into()))
    }
    fn attach_scheduler(&mut self, name: String) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::attach_scheduler(name))
    }
    fn detach_scheduler(&mut self) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::detach_scheduler())
    }
    fn restart_scheduler(&mut self) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::restart_scheduler())
    }
    fn replace_scheduler(&mut self, name: String) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::replace_scheduler(name))
    }
    fn pin_bpf_map(&mut self, name: String) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::pin_bpf_map(name))
    }
    fn steer_irq(&mut self, irq: wit::IrqSelector, cpu: u32) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::steer_irq(irq.into(), cpu))
    }
    fn steer_irq_cpus(&mut self, irq: wit::IrqSelector, cpus: Vec<u32>) -> wasmtime::Result<Result<(), wit::OpError>> {
        self.push(Op::steer_irq_cpus(irq.into(), cpus))
    }
}
