//! Assertions on the step metrics ([`step_metrics`](crate::step_metrics)), as
//! [`Checker`] methods. Each judges the per-step differences of the cumulative
//! counters (a worker is followed by its `tid` from one step's end to the next),
//! records one failure per offending cgroup, worker and step with the numbers, and
//! returns whether everything held. None passes on missing data: a cgroup that is
//! in no step, or a step index that is not there, is a failure.

use std::collections::BTreeMap;

use crate::metrics::{Latency, StepMetrics, WorkerLatency, WorkerStat};
use crate::Checker;

/// Which latency [`Checker::expect_latency_bound`] judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatencyKind {
    /// `worker-latency.wake`: wake-up latency (timer lateness for the timer work types).
    Wake,
    /// `worker-latency.request`: schbench's request latency, the lock wait of
    /// mutex-contention and priority-inversion.
    Request,
}

impl LatencyKind {
    fn name(self) -> &'static str {
        match self {
            LatencyKind::Wake => "wake",
            LatencyKind::Request => "request",
        }
    }

    fn of(self, l: &WorkerLatency) -> Option<&Latency> {
        match self {
            LatencyKind::Wake => l.wake.as_ref(),
            LatencyKind::Request => l.request.as_ref(),
        }
    }
}

/// A worker's counters at the end of the previous step, if it was there.
fn previous<'a>(steps: &'a [StepMetrics], i: usize, w: &WorkerStat) -> Option<&'a WorkerStat> {
    i.checked_sub(1).and_then(|p| steps[p].workers.iter().find(|x| x.tid == w.tid))
}

/// Work units `w` did during step `i` (since the previous step's end, or its start).
fn units_in_step(steps: &[StepMetrics], i: usize, w: &WorkerStat) -> u64 {
    w.work_units.saturating_sub(previous(steps, i, w).map_or(0, |p| p.work_units))
}

/// CPUs `w` was seen on during step `i`.
fn cpus_in_step(steps: &[StepMetrics], i: usize, w: &WorkerStat) -> Vec<u32> {
    let before: BTreeMap<u32, u64> =
        previous(steps, i, w).map(|p| p.cpus.iter().map(|c| (c.cpu, c.count)).collect()).unwrap_or_default();
    w.cpus.iter().filter(|c| c.count > before.get(&c.cpu).copied().unwrap_or(0)).map(|c| c.cpu).collect()
}

/// Wall time between the ends of steps `i - 1` and `i`, ns, as `w` saw it.
fn wall_in_step(steps: &[StepMetrics], i: usize, w: &WorkerStat) -> u64 {
    w.wall_time_ns.saturating_sub(previous(steps, i, w).map_or(0, |p| p.wall_time_ns))
}

/// A ratio as the messages print it (the C and Go SDKs print it the same way).
fn ratio_text(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2}")
    } else {
        "inf".into()
    }
}

fn list(cpus: &[u32]) -> String {
    cpus.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

impl Checker {
    /// Fails (and returns `None`) when `cgroup` is in none of `steps`.
    fn steps_with(&mut self, steps: &[StepMetrics], cgroup: &str, what: &str) -> Option<Vec<usize>> {
        let with: Vec<usize> = (0..steps.len()).filter(|&i| steps[i].cgroup(cgroup).is_some()).collect();
        if with.is_empty() {
            self.fail(format!("{what}: cgroup `{cgroup}` is in no step's metrics ({} steps)", steps.len()));
            return None;
        }
        Some(with)
    }

    /// Isolation: in every step where `cgroup` lived, each of its workers ran only on
    /// CPUs of the cgroup's resolved cpuset (`cpus_effective` at that step's end, or at
    /// the previous step's end: a cpuset changed early in a step is not held against
    /// samples taken before the change). A worker seen nowhere in a step is not judged
    /// for that step (see [`Checker::expect_not_starved`]).
    pub fn expect_isolation(&mut self, steps: &[StepMetrics], cgroup: &str) -> bool {
        let Some(with) = self.steps_with(steps, cgroup, "isolation") else { return false };
        let mut ok = true;
        for i in with {
            let cg = steps[i].cgroup(cgroup).expect("filtered above");
            let mut allowed = cg.cpus_effective.clone();
            if let Some(prev) = i.checked_sub(1).and_then(|p| steps[p].cgroup(cgroup)) {
                allowed.extend(&prev.cpus_effective);
            }
            for w in steps[i].workers_of(cgroup) {
                let outside: Vec<u32> =
                    cpus_in_step(steps, i, w).into_iter().filter(|c| !allowed.contains(c)).collect();
                if !outside.is_empty() {
                    ok = false;
                    self.fail(format!(
                        "isolation: step {}, cgroup `{cgroup}`, worker {}: ran on CPUs {} outside its cpuset {}",
                        steps[i].step,
                        w.tid,
                        list(&outside),
                        list(&cg.cpus_effective)
                    ));
                }
            }
        }
        ok
    }

    /// Not starved: in every step where `cgroup` lived, each of its live workers did
    /// some work, and none had a gap between two iterations longer than `max_gap_ns`
    /// (a worker's longest gap since it started, reported with its CPU and time).
    pub fn expect_not_starved(&mut self, steps: &[StepMetrics], cgroup: &str, max_gap_ns: u64) -> bool {
        let Some(with) = self.steps_with(steps, cgroup, "not starved") else { return false };
        let mut ok = true;
        for i in with {
            let live: Vec<&WorkerStat> = steps[i].workers_of(cgroup).filter(|w| w.alive).collect();
            if live.is_empty() {
                ok = false;
                self.fail(format!("not starved: step {}, cgroup `{cgroup}`: no live worker", steps[i].step));
            }
            for w in live {
                let units = units_in_step(steps, i, w);
                if units == 0 {
                    ok = false;
                    self.fail(format!(
                        "not starved: step {}, cgroup `{cgroup}`, worker {}: no work done in the step ({} units in all)",
                        steps[i].step, w.tid, w.work_units
                    ));
                }
                if w.max_gap_ns > max_gap_ns {
                    ok = false;
                    self.fail(format!(
                        "not starved: step {}, cgroup `{cgroup}`, worker {}: a gap of {} ns (bound {max_gap_ns} ns) \
                         ending on CPU {} at {} ns",
                        steps[i].step, w.tid, w.max_gap_ns, w.max_gap_cpu, w.max_gap_at_ns
                    ));
                }
            }
        }
        ok
    }

    /// Fairness: in step `step`, the work units each live worker of `cgroup` did in
    /// that step are within `max_ratio` of each other (most / fewest ≤ `max_ratio`).
    pub fn expect_fairness(&mut self, steps: &[StepMetrics], step: u32, cgroup: &str, max_ratio: f64) -> bool {
        let Some(i) = steps.iter().position(|s| s.step == step) else {
            self.fail(format!("fairness: no metrics for step {step} ({} steps)", steps.len()));
            return false;
        };
        let units: Vec<(u32, u64)> =
            steps[i].workers_of(cgroup).filter(|w| w.alive).map(|w| (w.tid, units_in_step(steps, i, w))).collect();
        if units.len() < 2 {
            self.fail(format!(
                "fairness: step {step}, cgroup `{cgroup}`: {} live worker(s), need at least 2 to compare",
                units.len()
            ));
            return false;
        }
        let (min_tid, min) = *units.iter().min_by_key(|(_, u)| *u).expect("two or more");
        let (max_tid, max) = *units.iter().max_by_key(|(_, u)| *u).expect("two or more");
        let ratio = if min == 0 { f64::INFINITY } else { max as f64 / min as f64 };
        self.expect(
            ratio <= max_ratio,
            format!(
                "fairness: step {step}, cgroup `{cgroup}`: worker {max_tid} did {max} units, worker {min_tid} {min} \
                 (ratio {}, bound {max_ratio})",
                ratio_text(ratio)
            ),
        )
    }

    /// Per-phase ratio: `cgroup`'s throughput (work units per second, summed over its
    /// workers) in step `b` divided by that in step `a` lies in `lo..=hi`.
    pub fn expect_phase_ratio(
        &mut self,
        steps: &[StepMetrics],
        cgroup: &str,
        a: u32,
        b: u32,
        lo: f64,
        hi: f64,
    ) -> bool {
        let mut rate = |step: u32| -> Option<f64> {
            let Some(i) = steps.iter().position(|s| s.step == step) else {
                self.fail(format!("phase ratio: no metrics for step {step} ({} steps)", steps.len()));
                return None;
            };
            let workers: Vec<&WorkerStat> = steps[i].workers_of(cgroup).collect();
            let wall = workers.iter().map(|w| wall_in_step(steps, i, w)).max().unwrap_or(0);
            if workers.is_empty() || wall == 0 {
                self.fail(format!("phase ratio: step {step}, cgroup `{cgroup}`: no workers to measure"));
                return None;
            }
            let units: u64 = workers.iter().map(|w| units_in_step(steps, i, w)).sum();
            Some(units as f64 / (wall as f64 / 1e9))
        };
        let (Some(ra), Some(rb)) = (rate(a), rate(b)) else { return false };
        let ratio = if ra == 0.0 { f64::INFINITY } else { rb / ra };
        self.expect(
            (lo..=hi).contains(&ratio),
            format!(
                "phase ratio: cgroup `{cgroup}`: step {b} did {rb:.0} units/s, step {a} {ra:.0} units/s \
                 (ratio {}, want {lo}..={hi})",
                ratio_text(ratio)
            ),
        )
    }

    /// Latency bound: in every step where `cgroup` lived, each of its live workers
    /// measured `kind` latency during that step (its sample count grew since the
    /// previous step's end), and its p99 is at most `max_p99_ns`. The distribution is
    /// cumulative since the worker started (`latencies` from [`crate::step_latencies`]):
    /// a bound that fails in one step fails in the later steps until enough good
    /// samples outweigh the bad ones. A worker with no such latency (a work type that
    /// does not measure it) fails.
    pub fn expect_latency_bound(
        &mut self,
        steps: &[StepMetrics],
        latencies: &[WorkerLatency],
        cgroup: &str,
        kind: LatencyKind,
        max_p99_ns: u64,
    ) -> bool {
        let Some(with) = self.steps_with(steps, cgroup, "latency bound") else { return false };
        let find =
            |step: u32, tid: u32| latencies.iter().find(|l| l.step == step && l.tid == tid).and_then(|l| kind.of(l));
        let what = kind.name();
        let mut ok = true;
        for i in with {
            let step = steps[i].step;
            let live: Vec<&WorkerStat> = steps[i].workers_of(cgroup).filter(|w| w.alive).collect();
            if live.is_empty() {
                ok = false;
                self.fail(format!("latency bound: step {step}, cgroup `{cgroup}`: no live worker"));
            }
            for w in live {
                let Some(l) = find(step, w.tid) else {
                    ok = false;
                    self.fail(format!(
                        "latency bound: step {step}, cgroup `{cgroup}`, worker {}: no {what} latency measured",
                        w.tid
                    ));
                    continue;
                };
                let before = i.checked_sub(1).and_then(|p| find(steps[p].step, w.tid)).map_or(0, |p| p.samples);
                if l.samples <= before {
                    ok = false;
                    self.fail(format!(
                        "latency bound: step {step}, cgroup `{cgroup}`, worker {}: no {what} latency samples in the \
                         step ({} in all)",
                        w.tid, l.samples
                    ));
                }
                if l.p99_ns > max_p99_ns {
                    ok = false;
                    self.fail(format!(
                        "latency bound: step {step}, cgroup `{cgroup}`, worker {}: {what} p99 {} ns (bound \
                         {max_p99_ns} ns; p50 {} ns, p90 {} ns, max {} ns, {} samples since it started)",
                        w.tid, l.p99_ns, l.p50_ns, l.p90_ns, l.max_ns, l.samples
                    ));
                }
            }
        }
        ok
    }

    /// Scheduler stayed attached: at the end of every step in `first..=last`, sched_ext
    /// is `enabled` and, when `ops` is given, `root/ops` names it.
    pub fn expect_scheduler_attached(
        &mut self,
        steps: &[StepMetrics],
        first: u32,
        last: u32,
        ops: Option<&str>,
    ) -> bool {
        let mut ok = true;
        for step in first..=last {
            let Some(s) = steps.iter().find(|s| s.step == step) else {
                self.fail(format!("scheduler attached: no metrics for step {step} ({} steps)", steps.len()));
                ok = false;
                continue;
            };
            if s.sched_ext_state != "enabled" || ops.is_some_and(|o| o != s.sched_ext_ops) {
                ok = false;
                self.fail(format!(
                    "scheduler attached: step {step}: sched_ext {:?} with ops {:?}{}",
                    s.sched_ext_state,
                    s.sched_ext_ops,
                    ops.map(|o| format!(", want enabled with {o:?}")).unwrap_or_else(|| ", want enabled".into())
                ));
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::CgroupState;
    use crate::types::{CpuCount, WorkerMetrics};

    fn worker(tid: u32, work_units: u64, wall_ms: u64, cpus: &[(u32, u64)], max_gap_ns: u64) -> WorkerStat {
        WorkerStat {
            cgroup: "a".into(),
            tid,
            index: 0,
            alive: true,
            work_units,
            cpu_time_ns: 0,
            wall_time_ns: wall_ms * 1_000_000,
            off_cpu_ns: 0,
            run_delay_ns: 0,
            migrations: 0,
            max_gap_ns,
            max_gap_cpu: 1,
            max_gap_at_ns: 5,
            cpus: cpus.iter().map(|&(cpu, count)| CpuCount { cpu, count }).collect(),
        }
    }

    fn step(step: u32, cpus: &[u32], workers: Vec<WorkerStat>, state: &str, ops: &str) -> StepMetrics {
        StepMetrics {
            step,
            cgroups: vec![CgroupState {
                name: "a".into(),
                backdrop: true,
                cpus_effective: cpus.to_vec(),
                frozen: false,
                usage_usec: 0,
                procs: 2,
                metrics: WorkerMetrics {
                    cgroup: "a".into(),
                    workers: 2,
                    iterations: 0,
                    cpu_time_ns: 0,
                    run_delay_ns: 0,
                    migrations: 0,
                    cpus: vec![],
                },
            }],
            workers,
            irqs: vec![],
            sched_ext_state: state.into(),
            sched_ext_ops: ops.into(),
        }
    }

    /// Two steps: the cpuset moves from 0-1 to 2-3; worker 8 strays onto CPU 0 in step 1
    /// and does far more than worker 7, which stalls for 300 ms.
    fn steps() -> Vec<StepMetrics> {
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
        ]
    }

    #[test]
    fn isolation_is_judged_per_step_against_the_cpusets_around_it() {
        let mut c = Checker::new();
        // Step 1's CPU 0 sample of worker 8 lies in step 0's cpuset: allowed (changed early in the step).
        assert!(c.expect_isolation(&steps(), "a"), "{:?}", c.failures());
        let mut s = steps();
        s.push(step(2, &[2, 3], vec![worker(8, 500, 3000, &[(0, 7), (1, 5), (3, 4)], 1)], "enabled", "fx"));
        assert!(!c.expect_isolation(&s, "a"));
        assert_eq!(c.failures(), ["isolation: step 2, cgroup `a`, worker 8: ran on CPUs 0 outside its cpuset 2,3"]);
        let mut c = Checker::new();
        assert!(!c.expect_isolation(&steps(), "missing"));
        assert_eq!(c.failures(), ["isolation: cgroup `missing` is in no step's metrics (2 steps)"]);
    }

    #[test]
    fn starvation_fairness_phases_and_the_scheduler() {
        let mut c = Checker::new();
        assert!(!c.expect_not_starved(&steps(), "a", 100_000_000));
        assert_eq!(
            c.failures(),
            [
                "not starved: step 1, cgroup `a`, worker 7: a gap of 300000000 ns (bound 100000000 ns) ending on CPU 1 at 5 ns"
            ]
        );
        let mut c = Checker::new();
        assert!(c.expect_fairness(&steps(), 0, "a", 1.5));
        assert!(!c.expect_fairness(&steps(), 1, "a", 2.0));
        assert!(!c.expect_fairness(&steps(), 9, "a", 2.0));
        assert_eq!(
            c.failures(),
            [
                "fairness: step 1, cgroup `a`: worker 8 did 300 units, worker 7 50 (ratio 6.00, bound 2)",
                "fairness: no metrics for step 9 (2 steps)",
            ]
        );
        let mut c = Checker::new();
        // Step 0: 200 units in 1 s; step 1: 350 units in 1 s.
        assert!(c.expect_phase_ratio(&steps(), "a", 0, 1, 1.5, 2.0), "{:?}", c.failures());
        assert!(!c.expect_phase_ratio(&steps(), "a", 0, 1, 0.5, 1.2));
        assert_eq!(
            c.failures(),
            ["phase ratio: cgroup `a`: step 1 did 350 units/s, step 0 200 units/s (ratio 1.75, want 0.5..=1.2)"]
        );
        let mut c = Checker::new();
        assert!(c.expect_scheduler_attached(&steps(), 0, 0, Some("fx")));
        assert!(!c.expect_scheduler_attached(&steps(), 0, 2, None));
        assert_eq!(
            c.failures(),
            [
                "scheduler attached: step 1: sched_ext \"disabled\" with ops \"\", want enabled",
                "scheduler attached: no metrics for step 2 (2 steps)",
            ]
        );
    }

    fn lat(step: u32, tid: u32, wake: Option<(u64, u64)>) -> WorkerLatency {
        WorkerLatency {
            step,
            cgroup: "a".into(),
            tid,
            wake: wake.map(|(samples, p99_ns)| Latency { samples, p50_ns: 10, p90_ns: 20, p99_ns, max_ns: 9_000 }),
            request: None,
        }
    }

    #[test]
    fn latency_bound_needs_samples_in_every_step() {
        // Worker 7: 10 samples in step 0 (p99 500 ns), none more in step 1; worker 8 measures none.
        let lats = [lat(0, 7, Some((10, 500))), lat(0, 8, None), lat(1, 7, Some((10, 800))), lat(1, 8, None)];
        let mut c = Checker::new();
        assert!(!c.expect_latency_bound(&steps()[..1], &lats, "a", LatencyKind::Wake, 1_000));
        assert_eq!(c.failures(), ["latency bound: step 0, cgroup `a`, worker 8: no wake latency measured"]);
        let mut c = Checker::new();
        assert!(!c.expect_latency_bound(&steps(), &lats[..1], "a", LatencyKind::Wake, 400));
        assert_eq!(
            c.failures(),
            [
                "latency bound: step 0, cgroup `a`, worker 7: wake p99 500 ns (bound 400 ns; p50 10 ns, p90 20 ns, \
                 max 9000 ns, 10 samples since it started)",
                "latency bound: step 0, cgroup `a`, worker 8: no wake latency measured",
                "latency bound: step 1, cgroup `a`, worker 7: no wake latency measured",
                "latency bound: step 1, cgroup `a`, worker 8: no wake latency measured",
            ]
        );
        let mut c = Checker::new();
        assert!(!c.expect_latency_bound(&steps(), &lats, "a", LatencyKind::Request, 1_000));
        assert_eq!(c.failures().len(), 4, "{:?}", c.failures());
        let mut c = Checker::new();
        let mut one = steps();
        one.iter_mut().for_each(|s| s.workers.retain(|w| w.tid == 7));
        assert!(!c.expect_latency_bound(&one, &lats, "a", LatencyKind::Wake, 1_000));
        assert_eq!(
            c.failures(),
            ["latency bound: step 1, cgroup `a`, worker 7: no wake latency samples in the step (10 in all)"]
        );
        let mut c = Checker::new();
        let grew = [lat(0, 7, Some((10, 500))), lat(1, 7, Some((30, 800)))];
        assert!(c.expect_latency_bound(&one, &grew, "a", LatencyKind::Wake, 1_000), "{:?}", c.failures());
        assert!(!c.expect_latency_bound(&one, &grew, "missing", LatencyKind::Wake, 1_000));
        assert_eq!(c.failures(), ["latency bound: cgroup `missing` is in no step's metrics (2 steps)"]);
    }
}
