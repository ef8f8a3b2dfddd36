// freeze-resume: freeze a cgroup's workers, capture them, thaw them.
//
// The Go twin of example-scenarios/rust/freeze-resume. The Backdrop cgroup
// `workers` has two spinners. Step 0 lets them run, step 1 freezes the cgroup
// and captures its procs, step 2 thaws it. The check wants all three steps
// passed and the frozen capture to still list both workers (freezing stops
// tasks, it does not remove them).
package main

import (
	"time"

	sb "schedbox"
)

type freezeResume struct{}

const cgroup = "workers"

func (freezeResume) Describe() sb.Info {
	return sb.NewInfo("freeze-resume", "freeze a cgroup of workers, capture its procs, thaw it").
		Topology(1, 1, 2, 1).
		Needs(sb.CgroupV2).
		Duration(3000 * time.Millisecond)
}

func (freezeResume) Run() error {
	backdrop := sb.Backdrop{Cgroups: []sb.CgroupDef{sb.Cgroup(cgroup).Workers(2)}}
	return sb.Emit(backdrop,
		sb.NewStep(sb.Frac(0.4)),
		sb.NewStep(sb.Frac(0.2), sb.FreezeCgroup(cgroup), sb.CaptureCgroupProcs("frozen-procs", cgroup)),
		sb.NewStep(sb.Frac(0.4), sb.UnfreezeCgroup(cgroup)),
	)
}

func (freezeResume) Check(r sb.Results) sb.Verdict {
	var c sb.Checker
	c.ExpectStepsPassed(r)
	sb.ExpectEq(&c, "step results", len(r.Steps), 3)
	if pids, ok := r.Procs("frozen-procs"); ok {
		sb.ExpectEq(&c, "pids in the frozen cgroup", len(pids), 2)
	} else {
		c.Fail("no capture tagged `frozen-procs`")
	}
	if m := r.WorkerMetrics(cgroup); m != nil {
		c.Expect(m.Iterations > 0, "the workers made no progress")
	}
	return c.Verdict()
}

func init() { sb.Export(freezeResume{}) }

// main is required by -buildmode=c-shared and never called.
func main() {}
