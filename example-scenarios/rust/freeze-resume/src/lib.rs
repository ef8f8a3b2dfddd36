//! `freeze-resume`: the reference's suspend/resume of a Backdrop cgroup.
//!
//! The Backdrop cgroup `workers` has two spinners. Step 0 lets them run, step 1
//! freezes the cgroup and captures its procs, step 2 does nothing (the freeze
//! lasts across the step boundary), step 3 thaws it. The check reads the step
//! metrics (the guest at each step's end): the workers ran in step 0, the cgroup
//! is frozen at the end of steps 1 and 2 and used no CPU in step 2, and it runs
//! again after the unfreeze. Missing data fails the check.

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
                Step::new(vec![], HoldSpec::frac(0.3)),
                Step::new(
                    vec![Op::freeze_cgroup(CGROUP), Op::capture_cgroup_procs("frozen-procs", CGROUP)],
                    HoldSpec::frac(0.2),
                ),
                Step::new(vec![], HoldSpec::frac(0.2)),
                Step::with_op(Op::unfreeze_cgroup(CGROUP), HoldSpec::frac(0.3)),
            ],
        )
    }

    fn check(results: Results) -> Verdict {
        let mut c = Checker::new();
        c.expect_steps_passed(&results);
        c.expect_eq("step results", results.steps.len(), 4);
        match results.procs("frozen-procs") {
            Some(pids) => {
                c.expect_eq("pids in the frozen cgroup", pids.len(), 2);
            }
            None => c.fail("no capture tagged `frozen-procs`"),
        }
        match results.worker_metrics(CGROUP) {
            Some(m) => {
                c.expect(m.iterations > 0, "the workers made no progress");
            }
            None => c.fail("no worker metrics for cgroup `workers`"),
        }
        let steps = step_metrics();
        if steps.len() != 4 {
            c.fail(format!("step metrics: {} steps, want 4", steps.len()));
            return c.verdict();
        }
        let mut at = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            match s.cgroup(CGROUP) {
                Some(cg) => at.push(cg),
                None => c.fail(format!("step {i}: no metrics for cgroup `workers`")),
            }
        }
        if at.len() != 4 {
            return c.verdict();
        }
        c.expect(!at[0].frozen, "step 0: `workers` is frozen before the freeze");
        c.expect(at[0].metrics.iterations > 0, "step 0: the workers made no progress");
        c.expect(at[1].frozen, "step 1: `workers` is not frozen after freeze-cgroup");
        c.expect(at[2].frozen, "step 2: `workers` was thawed before unfreeze-cgroup");
        c.expect(
            at[2].usage_usec == at[1].usage_usec,
            format!("step 2: the frozen cgroup used CPU: usage_usec {} -> {}", at[1].usage_usec, at[2].usage_usec),
        );
        c.expect(
            at[2].metrics.iterations == at[1].metrics.iterations,
            format!(
                "step 2: the frozen workers made progress: {} -> {} iterations",
                at[1].metrics.iterations, at[2].metrics.iterations
            ),
        );
        c.expect(!at[3].frozen, "step 3: `workers` is still frozen after unfreeze-cgroup");
        c.expect(
            at[3].metrics.iterations > at[2].metrics.iterations,
            format!(
                "step 3: no progress after the unfreeze: {} -> {} iterations",
                at[2].metrics.iterations, at[3].metrics.iterations
            ),
        );
        c.verdict()
    }
}

schedbox_scenario::export_scenario!(FreezeResume);
