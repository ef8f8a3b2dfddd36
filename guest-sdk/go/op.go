package schedbox

import (
	witTypes "go.bytecodealliance.org/pkg/wit/types"
	ops "schedbox/internal/wit/imports/schedbox_scenario_ops"
	types "schedbox/internal/wit/imports/schedbox_scenario_types"
)

// result is what every ops import returns.
type result = witTypes.Result[witTypes.Unit, OpError]

// Op is one op of the stream: an ops import and its arguments, called when
// Emit reaches it. Build it with the constructor of the same name as the
// import (SetCpuset for set-cpuset, ...).
type Op struct {
	name string
	call func() result
}

// Name is the op's WIT name ("set-cpuset", ...), as messages name it.
func (o Op) Name() string { return o.name }

// Call calls the op's import now: nil when the host accepts it, its
// rejection otherwise. Emit calls every op for you; call one directly only to
// shape a stream Emit cannot.
func (o Op) Call() *OpError {
	if r := o.call(); r.IsErr() {
		e := r.Err()
		return &e
	}
	return nil
}

func op(name string, call func() result) Op { return Op{name, call} }

// option is Some(s), or None when absent.
func option(s string, present bool) witTypes.Option[string] {
	if present {
		return witTypes.Some(s)
	}
	return witTypes.None[string]()
}

// --- Cgroups.

// AddCgroup creates an empty cgroup.
func AddCgroup(name string) Op {
	return op("add-cgroup", func() result { return ops.AddCgroup(name) })
}

// AddCgroupDef creates a cgroup with its knobs and workers at once.
func AddCgroupDef(def CgroupDef) Op {
	return op("add-cgroup-def", func() result { return ops.AddCgroupDef(def.def) })
}

// RemoveCgroup stops a cgroup's workers and removes it.
func RemoveCgroup(cgroup string) Op {
	return op("remove-cgroup", func() result { return ops.RemoveCgroup(cgroup) })
}

// SetCpuset sets a cgroup's cpuset.
func SetCpuset(cgroup string, cpus CpusetSpec) Op {
	return op("set-cpuset", func() result { return ops.SetCpuset(cgroup, cpus) })
}

// ClearCpuset makes a cgroup inherit its parent's CPUs.
func ClearCpuset(cgroup string) Op {
	return op("clear-cpuset", func() result { return ops.ClearCpuset(cgroup) })
}

// SwapCpusets exchanges the cpusets of two cgroups.
func SwapCpusets(a, b string) Op {
	return op("swap-cpusets", func() result { return ops.SwapCpusets(a, b) })
}

// FreezeCgroup freezes a cgroup (cgroup.freeze).
func FreezeCgroup(cgroup string) Op {
	return op("freeze-cgroup", func() result { return ops.FreezeCgroup(cgroup) })
}

// UnfreezeCgroup thaws a cgroup.
func UnfreezeCgroup(cgroup string) Op {
	return op("unfreeze-cgroup", func() result { return ops.UnfreezeCgroup(cgroup) })
}

// CaptureCgroupProcs records a cgroup's pids under tag (Results.Procs).
func CaptureCgroupProcs(tag, cgroup string) Op {
	return op("capture-cgroup-procs", func() result { return ops.CaptureCgroupProcs(tag, cgroup) })
}

// --- Workers.

// Spawn starts workers in the runner's own cgroup.
func Spawn(work WorkSpec) Op {
	return op("spawn", func() result { return ops.Spawn(types.MakeSpawnPlacementRunnerCgroup(), work.spec) })
}

// SpawnIn starts workers in an existing managed cgroup.
func SpawnIn(cgroup string, work WorkSpec) Op {
	return op("spawn", func() result { return ops.Spawn(types.MakeSpawnPlacementCgroup(cgroup), work.spec) })
}

// StopCgroup stops a cgroup's workers.
func StopCgroup(cgroup string) Op {
	return op("stop-cgroup", func() result { return ops.StopCgroup(cgroup) })
}

// SetAffinity sets the affinity of a cgroup's workers.
func SetAffinity(cgroup string, affinity AffinityIntent) Op {
	return op("set-affinity", func() result { return ops.SetAffinity(cgroup, affinity) })
}

// MoveAllTasks moves every task of from into to; from "" moves the
// runner-cgroup workers.
func MoveAllTasks(from, to string) Op {
	return op("move-all-tasks", func() result { return ops.MoveAllTasks(from, to) })
}

// --- Payloads (staged with `schedbox run --payload`, declared with Info.Payload).

// RunPayload starts payload name with args in the runner's cgroup.
func RunPayload(name string, args []string) Op {
	args = stringList(args)
	return op("run-payload", func() result { return ops.RunPayload(name, args, option("", false)) })
}

// RunPayloadIn starts payload name with args in cgroup.
func RunPayloadIn(name string, args []string, cgroup string) Op {
	args = stringList(args)
	return op("run-payload", func() result { return ops.RunPayload(name, args, option(cgroup, true)) })
}

// WaitPayload waits for payload name to exit.
func WaitPayload(name string) Op {
	return op("wait-payload", func() result { return ops.WaitPayload(name, option("", false)) })
}

// WaitPayloadIn waits for payload name started in cgroup to exit.
func WaitPayloadIn(name, cgroup string) Op {
	return op("wait-payload", func() result { return ops.WaitPayload(name, option(cgroup, true)) })
}

// KillPayload kills payload name.
func KillPayload(name string) Op {
	return op("kill-payload", func() result { return ops.KillPayload(name, option("", false)) })
}

// KillPayloadIn kills payload name started in cgroup.
func KillPayloadIn(name, cgroup string) Op {
	return op("kill-payload", func() result { return ops.KillPayload(name, option(cgroup, true)) })
}

// --- Host side: snapshots and kernel memory.

// CaptureSnapshot records vCPU registers and sched_ext state as name.
func CaptureSnapshot(name string) Op {
	return op("capture-snapshot", func() result { return ops.CaptureSnapshot(name) })
}

// WatchSnapshot captures a snapshot when symbol is written.
func WatchSnapshot(symbol string) Op {
	return op("watch-snapshot", func() result { return ops.WatchSnapshot(symbol) })
}

// WriteKernelHot writes value at target with the guest running.
func WriteKernelHot(target KernelTarget, value KernelValue) Op {
	return WriteKernelHotBatch(Write(target, value))
}

// WriteKernelHotBatch makes several hot writes, in order.
func WriteKernelHotBatch(writes ...KernelWrite) Op {
	writes = append([]KernelWrite{}, writes...)
	return op("write-kernel-hot", func() result { return ops.WriteKernelHot(writes) })
}

// WriteKernelCold writes value at target with every vCPU paused.
func WriteKernelCold(target KernelTarget, value KernelValue) Op {
	return WriteKernelColdBatch(Write(target, value))
}

// WriteKernelColdBatch makes several writes in one pause, in order.
func WriteKernelColdBatch(writes ...KernelWrite) Op {
	writes = append([]KernelWrite{}, writes...)
	return op("write-kernel-cold", func() result { return ops.WriteKernelCold(writes) })
}

// ReadKernelHot reads target with the guest running; the value is in
// Results.KernelRead(tag).
func ReadKernelHot(tag string, target KernelTarget, width KernelValueWidth) Op {
	return op("read-kernel-hot", func() result { return ops.ReadKernelHot(tag, target, width) })
}

// ReadKernelCold reads target with every vCPU paused.
func ReadKernelCold(tag string, target KernelTarget, width KernelValueWidth) Op {
	return op("read-kernel-cold", func() result { return ops.ReadKernelCold(tag, target, width) })
}

// --- Schedulers (declared with Info.Scheduler, `fixture` included).

// AttachScheduler starts the sched_ext scheduler name.
func AttachScheduler(name string) Op {
	return op("attach-scheduler", func() result { return ops.AttachScheduler(name) })
}

// DetachScheduler stops the attached scheduler.
func DetachScheduler() Op {
	return op("detach-scheduler", func() result { return ops.DetachScheduler() })
}

// RestartScheduler restarts the attached scheduler.
func RestartScheduler() Op {
	return op("restart-scheduler", func() result { return ops.RestartScheduler() })
}

// ReplaceScheduler swaps the attached scheduler for name.
func ReplaceScheduler(name string) Op {
	return op("replace-scheduler", func() result { return ops.ReplaceScheduler(name) })
}

// PinBpfMap pins the attached scheduler's BPF map name.
func PinBpfMap(name string) Op {
	return op("pin-bpf-map", func() result { return ops.PinBpfMap(name) })
}

// --- IRQs.

// SteerIrq sets irq's affinity to cpu.
func SteerIrq(irq IrqSelector, cpu uint32) Op {
	return op("steer-irq", func() result { return ops.SteerIrq(irq, cpu) })
}

// SteerIrqCpus sets irq's affinity to the CPU set cpus (e.g. every CPU again).
func SteerIrqCpus(irq IrqSelector, cpus ...uint32) Op {
	return op("steer-irq-cpus", func() result { return ops.SteerIrqCpus(irq, cpus) })
}
