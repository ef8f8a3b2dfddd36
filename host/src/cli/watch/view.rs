//! The live view of a run: one line per step that updates while the step runs (its op,
//! then its hold) and stays with the step's outcome — indicatif on a terminal, plain
//! lines otherwise. The same observer emits the `step`/`op` events and cancels the run
//! when its component changes or a signal arrives.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use schedbox::executor::Progress;
use schedbox::op_model::OpKind;
use schedbox::results::{StepResult, StepStatus};
use serde_json::json;

use super::changes::{Changes, Version};
use super::events::Events;
use super::signals;

/// Observes one run of `scenario` (from `path`).
pub struct LiveRun<'a> {
    pub scenario: &'a str,
    pub path: &'a Path,
    pub events: &'a mut Events,
    pub changes: &'a mut Changes,
    /// The bytes running: a change event that leaves them as they are cancels nothing.
    pub version: &'a Version,
    /// The change that started this run, if one did (for `since_change_ms`).
    pub trigger: Option<Instant>,
    /// Steps in the stream.
    pub steps: usize,
    tty: Option<MultiProgress>,
    bar: Option<ProgressBar>,
    ops_seen: usize,
}

impl<'a> LiveRun<'a> {
    pub fn new(
        scenario: &'a str,
        path: &'a Path,
        events: &'a mut Events,
        changes: &'a mut Changes,
        version: &'a Version,
        trigger: Option<Instant>,
        steps: usize,
    ) -> Self {
        let tty =
            std::io::stderr().is_terminal().then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self { scenario, path, events, changes, version, trigger, steps, tty, bar: None, ops_seen: 0 }
    }

    /// For the run's first guest action: ms since the change that started the run.
    fn first_action(&mut self) -> Option<f64> {
        let since = self.trigger.filter(|_| self.ops_seen == 0).map(|t| t.elapsed().as_secs_f64() * 1e3);
        self.ops_seen += 1;
        if let Some(ms) = since {
            tracing::info!("{}: first op running {ms:.1} ms after the change", self.scenario);
        }
        since
    }

    fn show(&mut self, line: String) {
        match &self.bar {
            Some(bar) => bar.set_message(line),
            None => eprintln!("  {line}"),
        }
    }
}

impl Progress for LiveRun<'_> {
    fn step_started(&mut self, index: usize, of: usize) {
        self.events.emit("step", json!({ "scenario": self.scenario, "index": index, "status": "running" }));
        if let Some(multi) = &self.tty {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(ProgressStyle::with_template("  {spinner} {msg} [{elapsed}]").expect("a valid template"));
            bar.enable_steady_tick(Duration::from_millis(100));
            self.bar = Some(bar);
        }
        self.show(format!("step {index}/{of} running"));
    }

    fn setup_applied(&mut self, step: Option<usize>, cgroups: usize) {
        let since = self.first_action();
        self.events.emit(
            "setup",
            json!({ "scenario": self.scenario, "step": step, "cgroups": cgroups, "since_change_ms": since }),
        );
    }

    fn op_applied(&mut self, step: Option<usize>, op: usize, kind: OpKind) {
        let since = self.first_action();
        self.events.emit(
            "op",
            json!({ "scenario": self.scenario, "step": step, "index": op, "kind": kind.wit_name(), "since_change_ms": since }),
        );
        if let (Some(s), Some(_)) = (step, &self.bar) {
            self.show(format!("step {s}/{}: op {op} {}", self.steps, kind.wit_name()));
        }
    }

    fn holding(&mut self, step: usize, total: Duration) {
        self.events.emit(
            "step",
            json!({ "scenario": self.scenario, "index": step, "status": "holding", "hold_ms": total.as_millis() as u64 }),
        );
        self.show(format!("step {step}/{} holding {:.1} s", self.steps, total.as_secs_f64()));
    }

    fn step_finished(&mut self, r: &StepResult) {
        let status = match r.status {
            StepStatus::Passed => "passed",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        };
        self.events.emit(
            "step",
            json!({
                "scenario": self.scenario, "index": r.index, "status": status,
                "error": r.error, "duration_ms": r.duration_ms,
            }),
        );
        let mark = match r.status {
            StepStatus::Passed => "✓",
            StepStatus::Failed => "✗",
            StepStatus::Skipped => "-",
        };
        let err = r.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
        let line = format!("{mark} step {} {status} ({} ms){err}", r.index, r.duration_ms);
        match self.bar.take() {
            Some(bar) => {
                bar.set_style(ProgressStyle::with_template("  {msg}").expect("a valid template"));
                bar.finish_with_message(line);
            }
            None => match &self.tty {
                // A skipped step never started: give it its own finished line.
                Some(multi) => {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(ProgressStyle::with_template("  {msg}").expect("a valid template"));
                    bar.finish_with_message(line);
                }
                None => eprintln!("  {line}"),
            },
        }
    }

    fn cancelled(&mut self) -> bool {
        self.changes.poll();
        if signals::received().is_some() {
            return true;
        }
        if self.changes.components.contains(self.path) {
            if !self.version.still(self.path) {
                return true;
            }
            // A repeated event of the change that started this run.
            self.changes.components.remove(self.path);
        }
        false
    }
}

impl Drop for LiveRun<'_> {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_with_message("cancelled".to_string());
        }
    }
}
