// freeze-resume: the reference's suspend/resume of a Backdrop cgroup.
//
// The Go twin of example-scenarios/rust/freeze-resume. The Backdrop cgroup
// `workers` has two spinners. Step 0 lets them run, step 1 freezes the cgroup
// and captures its procs, step 2 does nothing (the freeze lasts across the step
// boundary), step 3 thaws it. The check reads the step metrics (the guest at
// each step's end): the workers ran in step 0, the cgroup is frozen at the end
// of steps 1 and 2 and used no CPU in step 2, and it runs again after the
// unfreeze. Missing data fails the check.
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
		sb.NewStep(sb.Frac(0.3)),
		sb.NewStep(sb.Frac(0.2), sb.FreezeCgroup(cgroup), sb.CaptureCgroupProcs("frozen-procs", cgroup)),
		sb.NewStep(sb.Frac(0.2)),
		sb.NewStep(sb.Frac(0.3), sb.UnfreezeCgroup(cgroup)),
	)
}

func checkSteps(c *sb.Checker, steps []sb.StepMetrics) {
	if len(steps) != 4 {
		c.Fail("step metrics: %d steps, want 4", len(steps))
		return
	}
	var at []*sb.CgroupState
	for i := range steps {
		if cg := sb.StepCgroup(&steps[i], cgroup); cg != nil {
			at = append(at, cg)
		} else {
			c.Fail("step %d: no metrics for cgroup `workers`", i)
		}
	}
	if len(at) != 4 {
		return
	}
	c.Expect(!at[0].Frozen, "step 0: `workers` is frozen before the freeze")
	c.Expect(at[0].Metrics.Iterations > 0, "step 0: the workers made no progress")
	c.Expect(at[1].Frozen, "step 1: `workers` is not frozen after freeze-cgroup")
	c.Expect(at[2].Frozen, "step 2: `workers` was thawed before unfreeze-cgroup")
	c.Expect(at[2].UsageUsec == at[1].UsageUsec, "step 2: the frozen cgroup used CPU: usage_usec %d -> %d",
		at[1].UsageUsec, at[2].UsageUsec)
	c.Expect(at[2].Metrics.Iterations == at[1].Metrics.Iterations,
		"step 2: the frozen workers made progress: %d -> %d iterations", at[1].Metrics.Iterations, at[2].Metrics.Iterations)
	c.Expect(!at[3].Frozen, "step 3: `workers` is still frozen after unfreeze-cgroup")
	c.Expect(at[3].Metrics.Iterations > at[2].Metrics.Iterations,
		"step 3: no progress after the unfreeze: %d -> %d iterations", at[2].Metrics.Iterations, at[3].Metrics.Iterations)
}

func (freezeResume) Check(r sb.Results) sb.Verdict {
	var c sb.Checker
	c.ExpectStepsPassed(r)
	sb.ExpectEq(&c, "step results", len(r.Steps), 4)
	if pids, ok := r.Procs("frozen-procs"); ok {
		sb.ExpectEq(&c, "pids in the frozen cgroup", len(pids), 2)
	} else {
		c.Fail("no capture tagged `frozen-procs`")
	}
	if m := r.WorkerMetrics(cgroup); m != nil {
		c.Expect(m.Iterations > 0, "the workers made no progress")
	} else {
		c.Fail("no worker metrics for cgroup `workers`")
	}
	checkSteps(&c, sb.GetStepMetrics())
	return c.Verdict()
}

func init() { sb.Export(freezeResume{}) }

// main is required by -buildmode=c-shared and never called.
func main() {}
