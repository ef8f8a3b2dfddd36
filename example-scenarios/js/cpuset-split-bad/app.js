// `cpuset-split-bad`: `cpuset-split` with a placement that does not exist.
//
// The Backdrop is `cpuset-split`'s; step 0 then moves `right` to disjoint set 2
// of 2 (the sets are 0 and 1). The host rejects the call where it is made,
// `emit` stops there, and `run` fails with the message every SDK gives for this
// mistake:
//
//   step 0, op 0 (set-cpuset): disjoint index 2 is not below of=2 — use an index in 0..2
//
// Built into target/scenarios/fixtures/js/ (the scenario matrix does not run it).

import {
  Backdrop, CgroupDef, CpusetSpec, HoldSpec, KernelFeature, Op, ScenarioInfo, Step, Verdict, emit, exportScenario,
} from "schedbox";

export const { describe, run, check } = exportScenario({
  describe: () =>
    ScenarioInfo.new("cpuset-split-bad", "cpuset-split with a disjoint set that does not exist")
      .topology(1, 2, 2, 1)
      .needs(KernelFeature.CgroupV2),

  run: () => {
    const backdrop = Backdrop.new()
      .pushCgroup(CgroupDef.named("left").cpuset(CpusetSpec.disjoint(0, 2)).workers(2))
      .pushCgroup(CgroupDef.named("right").cpuset(CpusetSpec.disjoint(1, 2)).workers(2));
    emit(backdrop, [Step.new([Op.setCpuset("right", CpusetSpec.disjoint(2, 2))], HoldSpec.FULL)]);
  },

  check: () => Verdict.fail("never executed: run() fails"),
});
