// kernel-reads: read kernel memory with the guest paused.
//
// The Go twin of example-scenarios/rust/kernel-reads. Reads `jiffies_64`
// before and after a fixed 200 ms hold, and CPU 0's `runqueues.clock`. The
// check wants both steps passed, jiffies to have advanced and the run-queue
// clock to be non-zero.
package main

import (
	"time"

	sb "schedbox"
)

type kernelReads struct{}

func jiffies(tag string) sb.Op {
	return sb.ReadKernelCold(tag, sb.Symbol("jiffies_64"), sb.WidthU64())
}

func (kernelReads) Describe() sb.Info {
	return sb.NewInfo("kernel-reads", "jiffies advance across a hold; CPU 0's run-queue clock is set").
		Topology(1, 1, 2, 1).
		Needs(sb.Btf).
		Duration(2000 * time.Millisecond)
}

func (kernelReads) Run() error {
	return sb.Emit(sb.Backdrop{},
		sb.NewStep(sb.Fixed(200*time.Millisecond), jiffies("jiffies-before")),
		sb.NewStep(sb.Fixed(100*time.Millisecond),
			jiffies("jiffies-after"),
			sb.ReadKernelCold("rq-clock-0", sb.PerCpuField("runqueues", "clock", 0), sb.WidthU64())),
	)
}

func (kernelReads) Check(r sb.Results) sb.Verdict {
	var c sb.Checker
	c.ExpectStepsPassed(r)
	before, okBefore := r.KernelReadU64("jiffies-before")
	after, okAfter := r.KernelReadU64("jiffies-after")
	if okBefore && okAfter {
		c.Expect(after > before, "jiffies did not advance: before %d, after %d", before, after)
	} else {
		c.Fail("missing a u64 read tagged `jiffies-before` or `jiffies-after`")
	}
	if clock, ok := r.KernelReadU64("rq-clock-0"); ok {
		c.Expect(clock != 0, "runqueues.clock of CPU 0 is zero")
	} else {
		c.Fail("missing a u64 read tagged `rq-clock-0`")
	}
	return c.Verdict()
}

func init() { sb.Export(kernelReads{}) }

// main is required by -buildmode=c-shared and never called.
func main() {}
