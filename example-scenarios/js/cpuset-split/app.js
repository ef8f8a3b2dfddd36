// `cpuset-split`: two cgroups on disjoint halves of the CPUs (the Rust example
// of the same name, op for op).
//
// `left` and `right` live on the Backdrop with cpusets `disjoint(0, 2)` and
// `disjoint(1, 2)` and two spinning workers each. Step 0 lets them run; step 1
// captures each cgroup's procs. The check wants both steps passed, two pids per
// cgroup, progress in both and, where the host reports per-CPU placement, no
// CPU shared by the two cgroups' workers.

import {
  Backdrop, CgroupDef, Checker, CpusetSpec, HoldSpec, KernelFeature, Op, Results, ScenarioInfo, Step, emit,
  exportScenario,
} from "schedbox";

const HALVES = ["left", "right"];

export const { describe, run, check } = exportScenario({
  describe: () =>
    ScenarioInfo.new("cpuset-split", "two cgroups with two spinners each on disjoint halves of the CPUs")
      .topology(1, 2, 2, 1)
      .needs(KernelFeature.CgroupV2)
      .duration(3000),

  run: () => {
    const backdrop = Backdrop.new()
      .pushCgroup(CgroupDef.named("left").cpuset(CpusetSpec.disjoint(0, 2)).workers(2))
      .pushCgroup(CgroupDef.named("right").cpuset(CpusetSpec.disjoint(1, 2)).workers(2));
    emit(backdrop, [
      // Let the workers run.
      Step.new([], HoldSpec.frac(0.5)),
      // Record who is where, keep running.
      Step.new([Op.captureCgroupProcs("left-procs", "left"), Op.captureCgroupProcs("right-procs", "right")], HoldSpec.frac(0.5)),
    ]);
  },

  check: (results) => {
    const c = Checker.new();
    c.expectStepsPassed(results);
    c.expectEq("step results", results.steps.length, 2);
    for (const name of HALVES) {
      const tag = `${name}-procs`;
      const pids = results.procs(tag);
      if (pids === undefined) c.fail(`no capture tagged \`${tag}\``);
      else c.expectEq(`pids in ${name}`, pids.length, 2);
    }
    const left = results.workerMetrics("left");
    const right = results.workerMetrics("right");
    if (left === undefined || right === undefined) {
      c.fail("worker metrics of `left` or `right` missing");
      return c.verdict();
    }
    for (const m of [left, right]) c.expect(m.iterations > 0n, `workers of \`${m.cgroup}\` made no progress`);
    // Placement samples are required (no isolation check passes without them); the halves
    // must not have shared a CPU.
    for (const m of [left, right]) c.expect(m.cpus.length > 0, `no placement samples for the workers of \`${m.cgroup}\``);
    if (left.cpus.length > 0 && right.cpus.length > 0) {
      const r = new Set(Results.cpusSeen(right));
      const shared = Results.cpusSeen(left).filter((cpu) => r.has(cpu));
      c.expect(shared.length === 0, `left and right workers both ran on CPUs [${shared.join(", ")}]`);
    }
    return c.verdict();
  },
});
