package schedbox

import (
	"fmt"
	"strings"

	ops "schedbox/internal/wit/imports/schedbox_scenario_ops"
)

// Step is one phase of a scenario: setup cgroups (created when the step opens,
// removed at its teardown), ops, then a hold. Hold is required.
//
//	sb.NewStep(sb.Frac(0.2))                                   // just let things run
//	sb.NewStep(sb.Fixed(100*time.Millisecond), sb.CaptureSnapshot("end"))
//	sb.Step{Setup: []sb.CgroupDef{sb.Cgroup("churn").Workers(2)}, Ops: []sb.Op{...}, Hold: sb.Frac(0.5)}
type Step struct {
	Setup []CgroupDef
	Ops   []Op
	Hold  HoldSpec
}

// NewStep is a step of ops (none is fine) with no setup cgroups.
func NewStep(hold HoldSpec, ops ...Op) Step { return Step{Ops: ops, Hold: hold} }

// Backdrop is what persists across all steps: cgroups that live for the whole
// scenario and setup ops applied once before the first step. The zero
// Backdrop is empty, and Emit makes no backdrop calls for it.
type Backdrop struct {
	Cgroups []CgroupDef
	Ops     []Op
}

// IsEmpty is whether there is nothing to emit.
func (b Backdrop) IsEmpty() bool { return len(b.Cgroups) == 0 && len(b.Ops) == 0 }

// EmitError is a call the host rejected, located in the stream. Its message
// is the Rust and C SDKs':
//
//	step 1, op 2 (set-cpuset): disjoint index 2 is not below of=2 — use an index in 0..2
//	backdrop (open-backdrop): ...
type EmitError struct {
	// Step is the step's index, or -1 for the Backdrop.
	Step int
	// Op is the op's index within its step or Backdrop, or -1 for a structure
	// call (open-step, close-step, open-backdrop, close-backdrop).
	Op int
	// Call is the WIT name of the rejected call.
	Call string
	// Rejection is the host's message and fix.
	Rejection OpError
}

func (e *EmitError) Error() string {
	var b strings.Builder
	if e.Step < 0 {
		b.WriteString("backdrop")
	} else {
		fmt.Fprintf(&b, "step %d", e.Step)
	}
	if e.Op >= 0 {
		fmt.Fprintf(&b, ", op %d", e.Op)
	}
	fmt.Fprintf(&b, " (%s): %s", e.Call, strings.TrimSpace(e.Rejection.Message))
	if fix := strings.TrimSpace(e.Rejection.Fix); fix != "" {
		b.WriteString(" — " + fix)
	}
	return b.String()
}

// Emit sends a whole op stream to the host: open-backdrop, the Backdrop's ops
// and close-backdrop (none of them when the Backdrop is empty), then for each
// step open-step with its setup cgroups, every op in order and close-step
// with its hold.
//
// The host checks each call where it is made. Emit stops at the first
// rejection and returns an *EmitError naming where it was; return it from
// Run, and the host fails the scenario with that message (as the Rust SDK's
// emit does). A step without a Hold is an error before any call is made.
func Emit(backdrop Backdrop, steps ...Step) error {
	for i, s := range steps {
		if s.Hold == (HoldSpec{}) {
			return fmt.Errorf("step %d has no Hold; give it one, e.g. sb.NewStep(sb.Frac(0.5), ...)", i)
		}
	}
	if !backdrop.IsEmpty() {
		if err := structure(-1, "open-backdrop", ops.OpenBackdrop(defs(backdrop.Cgroups))); err != nil {
			return err
		}
		if err := emitOps(-1, backdrop.Ops); err != nil {
			return err
		}
		if err := structure(-1, "close-backdrop", ops.CloseBackdrop()); err != nil {
			return err
		}
	}
	for i, s := range steps {
		if err := structure(i, "open-step", ops.OpenStep(defs(s.Setup))); err != nil {
			return err
		}
		if err := emitOps(i, s.Ops); err != nil {
			return err
		}
		if err := structure(i, "close-step", ops.CloseStep(s.Hold)); err != nil {
			return err
		}
	}
	return nil
}

func structure(step int, call string, r result) error {
	if r.IsErr() {
		return &EmitError{Step: step, Op: -1, Call: call, Rejection: r.Err()}
	}
	return nil
}

func emitOps(step int, list []Op) error {
	for i, o := range list {
		if rejection := o.Call(); rejection != nil {
			return &EmitError{Step: step, Op: i, Call: o.name, Rejection: *rejection}
		}
	}
	return nil
}
