// cpuset-split: two cgroups on disjoint halves of the CPUs.
//
// The Go twin of example-scenarios/rust/cpuset-split: its op stream is the
// same, byte for byte. `left` and `right` live on the Backdrop with cpusets
// Disjoint(0, 2) and Disjoint(1, 2) and two spinning workers each. Step 0
// lets them run; step 1 captures each cgroup's procs. The check wants both
// steps passed, two pids per cgroup, progress in both and, where the host
// reports per-CPU placement, no CPU shared by the two cgroups' workers.
package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	sb "schedbox"
)

type cpusetSplit struct{}

var halves = []string{"left", "right"}

func (cpusetSplit) Describe() sb.Info {
	return sb.NewInfo("cpuset-split", "two cgroups with two spinners each on disjoint halves of the CPUs").
		Topology(1, 2, 2, 1).
		Needs(sb.CgroupV2).
		Duration(3000 * time.Millisecond)
}

func (cpusetSplit) Run() error {
	backdrop := sb.Backdrop{Cgroups: []sb.CgroupDef{
		sb.Cgroup("left").Cpuset(sb.Disjoint(0, 2)).Workers(2),
		sb.Cgroup("right").Cpuset(sb.Disjoint(1, 2)).Workers(2),
	}}
	return sb.Emit(backdrop,
		// Let the workers run.
		sb.NewStep(sb.Frac(0.5)),
		// Record who is where, keep running.
		sb.NewStep(sb.Frac(0.5),
			sb.CaptureCgroupProcs("left-procs", "left"),
			sb.CaptureCgroupProcs("right-procs", "right")),
	)
}

func (cpusetSplit) Check(r sb.Results) sb.Verdict {
	var c sb.Checker
	c.ExpectStepsPassed(r)
	sb.ExpectEq(&c, "step results", len(r.Steps), 2)
	for _, name := range halves {
		tag := name + "-procs"
		if pids, ok := r.Procs(tag); ok {
			sb.ExpectEq(&c, "pids in "+name, len(pids), 2)
		} else {
			c.Fail("no capture tagged `%s`", tag)
		}
	}
	left, right := r.WorkerMetrics("left"), r.WorkerMetrics("right")
	if left == nil || right == nil {
		c.Fail("worker metrics of `left` or `right` missing")
		return c.Verdict()
	}
	for _, m := range []*sb.WorkerMetrics{left, right} {
		c.Expect(m.Iterations > 0, "workers of `%s` made no progress", m.Cgroup)
	}
	// Placement samples are required (no isolation check passes without
	// them); the halves must not have shared a CPU.
	for _, m := range []*sb.WorkerMetrics{left, right} {
		c.Expect(len(m.Cpus) > 0, "no placement samples for the workers of `%s`", m.Cgroup)
	}
	if len(left.Cpus) > 0 && len(right.Cpus) > 0 {
		var shared []string
		rightCpus := sb.CpusSeen(right)
		for _, cpu := range sb.CpusSeen(left) {
			if slices.Contains(rightCpus, cpu) {
				shared = append(shared, fmt.Sprint(cpu))
			}
		}
		c.Expect(len(shared) == 0, "left and right workers both ran on CPUs [%s]", strings.Join(shared, ", "))
	}
	return c.Verdict()
}

func init() { sb.Export(cpusetSplit{}) }

// main is required by -buildmode=c-shared and never called.
func main() {}
