//! The executor: runs a validated op stream on a booted machine with the
//! step / hold / Backdrop semantics of the reference, and collects results.
//!
//! Backdrop setup first; then per step: setup cgroups, ops in order, the
//! hold, teardown. A failed op fails its step with the error chain, skips the
//! remaining steps, and everything is still torn down. Guest-side ops and
//! scheduler ops go to the agent; host-side ops (snapshots, kernel memory reads
//! and writes, watchpoints) run here against the machine's memory, registers and
//! freeze rendezvous (`host_ops`).
//!
//! [`execute_observed`] reports each step, setup, op and hold to a [`Progress`] as it
//! happens and stops where that observer cancels (`schedbox watch`'s live view and reload).
//!
//! Guest processes may ask for host-side ops through the agent; they run with the
//! same code between ops and during holds (`guest_requests`).

mod guest_requests;
mod hold;
mod host_ops;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use schedbox_wire::{Applied, Owner, RequestBody, ResponseBody, Teardown, SCHEDULER_START_WAIT};

use crate::machine::{Machine, MachineError};
use crate::monitor::Monitor;
use crate::op_model::{Op, OpKind, OpStream};
use crate::results::{Results, StepResult, StepStatus};

pub use hold::hold_duration;
pub use host_ops::{run_host_ops, HostOpsOutcome};

/// Payload binaries staged for a run: name → default arguments.
pub type PayloadDefaults = BTreeMap<String, Vec<String>>;

/// What a guest process may ask of the host during a run (guest-initiated host-side
/// ops): the run's policy applied to its component ([`crate::policy::Policy::guest_grants`]).
/// The default grants kernel reads, as the default policy does; kernel writes are never
/// granted to the guest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestGrants {
    /// `Some(why)`: kernel reads, snapshots and watches asked for by the guest are
    /// refused with `why` (the policy's `reads = false`, for an untrusted component).
    pub reads_refused: Option<String>,
}

/// What a run produced, beyond the results handed to `check`.
#[derive(Debug, Default)]
pub struct Execution {
    pub results: Results,
    /// An error outside any step (Backdrop set-up, teardown, a dead VM).
    pub error: Option<String>,
    /// What teardown could not remove.
    pub leftovers: Vec<String>,
    /// What the agent noted while applying (e.g. scheduler transitions).
    pub notes: Vec<String>,
    /// Freeze rendezvous run for cold accesses and snapshots.
    pub rendezvous: u64,
    pub duration: Duration,
    /// The observer cancelled the run: it stopped between ops (or in a hold) without
    /// tearing down, so the caller must reset the guest before the next scenario.
    pub cancelled: bool,
}

/// Watches a run as it happens and may cancel it (`schedbox watch`: a live view, and
/// a run abandoned when its component changes). Every method has a no-op default.
pub trait Progress {
    /// Step `index` of `of` starts (its setup comes next).
    fn step_started(&mut self, _index: usize, _of: usize) {}
    /// The cgroups of step `step`'s setup (`None`: the Backdrop's) were created in the guest.
    fn setup_applied(&mut self, _step: Option<usize>, _cgroups: usize) {}
    /// Op `op` of step `step` (`None`: the Backdrop) was applied in the guest, the first
    /// time (hold-loop repeats are not reported).
    fn op_applied(&mut self, _step: Option<usize>, _op: usize, _kind: OpKind) {}
    /// Step `step` starts holding for `total`.
    fn holding(&mut self, _step: usize, _total: Duration) {}
    /// Step `result.index` ended (passed, failed); skipped steps are reported too.
    fn step_finished(&mut self, _result: &StepResult) {}
    /// Polled between ops and every few ms of a hold: `true` stops the run there,
    /// leaving the guest as it is (see [`Execution::cancelled`]).
    fn cancelled(&mut self) -> bool {
        false
    }
}

/// A [`Progress`] that watches nothing.
pub struct NoProgress;

impl Progress for NoProgress {}

/// The default bound of one `wait-payload` ([`set_wait_payload_timeout`]).
pub const DEFAULT_WAIT_PAYLOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// The bound of one `wait-payload`, ms (set once per process by the CLI).
static WAIT_PAYLOAD_MS: AtomicU64 = AtomicU64::new(DEFAULT_WAIT_PAYLOAD_TIMEOUT.as_millis() as u64);

/// Bounds every later `wait-payload`: a payload still running after `limit` is killed in
/// the guest and the op fails with its output (the guest stays usable).
pub fn set_wait_payload_timeout(limit: Duration) {
    WAIT_PAYLOAD_MS.store(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

fn wait_payload_timeout() -> Duration {
    Duration::from_millis(WAIT_PAYLOAD_MS.load(Ordering::Relaxed))
}

/// What the host adds to the guest's wait-payload bound before it gives up on the agent.
const WAIT_PAYLOAD_MARGIN: Duration = Duration::from_secs(30);

/// How often a hold polls [`Progress::cancelled`].
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// The run was cancelled by its observer (not an error of the scenario).
const CANCELLED: &str = "cancelled";

/// Why an op is not executed by this build, if it is not (every kind runs now:
/// scheduler ops in the agent, see `host/agent/src/exec/sched.rs`; host-side
/// ops, watch-snapshot included, in `host_ops`).
pub fn unsupported(kind: OpKind) -> Option<&'static str> {
    let _ = kind;
    None
}

struct Run<'a> {
    m: &'a mut dyn Machine,
    progress: &'a mut dyn Progress,
    payloads: &'a PayloadDefaults,
    results: Results,
    monitor: Monitor,
    notes: Vec<String>,
    /// Watchpoints armed by this scenario (`host_ops`), and their snapshots.
    watches: usize,
    watch_log: crate::monitor::WatchLog,
    grants: &'a GuestGrants,
    /// How many guest requests this scenario's processes may still have run.
    guest_budget: guest_requests::Budget,
}

impl Run<'_> {
    fn request(&mut self, body: RequestBody) -> Result<ResponseBody, MachineError> {
        self.m.request(body)
    }

    fn absorb(&mut self, r: ResponseBody) {
        match r {
            ResponseBody::Applied(Applied { captures, payloads, notes }) => {
                self.results.cgroup_procs.extend(captures);
                self.results.payloads.extend(payloads);
                self.notes.extend(notes);
            }
            ResponseBody::Teardown(t) => self.absorb_teardown(t, &mut Vec::new()),
            _ => {}
        }
    }

    fn absorb_teardown(&mut self, t: Teardown, leftovers: &mut Vec<String>) {
        self.results.workers.extend(t.workers);
        self.results.payloads.extend(t.payloads);
        leftovers.extend(t.leftovers);
    }

    /// Applies one op, or explains why it was not.
    fn apply(&mut self, owner: Owner, op: &Op) -> Result<(), String> {
        if let Some(why) = unsupported(op.kind()) {
            return Err(why.to_owned());
        }
        if let Some(done) = self.host_side(op) {
            return done;
        }
        let name = op.kind().wit_name();
        let op = self.with_default_args(op);
        let answer = if matches!(op, Op::WaitPayload { .. }) {
            self.m.request_within(RequestBody::Apply { owner, op }, wait_payload_timeout() + WAIT_PAYLOAD_MARGIN)
        } else if matches!(op, Op::AttachScheduler { .. } | Op::ReplaceScheduler { .. } | Op::RestartScheduler) {
            // A real scheduler's load may outlast the request timeout under TCG.
            self.m.request_within(RequestBody::Apply { owner, op }, SCHEDULER_START_WAIT)
        } else {
            self.request(RequestBody::Apply { owner, op })
        };
        match answer {
            Ok(r) => {
                self.absorb(r);
                Ok(())
            }
            // The agent's chain starts with the op's name, which the caller already gives.
            Err(MachineError::Agent { message, .. }) => {
                Err(message.strip_prefix(name).and_then(|m| m.strip_prefix(": ")).unwrap_or(&message).to_owned())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// `run-payload` args are appended to the payload's staged default args.
    fn with_default_args(&self, op: &Op) -> Op {
        match op {
            Op::RunPayload { name, args, cgroup } => {
                let mut all = self.payloads.get(name).cloned().unwrap_or_default();
                all.extend(args.iter().cloned());
                Op::run_payload(name.clone(), all, cgroup.clone())
            }
            other => other.clone(),
        }
    }
}

/// Runs `stream` on `m` with the default [`GuestGrants`]. Never panics; every failure
/// lands in the result.
pub fn execute(m: &mut dyn Machine, stream: &OpStream, payloads: &PayloadDefaults) -> Execution {
    execute_observed(m, stream, payloads, &GuestGrants::default(), &mut NoProgress)
}

/// [`execute`] with the run's `grants` for guest-initiated requests, reporting to
/// `progress` as it goes and stopping when it cancels.
pub fn execute_observed(
    m: &mut dyn Machine,
    stream: &OpStream,
    payloads: &PayloadDefaults,
    grants: &GuestGrants,
    progress: &mut dyn Progress,
) -> Execution {
    let start = Instant::now();
    let monitor = Monitor::new(m.vmlinux().to_owned());
    let mut run = Run {
        m,
        progress,
        payloads,
        results: Results::default(),
        monitor,
        notes: Vec::new(),
        watches: 0,
        watch_log: Default::default(),
        grants,
        guest_budget: guest_requests::Budget::new(Instant::now()),
    };
    let mut exec = Execution::default();
    let n = stream.steps.len();
    let skip_from = |results: &mut Results, from: usize| {
        for i in from..n {
            results.steps.push(StepResult {
                index: i as u32,
                status: StepStatus::Skipped,
                error: None,
                duration_ms: 0,
            });
        }
    };
    // Beginning (and ending) a scenario restores the run's boot scheduler, if it has one.
    let begun = run
        .m
        .request_within(RequestBody::BeginScenario { name: stream.scenario.name.clone() }, SCHEDULER_START_WAIT)
        .and_then(|_| {
            let ms = u64::try_from(wait_payload_timeout().as_millis()).unwrap_or(u64::MAX);
            run.request(RequestBody::PayloadWaitLimit { ms })
        });
    if let Err(e) = begun {
        exec.error = Some(format!("starting the scenario in the guest: {e}"));
        skip_from(&mut run.results, 0);
        exec.results = run.results;
        return exec;
    }
    // Left over from before this scenario (the agent forwards only while one runs).
    run.refuse_guest_requests("the request arrived while no scenario was running");
    if let Err(e) = backdrop(&mut run, stream) {
        exec.error = Some(e);
        skip_from(&mut run.results, 0);
    } else {
        for i in 0..n {
            let t0 = Instant::now();
            run.progress.step_started(i, n);
            let outcome = run_step(&mut run, stream, i);
            if outcome.as_ref().is_err_and(|e| e == CANCELLED) {
                return cancelled(run, exec, i, n, start);
            }
            run.serve_guest_requests();
            let torn = run.request(RequestBody::EndStep);
            let mut error = outcome.err();
            let mut then = |msg: String| error = Some(error.take().map_or(msg.clone(), |e| format!("{e}; then {msg}")));
            match torn {
                Ok(ResponseBody::Teardown(mut t)) => {
                    if let Some(mut at_end) = t.step.take() {
                        at_end.step = i as u32;
                        run.results.step_metrics.push(at_end);
                    }
                    if let Some(e) = t.scheduler_exit.take() {
                        then(format!("step {i} teardown: end-step: {e}"));
                    }
                    run.absorb_teardown(t, &mut exec.leftovers)
                }
                Ok(_) => {}
                Err(e) => then(format!("step {i} teardown: {e}")),
            }
            let status = if error.is_some() { StepStatus::Failed } else { StepStatus::Passed };
            let result = StepResult {
                index: i as u32,
                status,
                error: error.clone(),
                duration_ms: t0.elapsed().as_millis() as u64,
            };
            run.progress.step_finished(&result);
            run.results.steps.push(result);
            if error.is_some() {
                skip_from(&mut run.results, i + 1);
                for s in &run.results.steps[i + 1..] {
                    run.progress.step_finished(s);
                }
                break;
            }
        }
    }
    run.serve_guest_requests();
    if let Err(e) = run.end_watches() {
        exec.error = Some(exec.error.take().map_or(e.clone(), |p| format!("{p}; {e}")));
    }
    match run.m.request_within(RequestBody::EndScenario, SCHEDULER_START_WAIT) {
        Ok(ResponseBody::Teardown(mut t)) => {
            if let Some(e) = t.scheduler_exit.take() {
                scheduler_died_at_end(&mut run.results, &mut exec, &e);
            }
            run.absorb_teardown(t, &mut exec.leftovers)
        }
        Ok(_) => {}
        Err(e) => {
            exec.error = Some(
                exec.error.take().map_or(format!("scenario teardown: {e}"), |p| format!("{p}; scenario teardown: {e}")),
            )
        }
    }
    if !exec.leftovers.is_empty() && exec.error.is_none() {
        exec.error = Some(format!("teardown left {}", exec.leftovers.join(", ")));
    }
    exec.results = run.results;
    run.guest_budget.summarise(&mut run.notes);
    exec.notes = run.notes;
    exec.rendezvous = run.monitor.rendezvous;
    exec.duration = start.elapsed();
    exec
}

/// A scheduler found dead as the scenario ended (after the last step's end, before the
/// scenario's teardown detached it) fails the last step that ran: it died under the
/// scenario's work (the Backdrop's workers run until then), not the guest.
fn scheduler_died_at_end(results: &mut Results, exec: &mut Execution, why: &str) {
    let msg = format!("as the scenario ended (after its last step's end): {why}");
    match results.steps.iter_mut().rev().find(|s| s.status != StepStatus::Skipped) {
        Some(s) => {
            s.error = Some(s.error.take().map_or(msg.clone(), |e| format!("{e}; then {msg}")));
            s.status = StepStatus::Failed;
        }
        None => exec.error = Some(exec.error.take().map_or(msg.clone(), |e| format!("{e}; then {msg}"))),
    }
}

/// Ends a run its observer cancelled in step `at`: the rest is skipped, nothing torn down.
fn cancelled(mut run: Run<'_>, mut exec: Execution, at: usize, n: usize, start: Instant) -> Execution {
    // Watchpoints live in the VMM, not the guest: a guest reset would not remove them.
    if let Err(e) = run.end_watches() {
        tracing::warn!("cancelled run: {e}");
    }
    let mut results = run.results;
    results.steps.push(StepResult {
        index: at as u32,
        status: StepStatus::Failed,
        error: Some("cancelled: the run was abandoned here".into()),
        duration_ms: 0,
    });
    for i in at + 1..n {
        results.steps.push(StepResult { index: i as u32, status: StepStatus::Skipped, error: None, duration_ms: 0 });
    }
    exec.error = Some("cancelled before it finished; the guest was left as it was for a reset".into());
    exec.cancelled = true;
    exec.results = results;
    exec.notes = run.notes;
    exec.rendezvous = run.monitor.rendezvous;
    exec.duration = start.elapsed();
    exec
}

fn backdrop(run: &mut Run<'_>, stream: &OpStream) -> Result<(), String> {
    if !stream.backdrop.cgroups.is_empty() {
        let defs = stream.backdrop.cgroups.clone();
        let r = run
            .request(RequestBody::Setup { owner: Owner::Backdrop, defs })
            .map_err(|e| format!("backdrop setup: {e}"))?;
        run.absorb(r);
        run.progress.setup_applied(None, stream.backdrop.cgroups.len());
    }
    for (j, op) in stream.backdrop.ops.iter().enumerate() {
        run.serve_guest_requests();
        run.apply(Owner::Backdrop, op).map_err(|e| format!("backdrop, op {j} ({}): {e}", op.kind().wit_name()))?;
        run.progress.op_applied(None, j, op.kind());
    }
    Ok(())
}

fn run_step(run: &mut Run<'_>, stream: &OpStream, i: usize) -> Result<(), String> {
    let step = &stream.steps[i];
    if !step.setup.is_empty() {
        let r = run
            .request(RequestBody::Setup { owner: Owner::Step, defs: step.setup.clone() })
            .map_err(|e| format!("step {i} setup: {e}"))?;
        run.absorb(r);
        run.progress.setup_applied(Some(i), step.setup.len());
    }
    let ops = merge_cold_writes(&step.ops);
    let apply_all = |run: &mut Run<'_>, first: bool| -> Result<(), String> {
        for (j, op) in &ops {
            if run.progress.cancelled() {
                return Err(CANCELLED.to_owned());
            }
            run.serve_guest_requests();
            run.apply(Owner::Step, op).map_err(|e| format!("step {i}, op {j} ({}): {e}", op.kind().wit_name()))?;
            if first {
                run.progress.op_applied(Some(i), *j, op.kind());
            }
        }
        Ok(())
    };
    apply_all(run, true)?;
    match hold::plan(&step.hold, stream.scenario.duration_ms) {
        hold::Hold::Sleep(d) => {
            run.progress.holding(i, d);
            sleep_unless_cancelled(run, d)?;
        }
        hold::Hold::Loop { interval, total } => {
            run.progress.holding(i, total);
            let end = Instant::now() + total;
            while Instant::now() + interval <= end {
                sleep_unless_cancelled(run, interval)?;
                apply_all(run, false)?;
            }
            sleep_unless_cancelled(run, end.saturating_duration_since(Instant::now()))?;
        }
    }
    Ok(())
}

/// Sleeps `d`, polling the observer; `Err(CANCELLED)` as soon as it cancels.
fn sleep_unless_cancelled(run: &mut Run<'_>, d: Duration) -> Result<(), String> {
    let end = Instant::now() + d;
    loop {
        if run.progress.cancelled() {
            return Err(CANCELLED.to_owned());
        }
        // A guest that dies mid-hold (a panic, QEMU killed) fails the step now, in its
        // own words, not when the hold ends with a closed channel.
        run.m.health().map_err(|e| format!("during the hold: {e}"))?;
        // Guest-initiated host-side ops run here, during the hold.
        run.serve_guest_requests();
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(CANCEL_POLL));
    }
}

/// Adjacent `write-kernel-cold` ops collapse into one (one rendezvous for
/// the whole run of them); each op keeps the index of its first source op.
pub fn merge_cold_writes(ops: &[Op]) -> Vec<(usize, Op)> {
    let mut out: Vec<(usize, Op)> = Vec::with_capacity(ops.len());
    for (j, op) in ops.iter().enumerate() {
        if let (Op::WriteKernelCold { writes }, Some((_, Op::WriteKernelCold { writes: acc }))) = (op, out.last_mut()) {
            acc.extend(writes.iter().cloned());
            continue;
        }
        out.push((j, op.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op_model::{KernelTarget, KernelValue, KernelWrite};

    #[test]
    fn adjacent_cold_writes_merge_into_one_op() {
        let w = |v| {
            Op::write_kernel_cold(vec![KernelWrite { target: KernelTarget::symbol("x"), value: KernelValue::U32(v) }])
        };
        let ops = vec![w(1), w(2), Op::add_cgroup("a"), w(3), w(4), w(5)];
        let merged = merge_cold_writes(&ops);
        let shape: Vec<(usize, usize)> = merged
            .iter()
            .map(|(j, op)| (*j, if let Op::WriteKernelCold { writes } = op { writes.len() } else { 0 }))
            .collect();
        assert_eq!(shape, [(0, 2), (2, 0), (3, 3)]);
    }
}
