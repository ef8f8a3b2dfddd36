package schedbox

// Assertions on the step metrics (GetStepMetrics), as Checker methods, with the
// Rust SDK's names, semantics and messages. Each judges the per-step
// differences of the cumulative counters (a worker is followed by its tid from
// one step's end to the next), records one failure per offending cgroup,
// worker and step with the numbers, and returns whether everything held. None
// passes on missing data.

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

func previousWorker(steps []StepMetrics, i int, w *WorkerStat) *WorkerStat {
	if i == 0 {
		return nil
	}
	for j := range steps[i-1].Workers {
		if steps[i-1].Workers[j].Tid == w.Tid {
			return &steps[i-1].Workers[j]
		}
	}
	return nil
}

func satSub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

func unitsInStep(steps []StepMetrics, i int, w *WorkerStat) uint64 {
	if p := previousWorker(steps, i, w); p != nil {
		return satSub(w.WorkUnits, p.WorkUnits)
	}
	return w.WorkUnits
}

func wallInStep(steps []StepMetrics, i int, w *WorkerStat) uint64 {
	if p := previousWorker(steps, i, w); p != nil {
		return satSub(w.WallTimeNs, p.WallTimeNs)
	}
	return w.WallTimeNs
}

func cpusInStep(steps []StepMetrics, i int, w *WorkerStat) []uint32 {
	before := map[uint32]uint64{}
	if p := previousWorker(steps, i, w); p != nil {
		for _, c := range p.Cpus {
			before[c.Cpu] = c.Count
		}
	}
	var out []uint32
	for _, c := range w.Cpus {
		if c.Count > before[c.Cpu] {
			out = append(out, c.Cpu)
		}
	}
	return out
}

func workersOf(s *StepMetrics, cgroup string) []*WorkerStat {
	var out []*WorkerStat
	for j := range s.Workers {
		if s.Workers[j].Cgroup == cgroup {
			out = append(out, &s.Workers[j])
		}
	}
	return out
}

func cpuList(cpus []uint32) string {
	parts := make([]string, len(cpus))
	for i, c := range cpus {
		parts[i] = strconv.FormatUint(uint64(c), 10)
	}
	return strings.Join(parts, ",")
}

// ratioText prints a ratio as the Rust SDK does ("inf" when unbounded).
func ratioText(r float64) string {
	if math.IsInf(r, 0) || math.IsNaN(r) {
		return "inf"
	}
	return fmt.Sprintf("%.2f", r)
}

func stepIndex(steps []StepMetrics, step uint32) int {
	for i := range steps {
		if steps[i].Step == step {
			return i
		}
	}
	return -1
}

func (c *Checker) stepsWith(steps []StepMetrics, cgroup, what string) []int {
	var with []int
	for i := range steps {
		if StepCgroup(&steps[i], cgroup) != nil {
			with = append(with, i)
		}
	}
	if len(with) == 0 {
		c.Fail("%s: cgroup `%s` is in no step's metrics (%d steps)", what, cgroup, len(steps))
	}
	return with
}

// ExpectIsolation: in every step where cgroup lived, each of its workers ran
// only on CPUs of the cgroup's resolved cpuset (at that step's end, or at the
// previous step's end).
func (c *Checker) ExpectIsolation(steps []StepMetrics, cgroup string) bool {
	with := c.stepsWith(steps, cgroup, "isolation")
	if with == nil {
		return false
	}
	ok := true
	for _, i := range with {
		cg := StepCgroup(&steps[i], cgroup)
		allowed := map[uint32]bool{}
		for _, x := range cg.CpusEffective {
			allowed[x] = true
		}
		if i > 0 {
			if prev := StepCgroup(&steps[i-1], cgroup); prev != nil {
				for _, x := range prev.CpusEffective {
					allowed[x] = true
				}
			}
		}
		for _, w := range workersOf(&steps[i], cgroup) {
			var outside []uint32
			for _, x := range cpusInStep(steps, i, w) {
				if !allowed[x] {
					outside = append(outside, x)
				}
			}
			if len(outside) > 0 {
				ok = false
				c.Fail("isolation: step %d, cgroup `%s`, worker %d: ran on CPUs %s outside its cpuset %s",
					steps[i].Step, cgroup, w.Tid, cpuList(outside), cpuList(cg.CpusEffective))
			}
		}
	}
	return ok
}

// ExpectNotStarved: in every step where cgroup lived, each of its live workers
// did some work, and none had a gap between two iterations longer than maxGapNs.
func (c *Checker) ExpectNotStarved(steps []StepMetrics, cgroup string, maxGapNs uint64) bool {
	with := c.stepsWith(steps, cgroup, "not starved")
	if with == nil {
		return false
	}
	ok := true
	for _, i := range with {
		var live []*WorkerStat
		for _, w := range workersOf(&steps[i], cgroup) {
			if w.Alive {
				live = append(live, w)
			}
		}
		if len(live) == 0 {
			ok = false
			c.Fail("not starved: step %d, cgroup `%s`: no live worker", steps[i].Step, cgroup)
		}
		for _, w := range live {
			if unitsInStep(steps, i, w) == 0 {
				ok = false
				c.Fail("not starved: step %d, cgroup `%s`, worker %d: no work done in the step (%d units in all)",
					steps[i].Step, cgroup, w.Tid, w.WorkUnits)
			}
			if w.MaxGapNs > maxGapNs {
				ok = false
				c.Fail("not starved: step %d, cgroup `%s`, worker %d: a gap of %d ns (bound %d ns) ending on CPU %d at %d ns",
					steps[i].Step, cgroup, w.Tid, w.MaxGapNs, maxGapNs, w.MaxGapCpu, w.MaxGapAtNs)
			}
		}
	}
	return ok
}

// ExpectFairness: in step, the work units each live worker of cgroup did in
// that step are within maxRatio of each other (most / fewest <= maxRatio).
func (c *Checker) ExpectFairness(steps []StepMetrics, step uint32, cgroup string, maxRatio float64) bool {
	i := stepIndex(steps, step)
	if i < 0 {
		c.Fail("fairness: no metrics for step %d (%d steps)", step, len(steps))
		return false
	}
	type tu struct {
		tid   uint32
		units uint64
	}
	var units []tu
	for _, w := range workersOf(&steps[i], cgroup) {
		if w.Alive {
			units = append(units, tu{w.Tid, unitsInStep(steps, i, w)})
		}
	}
	if len(units) < 2 {
		c.Fail("fairness: step %d, cgroup `%s`: %d live worker(s), need at least 2 to compare", step, cgroup, len(units))
		return false
	}
	// The first fewest and the last most, as the Rust SDK picks them.
	lo, hi := units[0], units[0]
	for _, u := range units[1:] {
		if u.units < lo.units {
			lo = u
		}
		if u.units >= hi.units {
			hi = u
		}
	}
	ratio := math.Inf(1)
	if lo.units != 0 {
		ratio = float64(hi.units) / float64(lo.units)
	}
	return c.Expect(ratio <= maxRatio,
		"fairness: step %d, cgroup `%s`: worker %d did %d units, worker %d %d (ratio %s, bound %v)",
		step, cgroup, hi.tid, hi.units, lo.tid, lo.units, ratioText(ratio), maxRatio)
}

// ExpectPhaseRatio: cgroup's throughput (work units per second, summed over
// its workers) in step b divided by that in step a lies in lo..=hi.
func (c *Checker) ExpectPhaseRatio(steps []StepMetrics, cgroup string, a, b uint32, lo, hi float64) bool {
	rate := func(step uint32) (float64, bool) {
		i := stepIndex(steps, step)
		if i < 0 {
			c.Fail("phase ratio: no metrics for step %d (%d steps)", step, len(steps))
			return 0, false
		}
		workers := workersOf(&steps[i], cgroup)
		var wall, units uint64
		for _, w := range workers {
			if x := wallInStep(steps, i, w); x > wall {
				wall = x
			}
			units += unitsInStep(steps, i, w)
		}
		if len(workers) == 0 || wall == 0 {
			c.Fail("phase ratio: step %d, cgroup `%s`: no workers to measure", step, cgroup)
			return 0, false
		}
		return float64(units) / (float64(wall) / 1e9), true
	}
	ra, okA := rate(a)
	rb, okB := rate(b)
	if !okA || !okB {
		return false
	}
	ratio := math.Inf(1)
	if ra != 0 {
		ratio = rb / ra
	}
	return c.Expect(ratio >= lo && ratio <= hi,
		"phase ratio: cgroup `%s`: step %d did %.0f units/s, step %d %.0f units/s (ratio %s, want %v..=%v)",
		cgroup, b, rb, a, ra, ratioText(ratio), lo, hi)
}

// LatencyKind says which latency ExpectLatencyBound judges.
type LatencyKind int

const (
	// LatencyWake is WorkerLatency.Wake: wake-up latency.
	LatencyWake LatencyKind = iota
	// LatencyRequest is WorkerLatency.Request: schbench's request latency, the
	// lock wait of mutex-contention and priority-inversion.
	LatencyRequest
)

func (k LatencyKind) name() string {
	if k == LatencyRequest {
		return "request"
	}
	return "wake"
}

func latencyOf(lat []WorkerLatency, step, tid uint32, kind LatencyKind) *Latency {
	for i := range lat {
		if lat[i].Step != step || lat[i].Tid != tid {
			continue
		}
		o := lat[i].Wake
		if kind == LatencyRequest {
			o = lat[i].Request
		}
		if o.IsNone() {
			return nil
		}
		l := o.Some()
		return &l
	}
	return nil
}

// ExpectLatencyBound: in every step where cgroup lived, each of its live
// workers measured kind latency during that step (its sample count grew since
// the previous step's end) and its p99 (cumulative since the worker started)
// is at most maxP99Ns. A worker with no such latency fails.
func (c *Checker) ExpectLatencyBound(steps []StepMetrics, lat []WorkerLatency, cgroup string, kind LatencyKind, maxP99Ns uint64) bool {
	with := c.stepsWith(steps, cgroup, "latency bound")
	if with == nil {
		return false
	}
	what := kind.name()
	ok := true
	for _, i := range with {
		step := steps[i].Step
		var live []*WorkerStat
		for _, w := range workersOf(&steps[i], cgroup) {
			if w.Alive {
				live = append(live, w)
			}
		}
		if len(live) == 0 {
			ok = false
			c.Fail("latency bound: step %d, cgroup `%s`: no live worker", step, cgroup)
		}
		for _, w := range live {
			l := latencyOf(lat, step, w.Tid, kind)
			if l == nil {
				ok = false
				c.Fail("latency bound: step %d, cgroup `%s`, worker %d: no %s latency measured", step, cgroup, w.Tid, what)
				continue
			}
			var before uint64
			if i > 0 {
				if p := latencyOf(lat, steps[i-1].Step, w.Tid, kind); p != nil {
					before = p.Samples
				}
			}
			if l.Samples <= before {
				ok = false
				c.Fail("latency bound: step %d, cgroup `%s`, worker %d: no %s latency samples in the step (%d in all)",
					step, cgroup, w.Tid, what, l.Samples)
			}
			if l.P99Ns > maxP99Ns {
				ok = false
				c.Fail("latency bound: step %d, cgroup `%s`, worker %d: %s p99 %d ns (bound %d ns; p50 %d ns, p90 %d ns, max %d ns, %d samples since it started)",
					step, cgroup, w.Tid, what, l.P99Ns, maxP99Ns, l.P50Ns, l.P90Ns, l.MaxNs, l.Samples)
			}
		}
	}
	return ok
}

// ExpectSchedulerAttached: at the end of every step in first..=last, sched_ext
// is enabled and, when ops is not "", root/ops names it.
func (c *Checker) ExpectSchedulerAttached(steps []StepMetrics, first, last uint32, ops string) bool {
	ok := true
	for step := first; step <= last; step++ {
		i := stepIndex(steps, step)
		if i < 0 {
			c.Fail("scheduler attached: no metrics for step %d (%d steps)", step, len(steps))
			ok = false
			continue
		}
		s := &steps[i]
		if s.SchedExtState != "enabled" || (ops != "" && ops != s.SchedExtOps) {
			ok = false
			want := ", want enabled"
			if ops != "" {
				want = fmt.Sprintf(", want enabled with %q", ops)
			}
			c.Fail("scheduler attached: step %d: sched_ext %q with ops %q%s", step, s.SchedExtState, s.SchedExtOps, want)
		}
	}
	return ok
}
