//! The op stream: [`Backdrop`], [`Step`] and [`emit`].

use std::fmt;

use crate::op::Op;
use crate::types::{CgroupDef, HoldSpec, OpError};

/// One phase of a scenario: setup cgroups, ops, then a hold.
///
/// The setup cgroups are created when the step opens and removed at the
/// step's teardown; the ops address them (and the Backdrop's cgroups) by
/// name.
///
/// ```rust
/// use schedbox_scenario::prelude::*;
///
/// let settle = Step::new(vec![], HoldSpec::frac(0.2));
/// let churn = Step::with_defs(
///     vec![CgroupDef::named("churn").workers(2)],
///     vec![Op::capture_snapshot("churn-start")],
///     HoldSpec::frac(0.5),
/// );
/// let probe = Step::with_op(Op::capture_cgroup_procs("base-procs", "base"), HoldSpec::fixed(100))
///     .push_op(Op::capture_snapshot("end"));
/// # let _ = (settle, churn, probe);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Cgroups created when the step opens and removed at its teardown.
    pub setup: Vec<CgroupDef>,
    /// The step's ops, in order.
    pub ops: Vec<Op>,
    /// What the host does after the ops.
    pub hold: HoldSpec,
}

impl Step {
    /// A step of ops with no setup cgroups.
    pub fn new(ops: Vec<Op>, hold: HoldSpec) -> Self {
        Step { setup: Vec::new(), ops, hold }
    }

    /// A step with setup cgroups and ops.
    pub fn with_defs(defs: Vec<CgroupDef>, ops: Vec<Op>, hold: HoldSpec) -> Self {
        Step { setup: defs, ops, hold }
    }

    /// A step of a single op.
    pub fn with_op(op: Op, hold: HoldSpec) -> Self {
        Step::new(vec![op], hold)
    }

    /// Append an op.
    #[must_use]
    pub fn push_op(mut self, op: Op) -> Self {
        self.ops.push(op);
        self
    }

    /// Append a setup cgroup.
    #[must_use]
    pub fn push_cgroup(mut self, def: CgroupDef) -> Self {
        self.setup.push(def);
        self
    }
}

/// What persists across all steps: cgroups that live for the whole scenario
/// and setup ops applied once before the first step.
///
/// ```rust
/// use schedbox_scenario::prelude::*;
///
/// let backdrop = Backdrop::new()
///     .push_cgroup(CgroupDef::named("base").cpuset(CpusetSpec::llc(0)).workers(2))
///     .push_op(Op::attach_scheduler("fixture"));
/// assert!(!backdrop.is_empty());
/// assert!(Backdrop::new().is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Backdrop {
    /// Cgroups that persist for the whole scenario.
    pub cgroups: Vec<CgroupDef>,
    /// Setup ops, applied once before the first step.
    pub ops: Vec<Op>,
}

impl Backdrop {
    /// An empty Backdrop ([`emit`] makes no backdrop calls for it).
    pub fn new() -> Self {
        Backdrop::default()
    }

    /// Add a persistent cgroup.
    #[must_use]
    pub fn push_cgroup(mut self, def: CgroupDef) -> Self {
        self.cgroups.push(def);
        self
    }

    /// Add a setup op.
    #[must_use]
    pub fn push_op(mut self, op: Op) -> Self {
        self.ops.push(op);
        self
    }

    /// Whether there is nothing to emit.
    pub fn is_empty(&self) -> bool {
        self.cgroups.is_empty() && self.ops.is_empty()
    }
}

/// Emit a whole op stream through the `ops` imports.
///
/// Calls `open-backdrop`, the Backdrop's ops and `close-backdrop` (none of
/// them when the Backdrop is empty), then for each step `open-step` with its
/// setup cgroups, every op's import in order and `close-step` with its hold.
///
/// The host checks each call where it is made. On the first rejection this
/// stops and returns a message that names where the call was, which call it
/// was and the host's message and fix:
///
/// ```text
/// step 1, op 2 (set-cpuset): disjoint index 2 is not below of=2 — use an index in 0..2
/// backdrop, op 0 (add-cgroup): ...
/// step 3 (close-step): ...
/// backdrop (open-backdrop): ...
/// ```
///
/// Steps and ops are counted from 0. Call this from
/// [`Scenario::run`](crate::Scenario::run) and return its result:
///
/// ```rust,no_run
/// use schedbox_scenario::prelude::*;
///
/// fn run() -> Result<(), String> {
///     emit(
///         Backdrop::new(),
///         vec![Step::with_op(Op::add_cgroup("a"), HoldSpec::FULL)],
///     )
/// }
/// ```
pub fn emit(backdrop: Backdrop, steps: Vec<Step>) -> Result<(), String> {
    emit_to(&mut HostOps, &backdrop, &steps).map_err(|e| e.to_string())
}

/// Where the op stream goes: the host imports, or a recorder in tests.
pub(crate) trait OpSink {
    fn open_backdrop(&mut self, cgroups: &[CgroupDef]) -> Result<(), OpError>;
    fn close_backdrop(&mut self) -> Result<(), OpError>;
    fn open_step(&mut self, setup: &[CgroupDef]) -> Result<(), OpError>;
    fn close_step(&mut self, hold: HoldSpec) -> Result<(), OpError>;
    fn op(&mut self, op: &Op) -> Result<(), OpError>;
}

/// The host's `ops` imports.
struct HostOps;

impl OpSink for HostOps {
    fn open_backdrop(&mut self, cgroups: &[CgroupDef]) -> Result<(), OpError> {
        crate::ops::open_backdrop(cgroups)
    }

    fn close_backdrop(&mut self) -> Result<(), OpError> {
        crate::ops::close_backdrop()
    }

    fn open_step(&mut self, setup: &[CgroupDef]) -> Result<(), OpError> {
        crate::ops::open_step(setup)
    }

    fn close_step(&mut self, hold: HoldSpec) -> Result<(), OpError> {
        crate::ops::close_step(hold)
    }

    fn op(&mut self, op: &Op) -> Result<(), OpError> {
        op.call()
    }
}

/// Where in the stream a call was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    Backdrop,
    Step(usize),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Backdrop => f.write_str("backdrop"),
            Place::Step(i) => write!(f, "step {i}"),
        }
    }
}

/// A rejected call, located in the stream.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EmitError {
    pub(crate) place: Place,
    /// The op's index within its step or Backdrop; `None` for a structure
    /// call.
    pub(crate) op_index: Option<usize>,
    /// The WIT name of the rejected call.
    pub(crate) call: &'static str,
    pub(crate) error: OpError,
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op_index {
            Some(i) => write!(f, "{}, op {i} ({}): ", self.place, self.call)?,
            None => write!(f, "{} ({}): ", self.place, self.call)?,
        }
        f.write_str(self.error.message.trim())?;
        let fix = self.error.fix.trim();
        if !fix.is_empty() {
            write!(f, " — {fix}")?;
        }
        Ok(())
    }
}

pub(crate) fn emit_to(sink: &mut impl OpSink, backdrop: &Backdrop, steps: &[Step]) -> Result<(), EmitError> {
    let structure = |place, call: &'static str| move |error| EmitError { place, op_index: None, call, error };
    let ops = |sink: &mut _, place, ops: &[Op]| -> Result<(), EmitError> {
        for (i, op) in ops.iter().enumerate() {
            OpSink::op(sink, op).map_err(|error| EmitError { place, op_index: Some(i), call: op.wit_name(), error })?;
        }
        Ok(())
    };

    if !backdrop.is_empty() {
        let place = Place::Backdrop;
        sink.open_backdrop(&backdrop.cgroups).map_err(structure(place, "open-backdrop"))?;
        ops(sink, place, &backdrop.ops)?;
        sink.close_backdrop().map_err(structure(place, "close-backdrop"))?;
    }
    for (i, step) in steps.iter().enumerate() {
        let place = Place::Step(i);
        sink.open_step(&step.setup).map_err(structure(place, "open-step"))?;
        ops(sink, place, &step.ops)?;
        sink.close_step(step.hold).map_err(structure(place, "close-step"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::CpusetSpec;

    /// Records every call; rejects the call numbered `fail_at` (0-based).
    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        fail_at: Option<usize>,
    }

    impl Recorder {
        fn record(&mut self, call: String) -> Result<(), OpError> {
            let n = self.calls.len();
            self.calls.push(call);
            if self.fail_at == Some(n) {
                Err(OpError {
                    message: "disjoint index 2 is not below of=2".into(),
                    fix: "use an index in 0..2".into(),
                })
            } else {
                Ok(())
            }
        }
    }

    impl OpSink for Recorder {
        fn open_backdrop(&mut self, cgroups: &[CgroupDef]) -> Result<(), OpError> {
            self.record(format!("open-backdrop({})", cgroups.len()))
        }
        fn close_backdrop(&mut self) -> Result<(), OpError> {
            self.record("close-backdrop".into())
        }
        fn open_step(&mut self, setup: &[CgroupDef]) -> Result<(), OpError> {
            self.record(format!("open-step({})", setup.len()))
        }
        fn close_step(&mut self, hold: HoldSpec) -> Result<(), OpError> {
            self.record(format!("close-step({hold:?})"))
        }
        fn op(&mut self, op: &Op) -> Result<(), OpError> {
            self.record(op.wit_name().into())
        }
    }

    fn stream() -> (Backdrop, Vec<Step>) {
        let backdrop =
            Backdrop::new().push_cgroup(CgroupDef::named("base").workers(1)).push_op(Op::attach_scheduler("fixture"));
        let steps = vec![
            Step::new(vec![Op::add_cgroup("a")], HoldSpec::frac(0.5)),
            Step::with_defs(
                vec![CgroupDef::named("b"), CgroupDef::named("c")],
                vec![Op::add_cgroup("d"), Op::freeze_cgroup("b"), Op::set_cpuset("d", CpusetSpec::disjoint(2, 2))],
                HoldSpec::fixed(100),
            ),
        ];
        (backdrop, steps)
    }

    #[test]
    fn emits_structure_then_ops_in_order() {
        let (backdrop, steps) = stream();
        let mut rec = Recorder::default();
        emit_to(&mut rec, &backdrop, &steps).unwrap();
        assert_eq!(
            rec.calls,
            [
                "open-backdrop(1)",
                "attach-scheduler",
                "close-backdrop",
                "open-step(0)",
                "add-cgroup",
                "close-step(HoldSpec::Frac(0.5))",
                "open-step(2)",
                "add-cgroup",
                "freeze-cgroup",
                "set-cpuset",
                "close-step(HoldSpec::Fixed(100))",
            ]
        );
    }

    #[test]
    fn empty_backdrop_makes_no_backdrop_calls() {
        let (_, steps) = stream();
        let mut rec = Recorder::default();
        emit_to(&mut rec, &Backdrop::new(), &steps).unwrap();
        assert_eq!(rec.calls[0], "open-step(0)");
        assert!(!rec.calls.iter().any(|c| c.contains("backdrop")));
    }

    #[test]
    fn names_step_and_op_of_a_rejected_op() {
        let (backdrop, steps) = stream();
        let mut rec = Recorder { fail_at: Some(9), ..Recorder::default() };
        let err = emit_to(&mut rec, &backdrop, &steps).unwrap_err();
        assert_eq!(
            err.to_string(),
            "step 1, op 2 (set-cpuset): disjoint index 2 is not below of=2 — use an index in 0..2"
        );
        assert_eq!(rec.calls.len(), 10, "stops at the first rejection");
    }

    #[test]
    fn names_backdrop_ops_and_structure_calls() {
        let (backdrop, steps) = stream();
        let at = |n| {
            let mut rec = Recorder { fail_at: Some(n), ..Recorder::default() };
            emit_to(&mut rec, &backdrop, &steps).unwrap_err().to_string()
        };
        assert!(at(0).starts_with("backdrop (open-backdrop): "));
        assert!(at(1).starts_with("backdrop, op 0 (attach-scheduler): "));
        assert!(at(2).starts_with("backdrop (close-backdrop): "));
        assert!(at(3).starts_with("step 0 (open-step): "));
        assert!(at(10).starts_with("step 1 (close-step): "));
    }

    #[test]
    fn omits_an_empty_fix() {
        let err = EmitError {
            place: Place::Step(0),
            op_index: Some(0),
            call: "add-cgroup",
            error: OpError { message: "cgroup `a` already exists".into(), fix: String::new() },
        };
        assert_eq!(err.to_string(), "step 0, op 0 (add-cgroup): cgroup `a` already exists");
    }
}
