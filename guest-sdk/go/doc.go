// Package schedbox is the Go SDK for schedbox scenario components.
//
// A scenario is a WebAssembly component of world `scenario` of
// wit/scenario.wit (schedbox:scenario@0.1.0). The host calls its describe
// export for its name and needs, its run export to collect an op stream,
// executes the stream against a real Linux kernel and calls its check export
// with what it observed. This package wraps the bindings wit-bindgen's Go
// generator makes from the WIT (generated at build time, never checked in)
// so that a scenario reads like one written with the Rust SDK
// (guest-sdk/rust) or the C header (guest-sdk/c), and emits the same stream:
//
//   - Info (NewInfo(name, summary).Topology(..).Needs(..).Duration(..)) is
//     what Describe returns;
//   - Cgroup("a").Cpuset(Disjoint(0, 2)).Workers(2), Work().Type(..),
//     the cpuset (Llc, Disjoint, ...), hold (Frac, Fixed, Full, ...), work
//     (YieldHeavy, Sequence, ...), kernel target (Symbol, PerCpuField, ...)
//     and IRQ constructors build the contract's records and variants;
//   - one Op constructor per ops import (SetCpuset, FreezeCgroup,
//     ReadKernelCold, ...);
//   - Backdrop, Step/NewStep and Emit send a whole stream and stop at the
//     first call the host rejects, with the Rust SDK's message, e.g.
//     `step 1, op 2 (set-cpuset): disjoint index 2 is not below of=2 — use
//     an index in 0..2`;
//   - Results lookups and Checker make Check's Verdict;
//   - Export(s) makes s the component's exports.
//
// A complete scenario (example-scenarios/go/cpuset-split is this one, with a
// fuller check):
//
//	package main
//
//	import (
//		"time"
//
//		sb "schedbox"
//	)
//
//	type cpusetSplit struct{}
//
//	func (cpusetSplit) Describe() sb.Info {
//		return sb.NewInfo("cpuset-split", "two cgroups on disjoint halves of the CPUs").
//			Topology(1, 2, 2, 1).
//			Needs(sb.CgroupV2).
//			Duration(3 * time.Second)
//	}
//
//	func (cpusetSplit) Run() error {
//		backdrop := sb.Backdrop{Cgroups: []sb.CgroupDef{
//			sb.Cgroup("left").Cpuset(sb.Disjoint(0, 2)).Workers(2),
//			sb.Cgroup("right").Cpuset(sb.Disjoint(1, 2)).Workers(2),
//		}}
//		return sb.Emit(backdrop,
//			sb.NewStep(sb.Frac(0.5)), // let the workers run
//			sb.NewStep(sb.Frac(0.5),
//				sb.CaptureCgroupProcs("left-procs", "left"),
//				sb.CaptureCgroupProcs("right-procs", "right")))
//	}
//
//	func (cpusetSplit) Check(r sb.Results) sb.Verdict {
//		var c sb.Checker
//		c.ExpectStepsPassed(r)
//		pids, _ := r.Procs("left-procs")
//		sb.ExpectEq(&c, "pids in left", len(pids), 2)
//		return c.Verdict()
//	}
//
//	func init() { sb.Export(cpusetSplit{}) }
//
//	func main() {}
//
// `cargo xtask build-scenarios` builds it for GOOS=wasip1 GOARCH=wasm as a
// reactor (-buildmode=c-shared) and componentizes it; see README.md.
//
// Op errors: the host checks every call where it is made. Emit stops at the
// first rejection and returns an *EmitError; returning it from Run fails the
// scenario with its message, exactly as the Rust SDK's emit and the C SDK's
// SB_EMIT do. A scenario that ignores a rejection (calling Op.Call itself)
// gains nothing: the host refuses the stream anyway.
//
// Go components need WASI (the Go runtime reads the clock, random bytes and
// its environment); the host links it with no preopened directories, no
// environment, no arguments and no network.
package schedbox
