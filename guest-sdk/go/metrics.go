package schedbox

import (
	metrics "schedbox/internal/wit/imports/schedbox_scenario_metrics"
)

// StepMetrics is the guest at the end of one step: after its hold, before its
// teardown. See GetStepMetrics.
type StepMetrics = metrics.StepMetrics

// CgroupState is a live cgroup in StepMetrics: its resolved cpuset
// (cpuset.cpus.effective), whether cgroup.events says frozen 1, cpu.stat
// usage_usec, its process count and its workers' counters summed.
type CgroupState = metrics.CgroupState

// WorkerStat is one worker's counters in StepMetrics, cumulative since it started.
type WorkerStat = metrics.WorkerStat

// GetStepMetrics is the step metrics of the run Check judges (the metrics
// import): one entry per step that reached its end, in step order. Empty
// outside Check. Call it once per Check: each call copies them.
func GetStepMetrics() []StepMetrics { return metrics.Steps() }

// WorkerLatency is one worker's latencies at the end of a step (see
// GetStepLatencies): Wake and Request, each an option of Latency.
type WorkerLatency = metrics.WorkerLatency

// Latency is a latency distribution, cumulative since the worker started:
// samples, p50/p90/p99 (floors of log-linear buckets, within 25 %) and max, ns.
type Latency = metrics.Latency

// GetStepLatencies is the latencies of every worker of GetStepMetrics, in the
// same order (step, then its workers), for the work types that measure them.
// Empty outside Check. Call it once per Check.
func GetStepLatencies() []WorkerLatency { return metrics.Latencies() }

// StepCgroup is the live cgroup name at the end of step s, or nil.
func StepCgroup(s *StepMetrics, name string) *CgroupState {
	for i := range s.Cgroups {
		if s.Cgroups[i].Name == name {
			return &s.Cgroups[i]
		}
	}
	return nil
}
