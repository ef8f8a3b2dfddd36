//! `sched-swap`: attach a sched_ext scheduler, replace it under load, detach.
//!
//! Step 0 attaches `fixture`; step 1 starts two `SCHED_EXT` spinners in the
//! cgroup `ext` and replaces the scheduler with `fixture-alt`; step 2
//! detaches it. The check wants all three steps passed, the `SCHED_EXT`
//! workers to have made progress under the replacement, and the step metrics to
//! show sched_ext enabled at the end of steps 0 and 1 with the ops replaced in
//! between. Missing data fails the check.

use schedbox_scenario::prelude::*;
use std::time::Duration;

struct SchedSwap;

impl Scenario for SchedSwap {
    fn describe() -> ScenarioInfo {
        ScenarioInfo::new("sched-swap", "attach a sched_ext scheduler, replace it under SCHED_EXT load, detach it")
            .topology(1, 1, 2, 1)
            .needs(KernelFeature::SchedExt)
            .needs(KernelFeature::CgroupV2)
            .scheduler("fixture")
            .scheduler("fixture-alt")
            .duration(Duration::from_millis(3000))
    }

    fn run() -> Result<(), String> {
        emit(
            Backdrop::new(),
            vec![
                Step::with_op(Op::attach_scheduler("fixture"), HoldSpec::frac(0.3)),
                Step::new(
                    vec![
                        Op::add_cgroup("ext"),
                        Op::spawn(
                            SpawnPlacement::cgroup("ext"),
                            WorkSpec::default().workers(2).policy(SchedPolicy::Ext),
                        ),
                        Op::replace_scheduler("fixture-alt"),
                    ],
                    HoldSpec::frac(0.4),
                ),
                Step::with_op(Op::detach_scheduler(), HoldSpec::frac(0.3)),
            ],
        )
    }

    fn check(results: Results) -> Verdict {
        let mut c = Checker::new();
        c.expect_steps_passed(&results);
        c.expect_eq("step results", results.steps.len(), 3);
        match results.worker_metrics("ext") {
            Some(m) => {
                c.expect(m.iterations > 0, "the SCHED_EXT workers made no progress");
            }
            None => c.fail("no worker metrics for cgroup `ext`"),
        }
        let steps = step_metrics();
        if steps.len() != 3 {
            c.fail(format!("step metrics: {} steps, want 3", steps.len()));
            return c.verdict();
        }
        c.expect_scheduler_attached(&steps, 0, 1, None);
        c.expect(
            steps[0].sched_ext_ops != steps[1].sched_ext_ops,
            format!("step 1: the scheduler was not replaced (ops {:?} in both steps)", steps[1].sched_ext_ops),
        );
        match steps[1].cgroup("ext") {
            Some(ext) => {
                c.expect(ext.metrics.iterations > 0, "step 1: the SCHED_EXT workers made no progress");
            }
            None => c.fail("step 1: no metrics for cgroup `ext`"),
        }
        c.verdict()
    }
}

schedbox_scenario::export_scenario!(SchedSwap);
