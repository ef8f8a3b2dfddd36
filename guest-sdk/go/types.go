package schedbox

import (
	types "schedbox/internal/wit/imports/schedbox_scenario_types"
)

// The contract's types, as wit-bindgen generates them from wit/scenario.wit.
// Variants (CpusetSpec, HoldSpec, WorkType, ...) are built with this
// package's constructors (Disjoint, Frac, YieldHeavy, ...); records are plain
// structs, and optional fields are wit types' Option (IsSome, Some, SomeOr).
type (
	// OpError is a call-site rejection: what was wrong and what to do.
	OpError = types.OpError
	// CpusetSpec says how the host computes a cpuset from the guest topology.
	CpusetSpec = types.CpusetSpec
	// HoldSpec is what the host does after a step's ops.
	HoldSpec = types.HoldSpec
	// WorkType is what each worker does.
	WorkType = types.WorkType
	// Phase is one phase of a Sequence worker.
	Phase = types.Phase
	// SchedPolicy is the scheduling policy of each worker.
	SchedPolicy = types.SchedPolicy
	// AffinityIntent is the CPU affinity of each worker.
	AffinityIntent = types.AffinityIntent
	// KernelTarget is a kernel address, named by how the host resolves it.
	KernelTarget = types.KernelTarget
	// KernelValue is a value written to (or read from) kernel memory.
	KernelValue = types.KernelValue
	// KernelValueWidth is the width of a kernel read.
	KernelValueWidth = types.KernelValueWidth
	// KernelWrite is a value to write at a target.
	KernelWrite = types.KernelWrite
	// IrqSelector names the IRQ SteerIrq targets.
	IrqSelector = types.IrqSelector
	// KernelFeature is a kernel feature a scenario needs.
	KernelFeature = types.KernelFeature
	// Topology is the guest shape a scenario needs (at least).
	Topology = types.Topology
	// ScenarioInfo is what describe hands the host; build it with NewInfo.
	ScenarioInfo = types.ScenarioInfo
	// Verdict is what check returns: an outcome and messages.
	Verdict = types.Verdict
	// Outcome is a verdict's outcome: OutcomePass, OutcomeFail, OutcomeSkip.
	Outcome = types.Outcome
	// StepResult is how one step went.
	StepResult = types.StepResult
	// StepStatus is a step's status: StepPassed, StepFailed, StepSkipped.
	StepStatus = types.StepStatus
	// Snapshot is a captured snapshot: vCPU registers and named values.
	Snapshot = types.Snapshot
	// CgroupProcs is a capture-cgroup-procs record.
	CgroupProcs = types.CgroupProcs
	// KernelRead is a read-kernel-hot/cold record.
	KernelRead = types.KernelRead
	// WorkerMetrics is what a cgroup's workers did.
	WorkerMetrics = types.WorkerMetrics
	// CpuCount is how often workers were seen on a CPU.
	CpuCount = types.CpuCount
	// PayloadExit is how a payload exited.
	PayloadExit = types.PayloadExit
)

// Kernel features for Info.Needs.
var (
	SchedExt = types.MakeKernelFeatureSchedExt()
	Btf      = types.MakeKernelFeatureBtf()
	CgroupV2 = types.MakeKernelFeatureCgroupV2()
)

// Outcomes of a Verdict.
const (
	OutcomePass = types.Outcome_Pass
	OutcomeFail = types.Outcome_Fail
	OutcomeSkip = types.Outcome_Skip
)

// Statuses of a StepResult.
const (
	StepPassed  = types.StepStatus_Passed
	StepFailed  = types.StepStatus_Failed
	StepSkipped = types.StepStatus_Skipped
)
