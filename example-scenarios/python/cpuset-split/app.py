"""`cpuset-split`: two cgroups on disjoint halves of the CPUs (the Rust
example of the same name, op for op).

`left` and `right` live on the Backdrop with cpusets `disjoint(0, 2)` and
`disjoint(1, 2)` and two spinning workers each. Step 0 lets them run; step 1
captures each cgroup's procs. The check wants both steps passed, two pids per
cgroup, progress in both and, where the host reports per-CPU placement, no CPU
shared by the two cgroups' workers.
"""

from schedbox_scenario import *

HALVES = ["left", "right"]


class CpusetSplit:
    def describe(self):
        return (
            ScenarioInfo.new("cpuset-split", "two cgroups with two spinners each on disjoint halves of the CPUs")
            .topology(1, 2, 2, 1)
            .needs(KernelFeature.CgroupV2)
            .duration(3000)
        )

    def run(self):
        backdrop = (
            Backdrop.new()
            .push_cgroup(CgroupDef.named("left").cpuset(CpusetSpec.disjoint(0, 2)).workers(2))
            .push_cgroup(CgroupDef.named("right").cpuset(CpusetSpec.disjoint(1, 2)).workers(2))
        )
        emit(
            backdrop,
            [
                # Let the workers run.
                Step.new([], HoldSpec.frac(0.5)),
                # Record who is where, keep running.
                Step.new(
                    [
                        Op.capture_cgroup_procs("left-procs", "left"),
                        Op.capture_cgroup_procs("right-procs", "right"),
                    ],
                    HoldSpec.frac(0.5),
                ),
            ],
        )

    def check(self, results):
        c = Checker.new()
        c.expect_steps_passed(results)
        c.expect_eq("step results", len(results.steps), 2)
        for name in HALVES:
            tag = f"{name}-procs"
            pids = results.procs(tag)
            if pids is None:
                c.fail(f"no capture tagged `{tag}`")
            else:
                c.expect_eq(f"pids in {name}", len(pids), 2)
        left, right = results.worker_metrics("left"), results.worker_metrics("right")
        if left is None or right is None:
            c.fail("worker metrics of `left` or `right` missing")
            return c.verdict()
        for m in (left, right):
            c.expect(m.iterations > 0, f"workers of `{m.cgroup}` made no progress")
        # Placement samples are required (no isolation check passes without
        # them); the halves must not have shared a CPU.
        for m in (left, right):
            c.expect(bool(m.cpus), f"no placement samples for the workers of `{m.cgroup}`")
        if left.cpus and right.cpus:
            shared = sorted(Results.cpus_seen(left) & Results.cpus_seen(right))
            c.expect(not shared, f"left and right workers both ran on CPUs {shared}")
        return c.verdict()


WitWorld = export(CpusetSplit)
