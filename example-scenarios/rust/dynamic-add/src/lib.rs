//! `dynamic-add`: add a cgroup with workers while another one runs.
//!
//! `base` (two spinners) lives on the Backdrop, so it is still running when
//! step 1 adds `extra` (two spinners) with `add-cgroup-def`; step-local
//! cgroups would be gone by then. Step 1 captures the procs of both. The
//! check wants both steps passed, two pids in each cgroup and progress in
//! both.

use schedbox_scenario::prelude::*;
use std::time::Duration;

struct DynamicAdd;

impl Scenario for DynamicAdd {
    fn describe() -> ScenarioInfo {
        ScenarioInfo::new("dynamic-add", "add a cgroup with workers at op time next to a running one")
            .topology(1, 1, 2, 1)
            .needs(KernelFeature::CgroupV2)
            .duration(Duration::from_millis(3000))
    }

    fn run() -> Result<(), String> {
        let backdrop = Backdrop::new().push_cgroup(CgroupDef::named("base").workers(2));
        emit(
            backdrop,
            vec![
                Step::new(vec![], HoldSpec::frac(0.5)),
                Step::new(
                    vec![
                        Op::add_cgroup_def(CgroupDef::named("extra").workers(2)),
                        Op::capture_cgroup_procs("base-procs", "base"),
                        Op::capture_cgroup_procs("extra-procs", "extra"),
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
        for cgroup in ["base", "extra"] {
            let tag = format!("{cgroup}-procs");
            match results.procs(&tag) {
                Some(pids) => {
                    c.expect_eq(&format!("pids in {cgroup}"), pids.len(), 2);
                }
                None => c.fail(format!("no capture tagged `{tag}`")),
            }
            match results.worker_metrics(cgroup) {
                Some(m) => {
                    c.expect(m.iterations > 0, format!("workers of `{cgroup}` made no progress"));
                }
                None => c.fail(format!("no worker metrics for `{cgroup}`")),
            }
        }
        c.verdict()
    }
}

schedbox_scenario::export_scenario!(DynamicAdd);
