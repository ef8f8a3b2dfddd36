package schedbox

import (
	ops "schedbox/internal/wit/imports/schedbox_scenario_ops"
	types "schedbox/internal/wit/imports/schedbox_scenario_types"
)

// Work2Kind is what each worker of SpawnWorkIn does: the work types added within
// contract 0.1 (or any WorkType through W2Base).
type Work2Kind = ops.Work

// WorkSpec2 is a spawn-work spec: a Work2Kind with the count, policy, nice, affinity
// and thread name of a WorkSpec, optionally SCHED_DEADLINE:
//
//	sb.Work2(sb.W2TimerLatency(1000), sb.Work().Workers(2))
//	sb.Work2(sb.W2Base(sb.SpinWait()), sb.Work()).Deadline(2000, 10000, 10000)
type WorkSpec2 struct{ spec ops.WorkSpecV2 }

// Work2 is a spawn-work spec doing kind, with everything else from base.
func Work2(kind Work2Kind, base WorkSpec) WorkSpec2 {
	return WorkSpec2{ops.WorkSpecV2{
		Work:     kind,
		Workers:  base.spec.Workers,
		Policy:   ops.MakePolicyBase(base.spec.Policy),
		Nice:     base.spec.Nice,
		Affinity: base.spec.Affinity,
		Comm:     base.spec.Comm,
	}}
}

// Deadline sets SCHED_DEADLINE: runtimeUs every periodUs, due deadlineUs into it.
func (w WorkSpec2) Deadline(runtimeUs, deadlineUs, periodUs uint64) WorkSpec2 {
	w.spec.Policy = ops.MakePolicyDeadline(ops.Deadline{RuntimeUs: runtimeUs, DeadlineUs: deadlineUs, PeriodUs: periodUs})
	return w
}

// SpawnWorkIn starts spawn-work workers in an existing managed cgroup (the host
// records a spawn op).
func SpawnWorkIn(cgroup string, work WorkSpec2) Op {
	return op("spawn-work", func() result { return ops.SpawnWork(types.MakeSpawnPlacementCgroup(cgroup), work.spec) })
}

// SpawnThreadsIn is SpawnWorkIn with the workers threads of one process (work types
// that act on their own process are refused).
func SpawnThreadsIn(cgroup string, work WorkSpec2) Op {
	return op("spawn-threads", func() result {
		return ops.SpawnThreads(types.MakeSpawnPlacementCgroup(cgroup), work.spec)
	})
}

// W2Base is any WorkType of Spawn.
func W2Base(w WorkType) Work2Kind { return ops.MakeWorkBase(w) }

// W2AluHot runs dependent multiply/rotate/xor chains.
func W2AluHot() Work2Kind { return ops.MakeWorkAluHot() }

// W2SmtSiblingSpin runs pairs pinned to the SMT siblings of one core.
func W2SmtSiblingSpin() Work2Kind { return ops.MakeWorkSmtSiblingSpin() }

// W2IpcVariance alternates phaseMs of ALU work with pointer chasing through sizeKib.
func W2IpcVariance(phaseMs uint64, sizeKib uint32) Work2Kind {
	return ops.MakeWorkIpcVariance(ops.IpcVariance{PhaseMs: phaseMs, SizeKib: sizeKib})
}

// W2FanOutCompute is one waker and fanOut waiters computing computeIters per wake-up.
func W2FanOutCompute(fanOut uint32, computeIters uint64) Work2Kind {
	return ops.MakeWorkFanOutCompute(ops.FanOutCompute{FanOut: fanOut, ComputeIters: computeIters})
}

// W2AsymmetricWaker is pairs of a light waker and a heavy wakee.
func W2AsymmetricWaker(wakerIters, wakeeIters uint64) Work2Kind {
	return ops.MakeWorkAsymmetricWaker(ops.AsymmetricWaker{WakerIters: wakerIters, WakeeIters: wakeeIters})
}

// W2EpollStorm is one eventfd writer and waiters edge-triggered epoll waiters.
func W2EpollStorm(waiters uint32) Work2Kind { return ops.MakeWorkEpollStorm(waiters) }

// W2ThunderingHerd is one waker and waiters racing for one token.
func W2ThunderingHerd(waiters uint32, workIters uint64) Work2Kind {
	return ops.MakeWorkThunderingHerd(ops.ThunderingHerd{Waiters: waiters, WorkIters: workIters})
}

// W2TimerLatency sleeps to an absolute timer every periodUs, recording the lateness.
func W2TimerLatency(periodUs uint64) Work2Kind { return ops.MakeWorkTimerLatency(periodUs) }

// W2WakeChain is a wake chain depth long, through pipes when pipe, workIters per hop.
func W2WakeChain(depth uint32, pipe bool, workIters uint64) Work2Kind {
	return ops.MakeWorkWakeChain(ops.WakeChainWork{Depth: depth, Pipe: pipe, WorkIters: workIters})
}

// W2Schbench is schbench: workers request workers per message worker.
func W2Schbench(workers uint32, requestUs, sleepUs uint64) Work2Kind {
	return ops.MakeWorkSchbench(ops.Schbench{Workers: workers, RequestUs: requestUs, SleepUs: sleepUs})
}

// W2NiceSweep steps the nice value through -20..=19 every periodUs.
func W2NiceSweep(periodUs uint64) Work2Kind { return ops.MakeWorkNiceSweep(periodUs) }

// W2AffinityChurn re-pins itself to another allowed CPU every periodUs.
func W2AffinityChurn(periodUs uint64) Work2Kind { return ops.MakeWorkAffinityChurn(periodUs) }

// W2CrossAffinityChurn is pairs re-pinning each other every periodUs.
func W2CrossAffinityChurn(periodUs uint64) Work2Kind { return ops.MakeWorkCrossAffinityChurn(periodUs) }

// W2PolicyChurn cycles its policy every periodUs.
func W2PolicyChurn(periodUs uint64) Work2Kind { return ops.MakeWorkPolicyChurn(periodUs) }

// W2CgroupChurn makes, enters, leaves and removes a child cgroup every periodUs.
func W2CgroupChurn(periodUs uint64) Work2Kind { return ops.MakeWorkCgroupChurn(periodUs) }

// W2CgroupAttachStorm moves between its cgroup and a shared child cgroup every periodUs.
func W2CgroupAttachStorm(periodUs uint64) Work2Kind { return ops.MakeWorkCgroupAttachStorm(periodUs) }

// W2MutexContention is contenders workers on one futex mutex.
func W2MutexContention(contenders uint32, holdIters, workIters uint64) Work2Kind {
	return ops.MakeWorkMutexContention(ops.MutexContention{Contenders: contenders, HoldIters: holdIters, WorkIters: workIters})
}

// W2PriorityInversion is FIFO 10/20/30 triples on one CPU sharing a lock (PI when pi).
func W2PriorityInversion(pi bool, holdIters uint64) Work2Kind {
	return ops.MakeWorkPriorityInversion(ops.PriorityInversion{Pi: pi, HoldIters: holdIters})
}

// W2RtStarvation is pairs on one CPU: a FIFO 50 spinner and a normal spinner.
func W2RtStarvation() Work2Kind { return ops.MakeWorkRtStarvation() }

// W2PreemptStorm is pairs on one CPU: a periodic FIFO 50 worker and a normal spinner.
func W2PreemptStorm(periodUs, burstIters uint64) Work2Kind {
	return ops.MakeWorkPreemptStorm(ops.PreemptStorm{PeriodUs: periodUs, BurstIters: burstIters})
}

// W2SignalStorm is pairs: one sends SIGUSR1 to the other in a loop.
func W2SignalStorm() Work2Kind { return ops.MakeWorkSignalStorm() }

// W2ProducerConsumerImbalance is producers and consumers of one bounded queue.
func W2ProducerConsumerImbalance(producers, consumers uint32, workIters uint64) Work2Kind {
	return ops.MakeWorkProducerConsumerImbalance(ops.ProducerConsumer{Producers: producers, Consumers: consumers, WorkIters: workIters})
}

// W2PageFaultChurn maps, touches and unmaps sizeKib, repeatedly.
func W2PageFaultChurn(sizeKib uint32) Work2Kind { return ops.MakeWorkPageFaultChurn(sizeKib) }

// W2NumaMigrationChurn pins itself to the next NUMA node's CPUs and moves a sizeKib
// working set there (move_pages) every periodMs; needs 2 or more nodes.
func W2NumaMigrationChurn(periodMs uint64, sizeKib uint32) Work2Kind {
	return ops.MakeWorkNumaMigrationChurn(ops.NumaMigrationChurn{PeriodMs: periodMs, SizeKib: sizeKib})
}

// W2NumaWorkingSetSweep binds a sizeKib working set to each NUMA node in turn (mbind)
// and sweeps it passes times there; needs 2 or more nodes.
func W2NumaWorkingSetSweep(sizeKib, passes uint32) Work2Kind {
	return ops.MakeWorkNumaWorkingSetSweep(ops.NumaWorkingSetSweep{SizeKib: sizeKib, Passes: passes})
}

// W2IoSyncWrite writes blockKib (a multiple of 4) with O_DSYNC to the guest's null_blk
// device, sequentially in a stripe of its own; each write's time is request latency.
func W2IoSyncWrite(blockKib uint32) Work2Kind { return ops.MakeWorkIoSyncWrite(blockKib) }

// W2IoRandRead reads blockKib (a multiple of 4) with O_DIRECT at random offsets of the
// guest's null_blk device; each read's time is request latency.
func W2IoRandRead(blockKib uint32) Work2Kind { return ops.MakeWorkIoRandRead(blockKib) }

// W2IoConvoy: groups of one writer of writeKib O_DIRECT|O_DSYNC blocks and readers 4 KiB
// random readers behind it (spawn a multiple of readers+1 workers).
func W2IoConvoy(readers, writeKib uint32) Work2Kind {
	return ops.MakeWorkIoConvoy(ops.IoConvoy{Readers: readers, WriteKib: writeKib})
}

// W2IdleChurn spins spinIters and sleeps sleepUs, repeatedly.
func W2IdleChurn(spinIters, sleepUs uint64) Work2Kind {
	return ops.MakeWorkIdleChurn(ops.IdleChurn{SpinIters: spinIters, SleepUs: sleepUs})
}

// W2CacheYield walks sizeKib, then yields.
func W2CacheYield(sizeKib uint32) Work2Kind { return ops.MakeWorkCacheYield(sizeKib) }

// W2CachePipe is pairs passing a byte over pipes, walking sizeKib per turn.
func W2CachePipe(sizeKib uint32) Work2Kind { return ops.MakeWorkCachePipe(sizeKib) }
