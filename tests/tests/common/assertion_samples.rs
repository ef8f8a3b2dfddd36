//! Step metrics the assertion fixtures (`tests/fixtures/{guests,c,go,python,js}/assertions`)
//! judge in the golden tests: every language must give the Rust fixture's verdict on each.
#![allow(dead_code)]

use schedbox::results::{CgroupState, Latency, StepMetrics, WorkerMetrics, WorkerStat};

pub fn worker(tid: u32, work_units: u64, wall_ms: u64, cpus: &[(u32, u64)], max_gap_ns: u64) -> WorkerStat {
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

/// A latency with `samples` and `p99_ns` (p50 20 us, p90 40 us, max 1.5 × p99).
pub fn latency(samples: u64, p99_ns: u64) -> Option<Latency> {
    Some(Latency { samples, p50_ns: 20_000, p90_ns: 40_000, p99_ns, max_ns: p99_ns * 3 / 2 })
}

/// `w` with these wake and request latencies.
pub fn with_latency(w: WorkerStat, wake: Option<Latency>, request: Option<Latency>) -> WorkerStat {
    WorkerStat { wake_latency: wake, request_latency: request, ..w }
}

pub fn step(step: u32, cpus: &[u32], workers: Vec<WorkerStat>, state: &str, ops: &str) -> StepMetrics {
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
/// Wake latency: worker 7's p99 reaches 2 ms in step 1; worker 8 takes no wake-up
/// sample in step 1. Request latency: worker 8 only, with no new sample after step 0.
pub fn sample() -> Vec<StepMetrics> {
    vec![
        step(
            0,
            &[0, 1],
            vec![
                with_latency(worker(7, 100, 1000, &[(0, 5)], 1_000), latency(10, 500_000), None),
                with_latency(worker(8, 100, 1000, &[(1, 5)], 1_000), latency(10, 200_000), latency(5, 100)),
            ],
            "enabled",
            "fx",
        ),
        step(
            1,
            &[2, 3],
            vec![
                with_latency(worker(7, 150, 2000, &[(0, 5), (2, 3)], 300_000_000), latency(40, 2_000_000), None),
                with_latency(
                    worker(8, 400, 2000, &[(0, 6), (1, 5), (3, 3)], 1_000),
                    latency(10, 200_000),
                    latency(5, 100),
                ),
            ],
            "disabled",
            "",
        ),
        step(
            2,
            &[2, 3],
            vec![with_latency(worker(8, 500, 3000, &[(0, 7), (1, 5), (3, 4)], 1), latency(20, 300_000), None)],
            "enabled",
            "fx",
        ),
    ]
}

/// One step where cgroup `a` holds everything but a request latency (its workers measure none).
pub fn clean() -> Vec<StepMetrics> {
    vec![step(
        0,
        &[0, 1],
        vec![
            with_latency(worker(7, 100, 1000, &[(0, 5)], 1), latency(10, 1_000), None),
            with_latency(worker(8, 120, 1000, &[(1, 5)], 1), latency(12, 2_000), None),
        ],
        "enabled",
        "fx",
    )]
}

/// Every sample: the failing one, none at all, the clean one.
pub fn samples() -> Vec<Vec<StepMetrics>> {
    vec![sample(), vec![], clean()]
}

/// The Rust fixture's messages on [`sample`].
pub const SAMPLE_MESSAGES: &[&str] = &[
    "isolation: step 2, cgroup `a`, worker 8: ran on CPUs 0 outside its cpuset 2,3",
    "isolation: cgroup `missing` is in no step's metrics (3 steps)",
    "not starved: step 1, cgroup `a`, worker 7: a gap of 300000000 ns (bound 100000000 ns) ending on CPU 1 at 5 ns",
    "fairness: step 1, cgroup `a`: worker 8 did 300 units, worker 7 50 (ratio 6.00, bound 2)",
    "fairness: no metrics for step 9 (3 steps)",
    "phase ratio: cgroup `a`: step 1 did 350 units/s, step 0 200 units/s (ratio 1.75, want 0.5..=1.2)",
    "scheduler attached: step 1: sched_ext \"disabled\" with ops \"\", want enabled",
    "scheduler attached: no metrics for step 3 (3 steps)",
    "latency bound: step 1, cgroup `a`, worker 7: wake p99 2000000 ns (bound 1000000 ns; p50 20000 ns, \
     p90 40000 ns, max 3000000 ns, 40 samples since it started)",
    "latency bound: step 1, cgroup `a`, worker 8: no wake latency samples in the step (10 in all)",
    "latency bound: step 0, cgroup `a`, worker 7: no request latency measured",
    "latency bound: step 1, cgroup `a`, worker 7: no request latency measured",
    "latency bound: step 1, cgroup `a`, worker 8: no request latency samples in the step (5 in all)",
    "latency bound: step 2, cgroup `a`, worker 8: no request latency measured",
    "latency bound: cgroup `missing` is in no step's metrics (3 steps)",
];
