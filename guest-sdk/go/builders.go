package schedbox

import (
	"slices"
	"time"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
	types "schedbox/internal/wit/imports/schedbox_scenario_types"
)

// millis is a span in whole milliseconds, as the contract carries it
// (truncated; negative spans are 0).
func millis(d time.Duration) uint64 {
	if d < 0 {
		return 0
	}
	return uint64(d.Milliseconds())
}

// ---------------------------------------------------------------------------
// Cpusets, resolved by the host against the guest topology.

// Llc is all CPUs of LLC index.
func Llc(index uint32) CpusetSpec { return types.MakeCpusetSpecLlc(index) }

// Numa is all CPUs of NUMA node index.
func Numa(index uint32) CpusetSpec { return types.MakeCpusetSpecNuma(index) }

// Range is the fractional range [start, end) of the usable CPUs
// (0 <= start < end <= 1).
func Range(start, end float64) CpusetSpec {
	return types.MakeCpusetSpecRange(types.FracRange{Start: start, End: end})
}

// Disjoint splits the usable CPUs into of equal disjoint sets and takes set
// index (index < of).
func Disjoint(index, of uint32) CpusetSpec {
	return types.MakeCpusetSpecDisjoint(types.Partition{Index: index, Of: of})
}

// Overlap is like Disjoint, each set widened by frac of its size into its
// neighbours.
func Overlap(index, of uint32, frac float64) CpusetSpec {
	return types.MakeCpusetSpecOverlap(types.OverlapPartition{Index: index, Of: of, Frac: frac})
}

// ExactCpus is exactly these CPU ids (no topology resolution; not empty).
func ExactCpus(cpus ...uint32) CpusetSpec { return types.MakeCpusetSpecExact(cpus) }

// ---------------------------------------------------------------------------
// Holds.

// Full holds for the whole scenario duration (Frac(1.0)).
var Full = Frac(1.0)

// Frac holds for frac (0 < frac <= 1) of the scenario duration.
func Frac(frac float64) HoldSpec { return types.MakeHoldSpecFrac(frac) }

// Fixed holds for a fixed time (whole milliseconds).
func Fixed(span time.Duration) HoldSpec { return types.MakeHoldSpecFixed(millis(span)) }

// LoopEvery re-applies the step's ops every interval until the scenario
// duration is used.
func LoopEvery(interval time.Duration) HoldSpec { return types.MakeHoldSpecLoop(millis(interval)) }

// ---------------------------------------------------------------------------
// What workers do, how they are scheduled, where they may run.

// SpinWait workers spin (the default).
func SpinWait() WorkType { return types.MakeWorkTypeSpinWait() }

// YieldHeavy workers yield in a loop.
func YieldHeavy() WorkType { return types.MakeWorkTypeYieldHeavy() }

// Mixed workers mix spinning and yielding.
func Mixed() WorkType { return types.MakeWorkTypeMixed() }

// Bursty workers spin for burst, then sleep for sleep.
func Bursty(burst, sleep time.Duration) WorkType {
	return types.MakeWorkTypeBursty(types.Bursty{BurstMs: millis(burst), SleepMs: millis(sleep)})
}

// FutexPingPong workers wake each other through a futex, spinning spinIters
// between wakes.
func FutexPingPong(spinIters uint64) WorkType { return types.MakeWorkTypeFutexPingPong(spinIters) }

// FutexFanOut: one waker wakes fanOut waiters, spinning spinIters between wakes.
func FutexFanOut(fanOut uint32, spinIters uint64) WorkType {
	return types.MakeWorkTypeFutexFanOut(types.FutexFanOut{FanOut: fanOut, SpinIters: spinIters})
}

// PipeIo workers pass bursts of burstIters through a pipe.
func PipeIo(burstIters uint64) WorkType { return types.MakeWorkTypePipeIo(burstIters) }

// CachePressure workers stride through sizeKib KiB.
func CachePressure(sizeKib, stride uint32) WorkType {
	return types.MakeWorkTypeCachePressure(types.CachePressure{SizeKib: sizeKib, Stride: stride})
}

// WakeChain workers wake each other in a chain of depth.
func WakeChain(depth uint32) WorkType { return types.MakeWorkTypeWakeChain(depth) }

// ForkExit workers fork children that exit at once.
func ForkExit() WorkType { return types.MakeWorkTypeForkExit() }

// SleepWork workers sleep for period in a loop (Sleep would read as an op).
func SleepWork(period time.Duration) WorkType { return types.MakeWorkTypeSleep(millis(period)) }

// WaitOnFutex workers block on a futex nobody wakes.
func WaitOnFutex() WorkType { return types.MakeWorkTypeWaitOnFutex() }

// Sequence workers run these phases in a loop.
func Sequence(phases ...Phase) WorkType { return types.MakeWorkTypeSequence(phases) }

// PhaseSpin spins for span.
func PhaseSpin(span time.Duration) Phase { return types.MakePhaseSpin(millis(span)) }

// PhaseSleep sleeps for span.
func PhaseSleep(span time.Duration) Phase { return types.MakePhaseSleep(millis(span)) }

// PhaseYield yields for span.
func PhaseYield(span time.Duration) Phase { return types.MakePhaseYield(millis(span)) }

// Normal is SCHED_NORMAL (the default).
func Normal() SchedPolicy { return types.MakeSchedPolicyNormal() }

// Batch is SCHED_BATCH.
func Batch() SchedPolicy { return types.MakeSchedPolicyBatch() }

// Idle is SCHED_IDLE.
func Idle() SchedPolicy { return types.MakeSchedPolicyIdle() }

// Fifo is SCHED_FIFO with priority 1..=99.
func Fifo(priority uint8) SchedPolicy { return types.MakeSchedPolicyFifo(priority) }

// Rr is SCHED_RR with priority 1..=99.
func Rr(priority uint8) SchedPolicy { return types.MakeSchedPolicyRr(priority) }

// Ext is SCHED_EXT (needs an attached sched_ext scheduler).
func Ext() SchedPolicy { return types.MakeSchedPolicyExt() }

// Inherit keeps the cgroup's affinity (the default).
func Inherit() AffinityIntent { return types.MakeAffinityIntentInherit() }

// RandomSubset is count random CPUs of the cgroup's cpuset.
func RandomSubset(count uint32) AffinityIntent { return types.MakeAffinityIntentRandomSubset(count) }

// LlcAligned is the CPUs of one LLC.
func LlcAligned() AffinityIntent { return types.MakeAffinityIntentLlcAligned() }

// CrossCgroup spans the cpusets of other cgroups.
func CrossCgroup() AffinityIntent { return types.MakeAffinityIntentCrossCgroup() }

// SingleCpu is one CPU of the cgroup's cpuset.
func SingleCpu() AffinityIntent { return types.MakeAffinityIntentSingleCpu() }

// SmtSiblingPair is two SMT siblings.
func SmtSiblingPair() AffinityIntent { return types.MakeAffinityIntentSmtSiblingPair() }

// AffinityExact is exactly these CPUs.
func AffinityExact(cpus ...uint32) AffinityIntent { return types.MakeAffinityIntentExact(cpus) }

// WorkSpec is a group of workers, built with chained setters from Work():
//
//	sb.Work().Type(sb.YieldHeavy()).Workers(4).Policy(sb.Batch()).Nice(5).Comm("yielder")
type WorkSpec struct{ spec types.WorkSpec }

// Work is one spin-wait worker, SCHED_NORMAL, nice 0, inherited affinity, no
// thread name (the Rust SDK's WorkSpec::default()).
func Work() WorkSpec {
	return WorkSpec{types.WorkSpec{
		Work:     SpinWait(),
		Workers:  types.MakeWorkerCountCount(1),
		Policy:   Normal(),
		Affinity: Inherit(),
		Comm:     witTypes.None[string](),
	}}
}

// Type sets what each worker does.
func (w WorkSpec) Type(work WorkType) WorkSpec {
	w.spec.Work = work
	return w
}

// Workers sets exactly count workers.
func (w WorkSpec) Workers(count uint32) WorkSpec {
	w.spec.Workers = types.MakeWorkerCountCount(count)
	return w
}

// WorkersPct sets pct percent (0 < pct <= 100) of the CPUs in the target
// cgroup's cpuset.
func (w WorkSpec) WorkersPct(pct float64) WorkSpec {
	w.spec.Workers = types.MakeWorkerCountPct(pct)
	return w
}

// Policy sets the scheduling policy of each worker.
func (w WorkSpec) Policy(policy SchedPolicy) WorkSpec {
	w.spec.Policy = policy
	return w
}

// Nice sets the nice value (-20..=19).
func (w WorkSpec) Nice(nice int8) WorkSpec {
	w.spec.Nice = nice
	return w
}

// Affinity sets the CPU affinity of each worker.
func (w WorkSpec) Affinity(affinity AffinityIntent) WorkSpec {
	w.spec.Affinity = affinity
	return w
}

// Comm sets the worker thread name (at most 15 bytes).
func (w WorkSpec) Comm(comm string) WorkSpec {
	w.spec.Comm = witTypes.Some(comm)
	return w
}

// ---------------------------------------------------------------------------
// Cgroups.

// CgroupDef is a cgroup with its knobs and workload, built with chained
// setters from Cgroup:
//
//	sb.Cgroup("batch").Cpuset(sb.Llc(1)).CpuWeight(50).Work(sb.Work().Type(sb.CachePressure(512, 64)).Workers(2))
type CgroupDef struct{ def types.CgroupDef }

// Cgroup is a cgroup named name with no knobs, no workers and no payload.
func Cgroup(name string) CgroupDef {
	return CgroupDef{types.CgroupDef{
		Name:       name,
		Cpuset:     witTypes.None[CpusetSpec](),
		CpusetMems: witTypes.None[[]uint32](),
		CpuWeight:  witTypes.None[uint32](),
		CpuMax:     witTypes.None[types.CpuMax](),
		MemoryMax:  witTypes.None[uint64](),
		PidsMax:    witTypes.None[uint64](),
		IoWeight:   witTypes.None[uint32](),
		Payload:    witTypes.None[types.PayloadRef](),
	}}
}

// Name is the cgroup's name.
func (c CgroupDef) Name() string { return c.def.Name }

// Cpuset sets the cgroup's cpuset.
func (c CgroupDef) Cpuset(spec CpusetSpec) CgroupDef {
	c.def.Cpuset = witTypes.Some(spec)
	return c
}

// CpusetMems sets cpuset.mems to these NUMA nodes.
func (c CgroupDef) CpusetMems(nodes ...uint32) CgroupDef {
	c.def.CpusetMems = witTypes.Some(slices.Clone(nodes))
	return c
}

// CpuWeight sets cpu.weight (1..=10000).
func (c CgroupDef) CpuWeight(weight uint32) CgroupDef {
	c.def.CpuWeight = witTypes.Some(weight)
	return c
}

// CpuMax sets cpu.max to quotaUs per periodUs.
func (c CgroupDef) CpuMax(quotaUs, periodUs uint64) CgroupDef {
	c.def.CpuMax = witTypes.Some(types.CpuMax{QuotaUs: quotaUs, PeriodUs: periodUs})
	return c
}

// MemoryMax sets memory.max in bytes.
func (c CgroupDef) MemoryMax(bytes uint64) CgroupDef {
	c.def.MemoryMax = witTypes.Some(bytes)
	return c
}

// PidsMax sets pids.max.
func (c CgroupDef) PidsMax(max uint64) CgroupDef {
	c.def.PidsMax = witTypes.Some(max)
	return c
}

// IoWeight sets io.weight (1..=10000).
func (c CgroupDef) IoWeight(weight uint32) CgroupDef {
	c.def.IoWeight = witTypes.Some(weight)
	return c
}

// Workers adds a Work() group of count spin workers.
func (c CgroupDef) Workers(count uint32) CgroupDef { return c.Work(Work().Workers(count)) }

// Work adds a group of workers.
func (c CgroupDef) Work(spec WorkSpec) CgroupDef {
	// Clip: a def derived from this one must not share (and overwrite) its list.
	c.def.Workers = append(slices.Clip(c.def.Workers), spec.spec)
	return c
}

// Payload runs the staged payload name with args in this cgroup.
func (c CgroupDef) Payload(name string, args ...string) CgroupDef {
	c.def.Payload = witTypes.Some(types.PayloadRef{Name: name, Args: stringList(args)})
	return c
}

// Swappable sets whether a run may override the work type.
func (c CgroupDef) Swappable(swappable bool) CgroupDef {
	c.def.Swappable = swappable
	return c
}

// defs is the contract's list of cgroup definitions.
func defs(cgroups []CgroupDef) []types.CgroupDef {
	out := make([]types.CgroupDef, len(cgroups))
	for i, c := range cgroups {
		out[i] = c.def
	}
	return out
}

// stringList is a copy of args that is never nil (an empty list either way).
func stringList(args []string) []string { return append([]string{}, args...) }

// ---------------------------------------------------------------------------
// Kernel targets, values and widths; IRQs.

// Symbol is a kernel image symbol (KASLR-aware).
func Symbol(name string) KernelTarget { return types.MakeKernelTargetSymbol(name) }

// Direct is a direct-map KVA, translated as kva - PAGE_OFFSET.
func Direct(kva uint64) KernelTarget { return types.MakeKernelTargetDirect(kva) }

// Kva is any mapped KVA, translated by a page-table walk.
func Kva(kva uint64) KernelTarget { return types.MakeKernelTargetKva(kva) }

// PerCpuField is field (dot-separated, e.g. "clock" or "scx.clock") of CPU
// cpu's copy of the per-CPU symbol ("runqueues", "kernel_cpustat", ...).
func PerCpuField(symbol, field string, cpu uint32) KernelTarget {
	return types.MakeKernelTargetPerCpuField(types.PerCpuField{Symbol: symbol, Field: field, Cpu: cpu})
}

// TaskField is field of the SCX task pid's task_struct, guarded against pid
// reuse by its start time (as captured at spawn).
func TaskField(pid uint32, expectedStartTimeNs uint64, field string) KernelTarget {
	return types.MakeKernelTargetTaskField(types.TaskField{Pid: pid, ExpectedStartTimeNs: expectedStartTimeNs, Field: field})
}

// ValueU32 is a u32 to write.
func ValueU32(v uint32) KernelValue { return types.MakeKernelValueU32(v) }

// ValueU64 is a u64 to write.
func ValueU64(v uint64) KernelValue { return types.MakeKernelValueU64(v) }

// ValueBytes is bytes to write.
func ValueBytes(b ...byte) KernelValue { return types.MakeKernelValueBytes(append([]byte{}, b...)) }

// ValueOrU32 ORs mask into a u32 (read-modify-write; cold writes only).
func ValueOrU32(mask uint32) KernelValue { return types.MakeKernelValueOrU32(mask) }

// Write is value to write at target.
func Write(target KernelTarget, value KernelValue) KernelWrite {
	return KernelWrite{Target: target, Value: value}
}

// WidthU32 reads a u32.
func WidthU32() KernelValueWidth { return types.MakeKernelValueWidthU32() }

// WidthU64 reads a u64.
func WidthU64() KernelValueWidth { return types.MakeKernelValueWidthU64() }

// WidthBytes reads exactly n bytes (1..=4096).
func WidthBytes(n uint32) KernelValueWidth { return types.MakeKernelValueWidthBytes(n) }

// IrqNumber is the Linux IRQ number (/proc/irq/<n>).
func IrqNumber(n uint32) IrqSelector { return types.MakeIrqSelectorByNumber(n) }

// IrqLabel is the IRQ whose /proc/interrupts line ends in label.
func IrqLabel(label string) IrqSelector { return types.MakeIrqSelectorByLabel(label) }
