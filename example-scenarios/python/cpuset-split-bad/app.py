"""`cpuset-split-bad`: `cpuset-split` with a placement that does not exist.

The Backdrop is `cpuset-split`'s; step 0 then moves `right` to disjoint set 2
of 2 (the sets are 0 and 1). The host rejects the call where it is made, `emit`
stops there, and `run` fails with the message every SDK gives for this mistake:

    step 0, op 0 (set-cpuset): disjoint index 2 is not below of=2 — use an index in 0..2

Built into target/scenarios/fixtures/python/ (the scenario matrix does not run it).
"""

from schedbox_scenario import *


class CpusetSplitBad:
    def describe(self):
        return (
            ScenarioInfo.new("cpuset-split-bad", "cpuset-split with a disjoint set that does not exist")
            .topology(1, 2, 2, 1)
            .needs(KernelFeature.CgroupV2)
        )

    def run(self):
        backdrop = (
            Backdrop.new()
            .push_cgroup(CgroupDef.named("left").cpuset(CpusetSpec.disjoint(0, 2)).workers(2))
            .push_cgroup(CgroupDef.named("right").cpuset(CpusetSpec.disjoint(1, 2)).workers(2))
        )
        emit(backdrop, [Step.new([Op.set_cpuset("right", CpusetSpec.disjoint(2, 2))], HoldSpec.FULL)])

    def check(self, results):
        return Verdict.fail("never executed: run() fails")


WitWorld = export(CpusetSplitBad)
