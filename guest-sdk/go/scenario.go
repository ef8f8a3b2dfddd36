package schedbox

import (
	"slices"
	"time"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
	"schedbox/internal/wit/exports/export_wit_world"
	// The component's describe/run/check exports (generated from wit/).
	_ "schedbox/internal/wit/exports/wit_exports"
	types "schedbox/internal/wit/imports/schedbox_scenario_types"
)

// Scenario is a scenario component. The host calls Describe first, then Run
// to collect the op stream, executes the stream in a guest kernel and finally
// calls Check with what it observed.
type Scenario interface {
	// Describe is the scenario's name, needs and shape. It must not emit ops.
	Describe() Info
	// Run emits the op stream, usually with one Emit call. A non-nil error
	// fails the scenario with its message.
	Run() error
	// Check judges the results of executing the stream.
	Check(r Results) Verdict
}

// Export makes s the component's describe, run and check. Call it once, from
// an init function of the scenario's package main:
//
//	func init() { sb.Export(cpusetSplit{}) }
//
//	func main() {} // required by -buildmode=c-shared, never called
func Export(s Scenario) {
	export_wit_world.Describe = func() types.ScenarioInfo { return s.Describe().info }
	export_wit_world.Run = func() witTypes.Result[witTypes.Unit, string] {
		if err := s.Run(); err != nil {
			return witTypes.Err[witTypes.Unit, string](err.Error())
		}
		return witTypes.Ok[witTypes.Unit, string](witTypes.Unit{})
	}
	export_wit_world.Check = func(r types.Results) types.Verdict { return s.Check(Results{r}) }
}

// Info is what Describe returns, built with chained setters:
//
//	sb.NewInfo("llc-churn", "workers hop between LLCs").
//		Topology(1, 2, 4, 2).
//		Needs(sb.SchedExt).
//		Scheduler("fixture").
//		Duration(4 * time.Second)
type Info struct{ info types.ScenarioInfo }

// NewInfo is a scenario named name on the default shape (1 node × 1 LLC × 2
// cores × 1 thread), with no kernel features, payloads or schedulers, lasting
// 3 s. The name should be the scenario's directory name.
func NewInfo(name, summary string) Info {
	return Info{types.ScenarioInfo{
		Name:       name,
		Summary:    summary,
		Topology:   Topology{NumaNodes: 1, LlcsPerNode: 1, CoresPerLlc: 2, ThreadsPerCore: 1},
		DurationMs: 3000,
	}}
}

// ScenarioInfo is the contract's record, as the host receives it.
func (i Info) ScenarioInfo() ScenarioInfo { return i.info }

// Topology sets the guest shape the scenario needs (at least).
func (i Info) Topology(numaNodes, llcsPerNode, coresPerLlc, threadsPerCore uint32) Info {
	i.info.Topology = Topology{
		NumaNodes:      numaNodes,
		LlcsPerNode:    llcsPerNode,
		CoresPerLlc:    coresPerLlc,
		ThreadsPerCore: threadsPerCore,
	}
	return i
}

// Needs adds a kernel feature the scenario needs (listed once however often
// it is named).
func (i Info) Needs(feature KernelFeature) Info {
	if !slices.Contains(i.info.KernelFeatures, feature) {
		i.info.KernelFeatures = append(slices.Clip(i.info.KernelFeatures), feature)
	}
	return i
}

// Payload adds a payload RunPayload may use (staged with `--payload`).
func (i Info) Payload(name string) Info {
	i.info.Payloads = append(slices.Clip(i.info.Payloads), name)
	return i
}

// Scheduler adds a scheduler the scheduler ops may use; declare every one,
// the built-in `fixture` included.
func (i Info) Scheduler(name string) Info {
	i.info.Schedulers = append(slices.Clip(i.info.Schedulers), name)
	return i
}

// Duration sets the scenario duration (whole milliseconds), the base of Frac
// holds.
func (i Info) Duration(d time.Duration) Info {
	i.info.DurationMs = millis(d)
	return i
}

// Pass is the verdict of a scenario that did what it should.
func Pass() Verdict { return Verdict{Outcome: OutcomePass, Messages: []string{}} }

// Fail is the verdict of a scenario that did not, because of msg.
func Fail(msg string) Verdict { return Verdict{Outcome: OutcomeFail, Messages: []string{msg}} }

// Skip is the verdict when the results say nothing either way (e.g. a
// feature was missing).
func Skip(msg string) Verdict { return Verdict{Outcome: OutcomeSkip, Messages: []string{msg}} }
