//! The step-metrics assertions of the Rust, C and Go SDKs give the same verdicts,
//! messages included: `tests/fixtures/{guests,c,go}/assertions` run every assertion
//! with the same bounds in `check`, judged here on the same step metrics. The Rust
//! messages are pinned, so each names the step, cgroup, worker and numbers.
//!
//! Build the components first with `cargo xtask build-scenarios`.

use schedbox::results::{CgroupState, Outcome, Results, StepMetrics, WorkerMetrics, WorkerStat};
use schedbox::sandbox::SandboxLimits;
use schedbox_tests::{fixture, TestSandbox};

fn worker(tid: u32, work_units: u64, wall_ms: u64, cpus: &[(u32, u64)], max_gap_ns: u64) -> WorkerStat {
    WorkerStat {
        cgroup: "a".into(),
        tid,
        alive: true,
        work_units,
        wall_time_ns: wall_ms * 1_000_000,
        max_gap_ns,
        max_gap_cpu: 1,
        max_gap_at_ns: 5,
        cpus: cpus.to_vec(),
        ..WorkerStat::default()
    }
}

fn step(step: u32, cpus: &[u32], workers: Vec<WorkerStat>, state: &str, ops: &str) -> StepMetrics {
    StepMetrics {
        step,
        cgroups: vec![CgroupState {
            name: "a".into(),
            backdrop: true,
            cpus_effective: cpus.to_vec(),
            procs: workers.len() as u32,
            metrics: WorkerMetrics { cgroup: "a".into(), ..WorkerMetrics::default() },
            ..CgroupState::default()
        }],
        workers,
        sched_ext_state: state.into(),
        sched_ext_ops: ops.into(),
        ..StepMetrics::default()
    }
}

/// Three steps of cgroup `a`: its cpuset moves from 0-1 to 2-3 in step 1; worker 7
/// stalls 300 ms in step 1 and is gone in step 2; worker 8 does 6× worker 7's work in
/// step 1 and strays onto CPU 0 in step 2; sched_ext is off at the end of step 1.
fn sample() -> Vec<StepMetrics> {
    vec![
        step(
            0,
            &[0, 1],
            vec![worker(7, 100, 1000, &[(0, 5)], 1_000), worker(8, 100, 1000, &[(1, 5)], 1_000)],
            "enabled",
            "fx",
        ),
        step(
            1,
            &[2, 3],
            vec![
                worker(7, 150, 2000, &[(0, 5), (2, 3)], 300_000_000),
                worker(8, 400, 2000, &[(0, 6), (1, 5), (3, 3)], 1_000),
            ],
            "disabled",
            "",
        ),
        step(2, &[2, 3], vec![worker(8, 500, 3000, &[(0, 7), (1, 5), (3, 4)], 1)], "enabled", "fx"),
    ]
}

#[test]
fn c_and_go_assertions_judge_step_metrics_like_the_rust_ones() {
    let sandbox = TestSandbox::new(SandboxLimits::default());
    let [rust, c, go] = ["assertions", "c/assertions", "go/assertions"]
        .map(|f| sandbox.load_file(&fixture(f)).unwrap_or_else(|e| panic!("{f}: {e}")));
    let clean = vec![step(
        0,
        &[0, 1],
        vec![worker(7, 100, 1000, &[(0, 5)], 1), worker(8, 120, 1000, &[(1, 5)], 1)],
        "enabled",
        "fx",
    )];
    for (i, metrics) in [sample(), vec![], clean].into_iter().enumerate() {
        let results = Results { step_metrics: metrics, ..Results::default() };
        let judge = |sc| sandbox.check(sc, "assertions", results.clone()).unwrap();
        let want = judge(&rust);
        assert_eq!(format!("{:?}", judge(&c)), format!("{want:?}"), "C differs on sample {i}");
        assert_eq!(format!("{:?}", judge(&go)), format!("{want:?}"), "Go differs on sample {i}");
        assert_eq!(want.outcome, Outcome::Fail, "sample {i}: every sample misses something: {want:?}");
    }
    let v = sandbox.check(&rust, "assertions", Results { step_metrics: sample(), ..Results::default() }).unwrap();
    assert_eq!(
        v.messages,
        [
            "isolation: step 2, cgroup `a`, worker 8: ran on CPUs 0 outside its cpuset 2,3",
            "isolation: cgroup `missing` is in no step's metrics (3 steps)",
            "not starved: step 1, cgroup `a`, worker 7: a gap of 300000000 ns (bound 100000000 ns) ending on CPU 1 at 5 ns",
            "fairness: step 1, cgroup `a`: worker 8 did 300 units, worker 7 50 (ratio 6.00, bound 2)",
            "fairness: no metrics for step 9 (3 steps)",
            "phase ratio: cgroup `a`: step 1 did 350 units/s, step 0 200 units/s (ratio 1.75, want 0.5..=1.2)",
            "scheduler attached: step 1: sched_ext \"disabled\" with ops \"\", want enabled",
            "scheduler attached: no metrics for step 3 (3 steps)",
        ]
    );
}
