//! Oracles: what makes a run a failure, each named in the finding.
//!
//! - `scheduler-exit`: the scheduler under test was ejected or exited (a step failed with
//!   the agent's "is no longer attached", with the kernel's `sched_ext` reason), or a
//!   step ended with `/sys/kernel/sched_ext/state` not `enabled` where the stream had it
//!   attached.
//! - `kernel-warn`, `kernel-bug`, `kernel-oops`, `kernel-panic`, `rcu-stall`,
//!   `hung-task`, `soft-lockup`: new console lines of that kind during the run.
//! - `agent-unresponsive`: the agent stopped answering (or the VM exited).
//! - `starvation`: a live worker of a cgroup never frozen had a gap between two
//!   iterations of its loop longer than the bound (`max_gap_ns` of the step metrics).
//!
//! Step errors of other kinds (an op the guest refused) are not findings: the run
//! records them and goes on.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::executor::Execution;
use crate::op_model::{Op, OpStream};
use crate::results::StepStatus;

/// Which oracle fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Oracle {
    SchedulerExit,
    KernelWarn,
    KernelBug,
    KernelOops,
    KernelPanic,
    RcuStall,
    HungTask,
    SoftLockup,
    AgentUnresponsive,
    Starvation,
}

impl Oracle {
    /// Severity order of findings of one run: lower first.
    pub fn rank(self) -> u8 {
        match self {
            Oracle::KernelPanic => 0,
            Oracle::KernelOops => 1,
            Oracle::KernelBug => 2,
            Oracle::SoftLockup => 3,
            Oracle::RcuStall => 4,
            Oracle::HungTask => 5,
            Oracle::KernelWarn => 6,
            Oracle::SchedulerExit => 7,
            Oracle::Starvation => 8,
            Oracle::AgentUnresponsive => 9,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Oracle::SchedulerExit => "scheduler-exit",
            Oracle::KernelWarn => "kernel-warn",
            Oracle::KernelBug => "kernel-bug",
            Oracle::KernelOops => "kernel-oops",
            Oracle::KernelPanic => "kernel-panic",
            Oracle::RcuStall => "rcu-stall",
            Oracle::HungTask => "hung-task",
            Oracle::SoftLockup => "soft-lockup",
            Oracle::AgentUnresponsive => "agent-unresponsive",
            Oracle::Starvation => "starvation",
        }
    }
}

/// One oracle's verdict on one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub oracle: Oracle,
    /// What it saw: the step error, the console line, the worker and its gap.
    pub detail: String,
    /// A short, stable signature: the oracle and the kernel's reason (exit kind), so
    /// a minimised candidate counts as the same failure only when it fails the same way.
    pub signature: String,
}

/// What the oracles read besides the execution.
pub struct Observed<'a> {
    pub exec: &'a Execution,
    /// Console lines printed during the run.
    pub console: &'a [String],
    /// A machine error that ended the run outside the executor (a panic, a dead VM).
    pub machine_error: Option<&'a str>,
}

/// Judgement settings.
#[derive(Clone, Debug)]
pub struct Bounds {
    /// Longest tolerated gap of a worker's loop, ns.
    pub starve_ns: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        Self { starve_ns: 2_000_000_000 }
    }
}

/// Console line kinds, first match wins.
const CONSOLE: &[(&str, Oracle)] = &[
    ("Kernel panic", Oracle::KernelPanic),
    ("Oops:", Oracle::KernelOops),
    ("BUG: soft lockup", Oracle::SoftLockup),
    ("watchdog: BUG: soft lockup", Oracle::SoftLockup),
    ("rcu_sched detected stall", Oracle::RcuStall),
    ("rcu_preempt detected stall", Oracle::RcuStall),
    ("rcu: INFO:", Oracle::RcuStall),
    ("blocked for more than", Oracle::HungTask),
    ("BUG:", Oracle::KernelBug),
    ("WARNING:", Oracle::KernelWarn),
];

/// The console kind of one line, if it is one the oracles know.
pub fn console_kind(line: &str) -> Option<Oracle> {
    CONSOLE.iter().find(|(pat, _)| line.contains(pat)).map(|(_, o)| *o)
}

/// Lines of `after` (a console tail read after a run) that `before` (read before it)
/// did not show: what follows the last occurrence of `before`'s last lines.
pub fn new_console_lines(before: &str, after: &str) -> Vec<String> {
    let b: Vec<&str> = before.lines().filter(|l| !l.trim().is_empty()).collect();
    let a: Vec<&str> = after.lines().filter(|l| !l.trim().is_empty()).collect();
    // The longest of `before`'s last 3 lines that `after` still shows (the tail slides).
    let start = (1..=b.len().min(3))
        .rev()
        .find_map(|k| {
            let anchor = &b[b.len() - k..];
            (0..=a.len().saturating_sub(k)).rev().find(|&i| a.get(i..i + k) == Some(anchor)).map(|i| i + k)
        })
        .unwrap_or(0);
    a[start..].iter().map(|s| (*s).to_owned()).collect()
}

/// The kernel's reason in a scheduler-death message: what `disabled (…)` or
/// `exit kind=` says, else `unknown`.
pub fn exit_reason(text: &str) -> String {
    if let Some(i) = text.find("disabled (") {
        let rest = &text[i + "disabled (".len()..];
        if let Some(j) = rest.find(')') {
            return rest[..j].to_owned();
        }
    }
    if let Some(i) = text.find("exit kind=") {
        let rest = &text[i + "exit kind=".len()..];
        return rest.split(|c: char| c.is_whitespace() || c == ';' || c == '|').next().unwrap_or("").to_owned();
    }
    "unknown".to_owned()
}

/// Whether the stream had the scheduler attached at the end of each step.
pub fn attached_after_steps(stream: &OpStream) -> Vec<bool> {
    let mut attached = false;
    stream
        .steps
        .iter()
        .map(|s| {
            for op in &s.ops {
                match op {
                    Op::AttachScheduler { .. } | Op::ReplaceScheduler { .. } => attached = true,
                    // Restarts the one attached (without a boot scheduler, nothing when none is).
                    Op::DetachScheduler => attached = false,
                    _ => {}
                }
            }
            attached
        })
        .collect()
}

/// Cgroups a freeze may have reached by the end of each step: frozen ones and those
/// whose tasks moved into or out of one (their workers' gaps include the freeze).
fn frozen_reach(stream: &OpStream) -> Vec<BTreeSet<String>> {
    fn apply(op: &Op, reach: &mut BTreeSet<String>) {
        match op {
            Op::FreezeCgroup { cgroup } => {
                reach.insert(cgroup.clone());
            }
            Op::MoveAllTasks { from, to } if reach.contains(from) || reach.contains(to) => {
                reach.insert(from.clone());
                reach.insert(to.clone());
            }
            _ => {}
        }
    }
    let mut reach = BTreeSet::new();
    for op in &stream.backdrop.ops {
        apply(op, &mut reach);
    }
    stream
        .steps
        .iter()
        .map(|s| {
            for op in &s.ops {
                apply(op, &mut reach);
            }
            reach.clone()
        })
        .collect()
}

/// Every oracle's verdict on a run of `stream`; empty when it passed them all.
pub fn judge(stream: &OpStream, seen: &Observed<'_>, bounds: &Bounds) -> Vec<Finding> {
    let mut out = Vec::new();
    let exec = seen.exec;
    let errors: Vec<String> = exec
        .results
        .steps
        .iter()
        .filter_map(|s| s.error.as_ref().map(|e| format!("step {}: {e}", s.index)))
        .chain(exec.error.iter().cloned())
        .chain(seen.machine_error.map(str::to_owned))
        .collect();
    for e in &errors {
        if e.contains("kernel panicked") {
            out.push(Finding { oracle: Oracle::KernelPanic, detail: e.clone(), signature: "kernel-panic".into() });
        } else if e.contains("is no longer attached") {
            let why = exit_reason(e);
            out.push(Finding {
                oracle: Oracle::SchedulerExit,
                detail: e.clone(),
                signature: format!("scheduler-exit:{why}"),
            });
        } else if ["did not answer", "VM exited unexpectedly", "agent channel", "link is down"]
            .iter()
            .any(|p| e.contains(p))
        {
            out.push(Finding {
                oracle: Oracle::AgentUnresponsive,
                detail: e.clone(),
                signature: "agent-unresponsive".into(),
            });
        }
    }
    if !out.iter().any(|f| f.oracle == Oracle::SchedulerExit) {
        let want = attached_after_steps(stream);
        let passed = |i: u32| exec.results.steps.iter().any(|s| s.index == i && s.status == StepStatus::Passed);
        // A failed step's own op error (an attach refused, a restart with nothing attached)
        // is a step error, not a scheduler death.
        for m in exec.results.step_metrics.iter().filter(|m| passed(m.step)) {
            let expected = want.get(m.step as usize).copied().unwrap_or(false);
            if expected && m.sched_ext_state != "enabled" && m.sched_ext_state != "unsupported" {
                let why = console_reason(seen.console);
                out.push(Finding {
                    oracle: Oracle::SchedulerExit,
                    detail: format!(
                        "step {}: sched_ext state {:?} at the step's end, but the stream had the scheduler attached",
                        m.step, m.sched_ext_state
                    ),
                    signature: format!("scheduler-exit:{why}"),
                });
                break;
            }
        }
    }
    let mut kinds = BTreeSet::new();
    for line in seen.console {
        if let Some(k) = console_kind(line) {
            if kinds.insert(k) {
                out.push(Finding { oracle: k, detail: line.trim().to_owned(), signature: k.name().to_owned() });
            }
        }
    }
    let reach = frozen_reach(stream);
    'steps: for m in &exec.results.step_metrics {
        let frozen = reach.get(m.step as usize).cloned().unwrap_or_default();
        for w in &m.workers {
            if w.alive && !frozen.contains(&w.cgroup) && w.max_gap_ns > bounds.starve_ns {
                out.push(Finding {
                    oracle: Oracle::Starvation,
                    detail: format!(
                        "step {}: worker {} (tid {}) of cgroup {:?} went {} ms without running (bound {} ms), resumed on CPU {}",
                        m.step,
                        w.index,
                        w.tid,
                        w.cgroup,
                        w.max_gap_ns / 1_000_000,
                        bounds.starve_ns / 1_000_000,
                        w.max_gap_cpu
                    ),
                    signature: "starvation".into(),
                });
                break 'steps;
            }
        }
    }
    // The most telling first (a panic explains the agent's silence that follows it).
    out.sort_by_key(|f| f.oracle.rank());
    out
}

/// The reason of the last `sched_ext: … disabled (…)` console line.
fn console_reason(console: &[String]) -> String {
    console
        .iter()
        .rev()
        .find(|l| l.contains("sched_ext") && l.contains("disabled ("))
        .map_or_else(|| "unknown".to_owned(), |l| exit_reason(l))
}

/// Kernel-visible behaviour of a run, for the corpus: sched_ext state sequence and exit
/// kinds, console line kinds.
pub fn features(stream: &OpStream, seen: &Observed<'_>) -> BTreeSet<String> {
    let mut f = BTreeSet::new();
    let mut last = "start".to_owned();
    for m in &seen.exec.results.step_metrics {
        if m.sched_ext_state != last {
            f.insert(format!("sched-ext:{last}->{}", m.sched_ext_state));
            last = m.sched_ext_state.clone();
        }
    }
    for line in seen.console {
        if let Some(k) = console_kind(line) {
            f.insert(format!("console:{}", k.name()));
        }
        if line.contains("sched_ext") && line.contains("disabled (") {
            f.insert(format!("exit:{}", exit_reason(line)));
        }
    }
    for finding in judge(stream, seen, &Bounds::default()) {
        f.insert(format!("finding:{}", finding.signature));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{StepMetrics, StepResult, WorkerStat};

    fn stream() -> OpStream {
        use crate::fuzz::generator::{info, GenConfig};
        use crate::op_model::{HoldSpec, Step, Topology, CONTRACT_VERSION};
        let t = Topology { numa_nodes: 1, llcs_per_node: 1, cores_per_llc: 2, threads_per_core: 1 };
        let cfg = GenConfig::new(t, Some("fixture".into()));
        OpStream {
            contract: CONTRACT_VERSION.into(),
            scenario: info(&cfg, "t"),
            backdrop: Default::default(),
            steps: vec![
                Step::new(vec![Op::attach_scheduler("fixture"), Op::freeze_cgroup("a")], HoldSpec::fixed_ms(10)),
                Step::new(vec![], HoldSpec::fixed_ms(10)),
            ],
        }
    }

    #[test]
    fn scheduler_death_is_named_with_the_kernels_reason() {
        let mut exec = Execution::default();
        exec.results.steps.push(StepResult {
            index: 1,
            status: StepStatus::Failed,
            error: Some("spawn: scheduler \"fixture-error\" is no longer attached: sched_ext state \"disabled\"; kernel: sched_ext: BPF scheduler \"fixture_error\" disabled (runtime error)".into()),
            duration_ms: 5,
        });
        let f = judge(&stream(), &Observed { exec: &exec, console: &[], machine_error: None }, &Bounds::default());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].oracle, Oracle::SchedulerExit);
        assert_eq!(f[0].signature, "scheduler-exit:runtime error");
    }

    #[test]
    fn state_not_enabled_while_attached_is_a_scheduler_exit() {
        let mut exec = Execution::default();
        exec.results.step_metrics.push(StepMetrics {
            step: 0,
            sched_ext_state: "disabled".into(),
            ..Default::default()
        });
        let mut step = StepResult {
            index: 0,
            status: StepStatus::Failed,
            error: Some("attach-scheduler: refused".into()),
            duration_ms: 1,
        };
        exec.results.steps.push(step.clone());
        let f = judge(&stream(), &Observed { exec: &exec, console: &[], machine_error: None }, &Bounds::default());
        assert!(f.is_empty(), "a failed step's own op error is not a scheduler exit: {f:?}");
        (step.status, step.error) = (StepStatus::Passed, None);
        exec.results.steps[0] = step;
        let console =
            vec!["[ 3.1] sched_ext: BPF scheduler \"fixture_stall\" disabled (runnable task stall)".to_owned()];
        let f = judge(&stream(), &Observed { exec: &exec, console: &console, machine_error: None }, &Bounds::default());
        assert_eq!(f[0].signature, "scheduler-exit:runnable task stall", "{f:?}");
    }

    #[test]
    fn restart_with_nothing_attached_attaches_nothing() {
        let mut s = stream();
        s.steps[0].ops = vec![Op::restart_scheduler()];
        assert_eq!(attached_after_steps(&s), vec![false, false]);
    }

    #[test]
    fn console_kinds_and_new_lines() {
        let before = "a\nb\nc\n";
        let after = "b\nc\n[ 9.0] WARNING: CPU: 1 PID: 7 at kernel/sched/ext.c:100\n[ 9.1] INFO: task x:12 blocked for more than 20 seconds.\n";
        let new = new_console_lines(before, after);
        assert_eq!(new.len(), 2, "{new:?}");
        assert_eq!(console_kind(&new[0]), Some(Oracle::KernelWarn));
        assert_eq!(console_kind(&new[1]), Some(Oracle::HungTask));
        assert_eq!(console_kind("rcu: INFO: rcu_preempt detected stalls on CPUs"), Some(Oracle::RcuStall));
        // A panic ranks before the agent's silence that follows it.
        let exec =
            Execution { error: Some("scenario teardown: agent channel: Broken pipe".into()), ..Default::default() };
        let console = vec!["[ 7.8] Oops: int3: 0000 [#1] SMP NOPTI".to_owned()];
        let f = judge(
            &stream(),
            &Observed {
                exec: &exec,
                console: &console,
                machine_error: Some("the guest kernel panicked during a hold: x"),
            },
            &Bounds::default(),
        );
        let order: Vec<Oracle> = f.iter().map(|f| f.oracle).collect();
        assert_eq!(order, vec![Oracle::KernelPanic, Oracle::KernelOops, Oracle::AgentUnresponsive]);
    }

    #[test]
    fn starvation_skips_frozen_cgroups() {
        let mut exec = Execution::default();
        let w =
            |cg: &str| WorkerStat { cgroup: cg.into(), alive: true, max_gap_ns: 5_000_000_000, ..Default::default() };
        exec.results.step_metrics.push(StepMetrics {
            step: 0,
            sched_ext_state: "enabled".into(),
            workers: vec![w("a")],
            ..Default::default()
        });
        let seen = Observed { exec: &exec, console: &[], machine_error: None };
        assert!(judge(&stream(), &seen, &Bounds::default()).is_empty());
        exec.results.step_metrics[0].workers.push(w("b"));
        let seen = Observed { exec: &exec, console: &[], machine_error: None };
        let f = judge(&stream(), &seen, &Bounds::default());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].oracle, Oracle::Starvation);
        assert!(f[0].detail.contains("\"b\""), "{}", f[0].detail);
    }
}
