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
