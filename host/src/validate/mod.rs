//! Op-stream validation: everything that can be rejected before anything runs.
//!
//! One incremental [`Validator`] serves both ends: the sandbox feeds it each
//! import call as it happens (so the scenario gets an `op-error` at the call
//! site), and [`validate_stream`] replays a recorded stream through it (for
//! `schedbox run stream.json`). Every error names the scenario, where the op
//! sits, its index and what to do.

mod args;
mod ownership;

use std::fmt;

use crate::op_model::{CgroupDef, HoldSpec, Op, OpKind, OpStream, ScenarioInfo, Section};

pub use args::{MAX_HOLD_MS, MAX_NAME_LEN};
pub use ownership::Validator;

/// Most watch ops a scenario may hold (hardware slot 0 is reserved).
pub const MAX_WATCHES: usize = 3;

/// A rule broken by one op or declaration, before it is placed in a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What was wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl Problem {
    pub fn new(message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { message: message.into(), fix: fix.into() }
    }

    /// Prefixes the message with where inside the op the problem is.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

/// A located validation failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    pub scenario: String,
    /// Where: the Backdrop or a step; `None` for the scenario's description.
    pub section: Option<Section>,
    /// Index of the op within its section; `None` for declarations (setup cgroups, holds).
    pub op_index: Option<usize>,
    pub op: Option<OpKind>,
    /// What was wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scenario {:?}", self.scenario)?;
        match self.section {
            Some(s) => write!(f, ", {s}")?,
            None => f.write_str(", describe")?,
        }
        if let Some(i) = self.op_index {
            write!(f, ", op {i}")?;
        }
        if let Some(k) = self.op {
            write!(f, " ({})", k.wit_name())?;
        }
        write!(f, ": {} — fix: {}", self.message, self.fix)
    }
}

/// Validates a whole recorded stream, as the sandbox would have while recording it.
pub fn validate_stream(stream: &OpStream) -> Result<(), ValidationError> {
    let mut v = Validator::new(&stream.scenario)?;
    if !stream.backdrop.is_empty() {
        v.open_backdrop(&stream.backdrop.cgroups)?;
        for op in &stream.backdrop.ops {
            v.op(op)?;
        }
        v.close_backdrop()?;
    }
    for step in &stream.steps {
        v.open_step(&step.setup)?;
        for op in &step.ops {
            v.op(op)?;
        }
        v.close_step(&step.hold)?;
    }
    v.finish()
}

/// Bytes of the string and list arguments of an op (or of a list of setup
/// cgroups): string bytes (enum names spelled as strings included), and 4
/// bytes per number. The per-call argument bound
/// (`max-arg-kib`, default 64 KiB) measures this, in the sandbox for each import
/// call and in [`validate_replay`] for each op of a replayed stream.
pub fn arg_bytes<T: serde::Serialize + ?Sized>(v: &T) -> usize {
    fn walk(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::String(s) => s.len(),
            serde_json::Value::Number(_) => 4,
            serde_json::Value::Array(a) => a.iter().map(walk).sum(),
            serde_json::Value::Object(o) => o.values().map(walk).sum(),
            serde_json::Value::Bool(_) | serde_json::Value::Null => 0,
        }
    }
    match serde_json::to_value(v) {
        // An op's `op` tag is its name, not an argument.
        Ok(serde_json::Value::Object(mut o)) => {
            o.remove("op");
            o.values().map(walk).sum()
        }
        Ok(v) => walk(&v),
        Err(_) => usize::MAX,
    }
}

/// Parses a replayed stream (the JSON of `schedbox plan --json`). Unknown fields are
/// refused by the stream's serde types, and here for the ops that take no arguments
/// (`detach-scheduler`, `restart-scheduler`), which serde's internally tagged unit
/// variants would otherwise accept with any fields.
pub fn parse_replay(text: &[u8]) -> Result<OpStream, String> {
    let value: serde_json::Value = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    let ops_of = |v: &serde_json::Value| v.get("ops").and_then(|o| o.as_array()).cloned().unwrap_or_default();
    let mut sections = vec![("backdrop".to_owned(), value.get("backdrop").map(ops_of).unwrap_or_default())];
    if let Some(steps) = value.get("steps").and_then(|s| s.as_array()) {
        sections.extend(steps.iter().enumerate().map(|(i, s)| (format!("step {i}"), ops_of(s))));
    }
    for (section, ops) in sections {
        for (j, op) in ops.iter().enumerate() {
            let Some(fields) = op.as_object() else { continue };
            let name = fields.get("op").and_then(|n| n.as_str()).unwrap_or_default();
            if matches!(name, "detach-scheduler" | "restart-scheduler") && fields.len() > 1 {
                let extra: Vec<&str> = fields.keys().map(String::as_str).filter(|k| *k != "op").collect();
                return Err(format!(
                    "{section}, op {j} ({name}): unknown field(s) {extra:?}: {name} takes no arguments"
                ));
            }
        }
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Checks a replayed stream (`schedbox run stream.json`) as a planned one is
/// checked: the contract it was emitted under is this host's, every op's and
/// setup list's arguments are within `max_arg_bytes` (see [`arg_bytes`]), and
/// [`validate_stream`]. Unknown fields are refused by the stream's serde types.
pub fn validate_replay(stream: &OpStream, max_arg_bytes: usize) -> Result<(), ValidationError> {
    let at = |section: Option<Section>, op_index: Option<usize>, op: Option<OpKind>, message: String, fix: String| {
        ValidationError { scenario: stream.scenario.name.clone(), section, op_index, op, message, fix }
    };
    if stream.contract != crate::op_model::CONTRACT_VERSION {
        return Err(at(
            None,
            None,
            None,
            format!(
                "the stream's contract {:?} is not this host's contract {:?}",
                stream.contract,
                crate::op_model::CONTRACT_VERSION
            ),
            "re-plan the scenario with this schedbox (`schedbox plan --json`) and replay that stream".into(),
        ));
    }
    let too_large = |what: &str, len: usize| {
        (
            format!("{what} have {len} bytes of string/list arguments; the bound is {max_arg_bytes} bytes"),
            "shorten the arguments, or raise `max-arg-kib` in [limits] of the policy".to_string(),
        )
    };
    let setups = std::iter::once((Section::Backdrop, &stream.backdrop.cgroups))
        .chain(stream.steps.iter().enumerate().map(|(i, s)| (Section::Step(i), &s.setup)));
    for (section, defs) in setups {
        let len = arg_bytes(defs);
        if len > max_arg_bytes {
            let (m, f) = too_large("the setup cgroups", len);
            return Err(at(Some(section), None, None, m, f));
        }
    }
    for (section, i, op) in stream.ops() {
        let len = arg_bytes(op);
        if len > max_arg_bytes {
            let (m, f) = too_large("the op's arguments", len);
            return Err(at(Some(section), Some(i), Some(op.kind()), m, f));
        }
    }
    validate_stream(stream)
}

/// Checks a single hold, for callers outside a stream (without the scenario
/// duration, a fraction or loop is not checked against [`MAX_HOLD_MS`]).
pub fn check_hold(h: &HoldSpec) -> Result<(), Problem> {
    args::hold(h, None)
}

/// Checks one cgroup definition, for callers outside a stream.
pub fn check_cgroup_def(def: &CgroupDef, info: Option<&ScenarioInfo>) -> Result<(), Problem> {
    args::cgroup_def(def, info.map(|i| &i.topology))
}

/// Checks an op's own arguments (no stream context).
pub fn check_op_args(op: &Op, info: Option<&ScenarioInfo>) -> Result<(), Problem> {
    ownership::op_args(op, info.map(|i| &i.topology))
}

#[cfg(test)]
mod tests;
