//! `move-tasks`: move every task of one cgroup into another.
//!
//! One step creates `src` and `dst`, spawns three spinners into `src`, moves
//! all of `src`'s tasks to `dst` and captures the procs of both. The check
//! wants the step passed, `src` empty and `dst` holding the three workers, and
//! from the step metrics: each worker ran in `dst` within its cpuset and made
//! progress, with no gap as long as the whole scenario.

use schedbox_scenario::prelude::*;
use std::time::Duration;

struct MoveTasks;

const WORKERS: usize = 3;

impl Scenario for MoveTasks {
    fn describe() -> ScenarioInfo {
        ScenarioInfo::new("move-tasks", "spawn workers into one cgroup and move them all to another")
            .topology(1, 1, 2, 1)
            .needs(KernelFeature::CgroupV2)
            .duration(Duration::from_millis(2000))
    }

    fn run() -> Result<(), String> {
        emit(
            Backdrop::new(),
            vec![Step::new(
                vec![
                    Op::add_cgroup("src"),
                    Op::add_cgroup("dst"),
                    Op::spawn(SpawnPlacement::cgroup("src"), WorkSpec::default().workers(WORKERS as u32)),
                    Op::move_all_tasks("src", "dst"),
                    Op::capture_cgroup_procs("src-procs", "src"),
                    Op::capture_cgroup_procs("dst-procs", "dst"),
                ],
                HoldSpec::FULL,
            )],
        )
    }

    fn check(results: Results) -> Verdict {
        let mut c = Checker::new();
        c.expect_steps_passed(&results);
        match results.procs("src-procs") {
            Some(pids) => {
                c.expect(pids.is_empty(), format!("`src` still holds pids {pids:?}"));
            }
            None => c.fail("no capture tagged `src-procs`"),
        }
        match results.procs("dst-procs") {
            Some(pids) => {
                c.expect_eq("pids in `dst`", pids.len(), WORKERS);
            }
            None => c.fail("no capture tagged `dst-procs`"),
        }
        let steps = step_metrics();
        c.expect_isolation(&steps, "dst");
        c.expect_not_starved(&steps, "dst", 2_000_000_000);
        c.verdict()
    }
}

schedbox_scenario::export_scenario!(MoveTasks);
