//! `sched-swap`: attach a sched_ext scheduler, replace it under load, detach.
//!
//! Step 0 attaches `fixture`; step 1 starts two `SCHED_EXT` spinners in the
//! cgroup `ext` and replaces the scheduler with `fixture-alt`; step 2
//! detaches it. The check wants all three steps passed and, when the host
//! reports them, the `SCHED_EXT` workers to have made progress.

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
        if let Some(m) = results.worker_metrics("ext") {
            c.expect(m.iterations > 0, "the SCHED_EXT workers made no progress");
        }
        c.verdict()
    }
}

schedbox_scenario::export_scenario!(SchedSwap);
