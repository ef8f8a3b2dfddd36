//! `cpuset-split`: two cgroups on disjoint halves of the CPUs.
//!
//! `left` and `right` live on the Backdrop with cpusets `disjoint(0, 2)` and
//! `disjoint(1, 2)` and two spinning workers each. Step 0 lets them run;
//! step 1 captures each cgroup's procs. The check wants both steps passed,
//! two pids per cgroup, progress in both and, where the host reports
//! per-CPU placement, no CPU shared by the two cgroups' workers.

use schedbox_scenario::prelude::*;
use std::time::Duration;

struct CpusetSplit;

const HALVES: [&str; 2] = ["left", "right"];

impl Scenario for CpusetSplit {
    fn describe() -> ScenarioInfo {
        ScenarioInfo::new("cpuset-split", "two cgroups with two spinners each on disjoint halves of the CPUs")
            .topology(1, 2, 2, 1)
            .needs(KernelFeature::CgroupV2)
            .duration(Duration::from_millis(3000))
    }

    fn run() -> Result<(), String> {
        let backdrop = Backdrop::new()
            .push_cgroup(CgroupDef::named("left").cpuset(CpusetSpec::disjoint(0, 2)).workers(2))
            .push_cgroup(CgroupDef::named("right").cpuset(CpusetSpec::disjoint(1, 2)).workers(2));
        emit(
            backdrop,
            vec![
                // Let the workers run.
                Step::new(vec![], HoldSpec::frac(0.5)),
                // Record who is where, keep running.
                Step::new(
                    vec![
                        Op::capture_cgroup_procs("left-procs", "left"),
                        Op::capture_cgroup_procs("right-procs", "right"),
                    ],
                    HoldSpec::frac(0.5),
                ),
            ],
        )
    }

    fn check(results: Results) -> Verdict {
        let mut c = Checker::new();
        c.expect_steps_passed(&results);
        c.expect_eq("step results", results.steps.len(), 2);
        for name in HALVES {
            let tag = format!("{name}-procs");
            match results.procs(&tag) {
                Some(pids) => {
                    c.expect_eq(&format!("pids in {name}"), pids.len(), 2);
                }
                None => c.fail(format!("no capture tagged `{tag}`")),
            }
        }
        let (Some(left), Some(right)) = (results.worker_metrics("left"), results.worker_metrics("right")) else {
            c.fail("worker metrics of `left` or `right` missing");
            return c.verdict();
        };
        for m in [left, right] {
            c.expect(m.iterations > 0, format!("workers of `{}` made no progress", m.cgroup));
        }
        // Placement samples are required (no isolation check passes without
        // them); the halves must not have shared a CPU.
        for m in [left, right] {
            c.expect(!m.cpus.is_empty(), format!("no placement samples for the workers of `{}`", m.cgroup));
        }
        if !left.cpus.is_empty() && !right.cpus.is_empty() {
            let shared: Vec<u32> = left.cpus_seen().intersection(&right.cpus_seen()).copied().collect();
            c.expect(shared.is_empty(), format!("left and right workers both ran on CPUs {shared:?}"));
        }
        c.verdict()
    }
}

schedbox_scenario::export_scenario!(CpusetSplit);
