package schedbox

import (
	"fmt"
	"slices"

	types "schedbox/internal/wit/imports/schedbox_scenario_types"
)

// Results is what the host observed, with lookups; the contract's fields
// (Steps, Snapshots, CgroupProcs, KernelReads, Workers, Payloads) are
// promoted.
type Results struct{ types.Results }

// Procs is the pids captured under tag by CaptureCgroupProcs, and whether
// there is such a capture.
func (r Results) Procs(tag string) ([]uint32, bool) {
	for _, c := range r.CgroupProcs {
		if c.Tag == tag {
			return c.Pids, true
		}
	}
	return nil, false
}

// KernelRead is the value read under tag by ReadKernelHot/ReadKernelCold.
func (r Results) KernelRead(tag string) (KernelValue, bool) {
	for _, k := range r.KernelReads {
		if k.Tag == tag {
			return k.Value, true
		}
	}
	return KernelValue{}, false
}

// KernelReadU64 is the value read under tag as a u64 (u32 and u64 values);
// false when there is none or it is bytes.
func (r Results) KernelReadU64(tag string) (uint64, bool) {
	v, ok := r.KernelRead(tag)
	if !ok {
		return 0, false
	}
	return AsU64(v)
}

// WorkerMetrics is the metrics of cgroup's workers ("": the runner cgroup), or nil.
func (r Results) WorkerMetrics(cgroup string) *WorkerMetrics {
	for i := range r.Workers {
		if r.Workers[i].Cgroup == cgroup {
			return &r.Workers[i]
		}
	}
	return nil
}

// Step is the result of step index (counted from 0), or nil.
func (r Results) Step(index uint32) *StepResult {
	for i := range r.Steps {
		if r.Steps[i].Index == index {
			return &r.Steps[i]
		}
	}
	return nil
}

// AllStepsPassed is whether there is at least one step result and every step
// passed.
func (r Results) AllStepsPassed() bool {
	return len(r.Steps) > 0 && len(r.UnpassedSteps()) == 0
}

// UnpassedSteps is the steps that did not pass.
func (r Results) UnpassedSteps() []StepResult {
	var out []StepResult
	for _, s := range r.Steps {
		if s.Status != StepPassed {
			out = append(out, s)
		}
	}
	return out
}

// Snapshot is the snapshot named name, or nil.
func (r Results) Snapshot(name string) *Snapshot {
	for i := range r.Snapshots {
		if r.Snapshots[i].Name == name {
			return &r.Snapshots[i]
		}
	}
	return nil
}

// PayloadExit is how the (first) payload named name exited, or nil.
func (r Results) PayloadExit(name string) *PayloadExit {
	for i := range r.Payloads {
		if r.Payloads[i].Name == name {
			return &r.Payloads[i]
		}
	}
	return nil
}

// AsU64 is v as a u64 when it is a u32 or u64 value.
func AsU64(v KernelValue) (uint64, bool) {
	switch v.Tag() {
	case types.KernelValue_U32:
		return uint64(v.U32()), true
	case types.KernelValue_U64:
		return v.U64(), true
	}
	return 0, false
}

// AsU32 is v as a u32 when it is a u32 value.
func AsU32(v KernelValue) (uint32, bool) {
	if v.Tag() == types.KernelValue_U32 {
		return v.U32(), true
	}
	return 0, false
}

// AsBytes is v's bytes when it is a bytes value.
func AsBytes(v KernelValue) ([]byte, bool) {
	if v.Tag() == types.KernelValue_Bytes {
		return v.Bytes(), true
	}
	return nil, false
}

// CpusSeen is the CPUs m's workers were seen on at least once, ascending.
func CpusSeen(m *WorkerMetrics) []uint32 {
	var cpus []uint32
	for _, c := range m.Cpus {
		if c.Count > 0 && !slices.Contains(cpus, c.Cpu) {
			cpus = append(cpus, c.Cpu)
		}
	}
	slices.Sort(cpus)
	return cpus
}

// Checker collects failed expectations into a Verdict. Its zero value is
// ready to use:
//
//	var c sb.Checker
//	c.ExpectStepsPassed(r)
//	sb.ExpectEq(&c, "pids in dst", len(pids), 2)
//	return c.Verdict()
type Checker struct {
	failures []string
}

// Expect records the failure (fmt.Sprintf(format, args...)) unless cond
// holds; returns cond.
func (c *Checker) Expect(cond bool, format string, args ...any) bool {
	if !cond {
		c.Fail(format, args...)
	}
	return cond
}

// ExpectEq records "<what>: got <got>, want <want>" unless got == want;
// returns whether they are equal. (A function, not a method: Go methods take
// no type parameters.)
func ExpectEq[T comparable](c *Checker, what string, got, want T) bool {
	return c.Expect(got == want, "%s: got %v, want %v", what, got, want)
}

// ExpectStepsPassed records a failure for every step that did not pass (with
// its error), or one when there are no step results; returns whether all
// passed.
func (c *Checker) ExpectStepsPassed(r Results) bool {
	if len(r.Steps) == 0 {
		c.Fail("no step results")
		return false
	}
	unpassed := r.UnpassedSteps()
	for _, s := range unpassed {
		status := "was skipped"
		if s.Status == StepFailed {
			status = "failed"
		}
		c.Fail("step %d %s: %s", s.Index, status, s.Error.SomeOr("no error given"))
	}
	return len(unpassed) == 0
}

// Fail records a failure (fmt.Sprintf(format, args...)).
func (c *Checker) Fail(format string, args ...any) {
	c.failures = append(c.failures, fmt.Sprintf(format, args...))
}

// Failures is the failures so far.
func (c *Checker) Failures() []string { return c.failures }

// OK is whether nothing failed so far.
func (c *Checker) OK() bool { return len(c.failures) == 0 }

// Verdict passes if nothing failed, otherwise fails with every message.
func (c *Checker) Verdict() Verdict {
	if c.OK() {
		return Pass()
	}
	return Verdict{Outcome: OutcomeFail, Messages: slices.Clone(c.failures)}
}
