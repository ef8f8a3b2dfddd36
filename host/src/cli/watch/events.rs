//! Machine-readable events of `schedbox watch --events json`: one JSON object per line on
//! stdout, each with `event` (its kind) and `t_ms` (since the watcher started).
//!
//! Kinds: `build` {ok, ms, code, output}; `booted` {topology, boot_ms}; `run-started`
//! {scenario, path, component_sha, cache: memory|disk|compiled, load_ms, plan_ms};
//! `step` {scenario, index, status: running|holding|passed|failed|skipped, error,
//! duration_ms, hold_ms}; `setup` {scenario, step (null: Backdrop), cgroups,
//! since_change_ms}; `op` {scenario, step (null: Backdrop), index, kind, since_change_ms} —
//! `since_change_ms` is set on the run's first setup or op only, when a change started it;
//! `verdict` {scenario, path, verdict: pass|fail|skip|error|cancelled, messages, steps,
//! duration_ms}; `reset` {verified, rebooted, reason, ms, guest_us, checked: {cgroups,
//! tasks, scheduler, frozen, irqs: {found, remaining}}, actions, kept}; `error` {path,
//! component_sha, stage: read|load|plan|policy|staging, message}; `stopped` {reason, runs}.

use std::io::Write;
use std::time::Instant;

use serde_json::{json, Value};

/// Where events go.
pub struct Events {
    json: bool,
    start: Instant,
}

impl Events {
    pub fn new(json: bool) -> Self {
        Self { json, start: Instant::now() }
    }

    /// Emits one event of kind `event` with the fields of `body` (an object).
    pub fn emit(&mut self, event: &str, body: Value) {
        if !self.json {
            return;
        }
        let mut v = json!({ "event": event, "t_ms": self.start.elapsed().as_millis() as u64 });
        if let (Some(obj), Value::Object(fields)) = (v.as_object_mut(), body) {
            obj.extend(fields);
        }
        let mut out = std::io::stdout().lock();
        // A closed stdout (the reader went away) must not stop the loop.
        let _ = writeln!(out, "{v}");
        let _ = out.flush();
    }
}
