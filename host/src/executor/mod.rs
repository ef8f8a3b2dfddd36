//! The executor: runs a validated op stream on a booted machine with the
//! step / hold / Backdrop semantics of the reference, and collects results.
//!
//! Backdrop setup first; then per step: setup cgroups, ops in order, the
//! hold, teardown. A failed op fails its step with the error chain, skips the
//! remaining steps, and everything is still torn down. Guest-side ops go to
//! the agent; host-side ops (snapshots, kernel memory) and scheduler ops are
//! refused with a clear error until their backends land — never silently.

mod hold;
mod host_ops;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use schedbox_wire::{Applied, Owner, RequestBody, ResponseBody, Teardown};

use crate::machine::{Machine, MachineError};
use crate::monitor::Monitor;
use crate::op_model::{Op, OpKind, OpStream};
use crate::results::{Results, StepResult, StepStatus};

pub use hold::hold_duration;

/// Payload binaries staged for a run: name → default arguments.
pub type PayloadDefaults = BTreeMap<String, Vec<String>>;

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
}

/// Why an op is not executed by this build, if it is not.
/// (Scheduler ops run in the agent; see `host/agent/src/exec/sched.rs`.)
pub fn unsupported(kind: OpKind) -> Option<&'static str> {
    match kind {
        OpKind::WatchSnapshot => {
            Some("watch-snapshot is not supported yet (hardware watchpoints through the gdbstub pending)")
        }
        _ => None,
    }
}

struct Run<'a> {
    m: &'a mut dyn Machine,
    payloads: &'a PayloadDefaults,
    results: Results,
    monitor: Monitor,
    notes: Vec<String>,
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
        match self.request(RequestBody::Apply { owner, op }) {
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

/// Runs `stream` on `m`. Never panics; every failure lands in the result.
pub fn execute(m: &mut dyn Machine, stream: &OpStream, payloads: &PayloadDefaults) -> Execution {
    let start = Instant::now();
    let monitor = Monitor::new(m.vmlinux().to_owned());
    let mut run = Run { m, payloads, results: Results::default(), monitor, notes: Vec::new() };
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
    if let Err(e) = run.request(RequestBody::BeginScenario { name: stream.scenario.name.clone() }) {
        exec.error = Some(format!("starting the scenario in the guest: {e}"));
        skip_from(&mut run.results, 0);
        exec.results = run.results;
        return exec;
    }
    if let Err(e) = backdrop(&mut run, stream) {
        exec.error = Some(e);
        skip_from(&mut run.results, 0);
    } else {
        for i in 0..n {
            let t0 = Instant::now();
            let outcome = run_step(&mut run, stream, i);
            let torn = run.request(RequestBody::EndStep);
            let mut error = outcome.err();
            match torn {
                Ok(ResponseBody::Teardown(t)) => run.absorb_teardown(t, &mut exec.leftovers),
                Ok(_) => {}
                Err(e) => {
                    let msg = format!("step {i} teardown: {e}");
                    error = Some(error.map_or(msg.clone(), |e| format!("{e}; then {msg}")));
                }
            }
            let status = if error.is_some() { StepStatus::Failed } else { StepStatus::Passed };
            run.results.steps.push(StepResult {
                index: i as u32,
                status,
                error: error.clone(),
                duration_ms: t0.elapsed().as_millis() as u64,
            });
            if error.is_some() {
                skip_from(&mut run.results, i + 1);
                break;
            }
        }
    }
    match run.request(RequestBody::EndScenario) {
        Ok(ResponseBody::Teardown(t)) => run.absorb_teardown(t, &mut exec.leftovers),
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
    }
    for (j, op) in stream.backdrop.ops.iter().enumerate() {
        run.apply(Owner::Backdrop, op).map_err(|e| format!("backdrop, op {j} ({}): {e}", op.kind().wit_name()))?;
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
    }
    let ops = merge_cold_writes(&step.ops);
    let apply_all = |run: &mut Run<'_>| -> Result<(), String> {
        for (j, op) in &ops {
            run.apply(Owner::Step, op).map_err(|e| format!("step {i}, op {j} ({}): {e}", op.kind().wit_name()))?;
        }
        Ok(())
    };
    apply_all(run)?;
    match hold::plan(&step.hold, stream.scenario.duration_ms) {
        hold::Hold::Sleep(d) => std::thread::sleep(d),
        hold::Hold::Loop { interval, total } => {
            let end = Instant::now() + total;
            while Instant::now() + interval <= end {
                std::thread::sleep(interval);
                apply_all(run)?;
            }
            std::thread::sleep(end.saturating_duration_since(Instant::now()));
        }
    }
    Ok(())
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
