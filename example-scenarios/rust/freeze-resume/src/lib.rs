//! `freeze-resume`: freeze a cgroup's workers, capture them, thaw them.
//!
//! The Backdrop cgroup `workers` has two spinners. Step 0 lets them run,
//! step 1 freezes the cgroup and captures its procs, step 2 thaws it. The
//! check wants all three steps passed and the frozen capture to still list
//! both workers (freezing stops tasks, it does not remove them).

use schedbox_scenario::prelude::*;
use std::time::Duration;

struct FreezeResume;

const CGROUP: &str = "workers";

impl Scenario for FreezeResume {
    fn describe() -> ScenarioInfo {
        ScenarioInfo::new("freeze-resume", "freeze a cgroup of workers, capture its procs, thaw it")
            .topology(1, 1, 2, 1)
            .needs(KernelFeature::CgroupV2)
            .duration(Duration::from_millis(3000))
    }

    fn run() -> Result<(), String> {
        let backdrop = Backdrop::new().push_cgroup(CgroupDef::named(CGROUP).workers(2));
        emit(
            backdrop,
            vec![
                Step::new(vec![], HoldSpec::frac(0.4)),
                Step::new(
                    vec![Op::freeze_cgroup(CGROUP), Op::capture_cgroup_procs("frozen-procs", CGROUP)],
                    HoldSpec::frac(0.2),
                ),
                Step::with_op(Op::unfreeze_cgroup(CGROUP), HoldSpec::frac(0.4)),
            ],
        )
    }

    fn check(results: Results) -> Verdict {
        let mut c = Checker::new();
        c.expect_steps_passed(&results);
        c.expect_eq("step results", results.steps.len(), 3);
        match results.procs("frozen-procs") {
            Some(pids) => {
                c.expect_eq("pids in the frozen cgroup", pids.len(), 2);
            }
            None => c.fail("no capture tagged `frozen-procs`"),
        }
        if let Some(m) = results.worker_metrics(CGROUP) {
            c.expect(m.iterations > 0, "the workers made no progress");
        }
        c.verdict()
    }
}

schedbox_scenario::export_scenario!(FreezeResume);
