//! The [`Scenario`] trait and the describe/check helpers.

use crate::builders::IntoMillis;
use crate::metrics::{CgroupState, StepMetrics, WorkerStat};
use crate::types::{
    CgroupProcs, KernelFeature, KernelValue, Outcome, PayloadExit, ScenarioInfo, Snapshot, StepResult, StepStatus,
    Topology, Verdict, WorkerMetrics,
};
use crate::types::{KernelRead, Results};
use std::collections::BTreeSet;

/// A scenario component.
///
/// Implement it on a unit struct and export it with
/// [`export_scenario!`](crate::export_scenario). The host calls
/// [`describe`](Self::describe) first, then [`run`](Self::run) to collect the
/// op stream, executes the stream and finally calls [`check`](Self::check)
/// with what it observed.
pub trait Scenario {
    /// Name, needs and shape of the scenario. Must not call any op.
    fn describe() -> ScenarioInfo;

    /// Emit the op stream, usually with one [`emit`](crate::emit) call.
    fn run() -> Result<(), String>;

    /// Judge the results of executing the stream.
    fn check(results: Results) -> Verdict;
}

/// Default guest shape: 1 NUMA node × 1 LLC × 2 cores × 1 thread.
const DEFAULT_TOPOLOGY: Topology = Topology { numa_nodes: 1, llcs_per_node: 1, cores_per_llc: 2, threads_per_core: 1 };

/// Default scenario duration.
const DEFAULT_DURATION_MS: u64 = 3_000;

/// Scenario description builder.
///
/// ```rust
/// use schedbox_scenario::prelude::*;
/// use std::time::Duration;
///
/// let info = ScenarioInfo::new("llc-churn", "workers hop between LLCs")
///     .topology(1, 2, 4, 2)
///     .needs(KernelFeature::SchedExt)
///     .scheduler("fixture")
///     .payload("stress")
///     .duration(Duration::from_secs(4));
/// assert_eq!(info.topology.cpus(), 16);
/// assert_eq!(info.duration_ms, 4_000);
/// ```
impl ScenarioInfo {
    /// A scenario named `name` on the default shape (1 node × 1 LLC × 2 cores
    /// × 1 thread), with no kernel features, payloads or schedulers, lasting
    /// 3 s.
    pub fn new(name: impl Into<String>, summary: impl Into<String>) -> Self {
        ScenarioInfo {
            name: name.into(),
            summary: summary.into(),
            topology: DEFAULT_TOPOLOGY,
            kernel_features: Vec::new(),
            payloads: Vec::new(),
            schedulers: Vec::new(),
            duration_ms: DEFAULT_DURATION_MS,
        }
    }

    /// The guest shape the scenario needs (at least).
    #[must_use]
    pub fn topology(mut self, numa_nodes: u32, llcs_per_node: u32, cores_per_llc: u32, threads_per_core: u32) -> Self {
        self.topology = Topology::new(numa_nodes, llcs_per_node, cores_per_llc, threads_per_core);
        self
    }

    /// A kernel feature the scenario needs (listed once however often it is
    /// named).
    #[must_use]
    pub fn needs(mut self, feature: KernelFeature) -> Self {
        if !self.kernel_features.contains(&feature) {
            self.kernel_features.push(feature);
        }
        self
    }

    /// A payload `run-payload` may use (staged with `--payload`).
    #[must_use]
    pub fn payload(mut self, name: impl Into<String>) -> Self {
        self.payloads.push(name.into());
        self
    }

    /// A scheduler the scheduler ops may use; declare every one, the built-in
    /// `fixture` included.
    #[must_use]
    pub fn scheduler(mut self, name: impl Into<String>) -> Self {
        self.schedulers.push(name.into());
        self
    }

    /// The scenario duration, the base of [`HoldSpec::frac`](crate::types::HoldSpec::frac):
    /// a [`Duration`](std::time::Duration) or a millisecond count.
    #[must_use]
    pub fn duration(mut self, duration: impl IntoMillis) -> Self {
        self.duration_ms = duration.into_millis();
        self
    }
}

impl Verdict {
    /// The scenario did what it should.
    pub fn pass() -> Self {
        Verdict { outcome: Outcome::Pass, messages: Vec::new() }
    }

    /// The scenario did not do what it should, because of `msg`.
    pub fn fail(msg: impl Into<String>) -> Self {
        Verdict { outcome: Outcome::Fail, messages: vec![msg.into()] }
    }

    /// The results say nothing either way (e.g. a feature was missing).
    pub fn skip(msg: impl Into<String>) -> Self {
        Verdict { outcome: Outcome::Skip, messages: vec![msg.into()] }
    }

    /// Whether the outcome is [`Outcome::Pass`].
    pub fn is_pass(&self) -> bool {
        self.outcome == Outcome::Pass
    }
}

/// Lookups into what the host observed.
///
/// ```rust
/// use schedbox_scenario::prelude::*;
///
/// fn check(results: Results) -> Verdict {
///     let mut c = Checker::new();
///     c.expect_steps_passed(&results);
///     let pids = results.procs("left-procs").unwrap_or_default();
///     c.expect(pids.len() == 2, format!("left has {} pids, want 2", pids.len()));
///     if let Some(m) = results.worker_metrics("left") {
///         c.expect(m.iterations > 0, "left's workers made no progress");
///     }
///     let jiffies = results.kernel_read("jiffies").and_then(KernelValue::as_u64);
///     c.expect(jiffies.is_some(), "no u64 read tagged `jiffies`");
///     c.verdict()
/// }
/// # let _ = check;
/// ```
impl Results {
    /// The pids captured under `tag` by `capture-cgroup-procs`.
    pub fn procs(&self, tag: &str) -> Option<&[u32]> {
        self.cgroup_procs(tag).map(|c| c.pids.as_slice())
    }

    /// The whole `capture-cgroup-procs` record tagged `tag`.
    pub fn cgroup_procs(&self, tag: &str) -> Option<&CgroupProcs> {
        self.cgroup_procs.iter().find(|c| c.tag == tag)
    }

    /// The value read under `tag` by `read-kernel-hot` / `read-kernel-cold`.
    pub fn kernel_read(&self, tag: &str) -> Option<&KernelValue> {
        self.kernel_reads.iter().find(|r: &&KernelRead| r.tag == tag).map(|r| &r.value)
    }

    /// The worker metrics of `cgroup` (`""`: the runner cgroup).
    pub fn worker_metrics(&self, cgroup: &str) -> Option<&WorkerMetrics> {
        self.workers.iter().find(|w| w.cgroup == cgroup)
    }

    /// The result of step `index` (counted from 0).
    pub fn step(&self, index: u32) -> Option<&StepResult> {
        self.steps.iter().find(|s| s.index == index)
    }

    /// Whether there is at least one step result and every step passed.
    pub fn all_steps_passed(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| s.status == StepStatus::Passed)
    }

    /// The steps that did not pass.
    pub fn unpassed_steps(&self) -> impl Iterator<Item = &StepResult> {
        self.steps.iter().filter(|s| s.status != StepStatus::Passed)
    }

    /// The snapshot named `name`.
    pub fn snapshot(&self, name: &str) -> Option<&Snapshot> {
        self.snapshots.iter().find(|s| s.name == name)
    }

    /// How the payload `name` exited (the first one of that name).
    pub fn payload_exit(&self, name: &str) -> Option<&PayloadExit> {
        self.payloads.iter().find(|p| p.name == name)
    }
}

/// The step metrics of the run `check` judges: one entry per step that reached its
/// end, in step order, read in the guest after the step's hold and before its
/// teardown (every live cgroup with its resolved cpuset, frozen state and CPU usage;
/// every worker's counters; steered IRQs; sched_ext's state). Empty outside `check`,
/// and on a host that ran no step. Call it once per `check`: each call copies them.
pub fn step_metrics() -> Vec<StepMetrics> {
    crate::metrics::steps()
}

/// The latencies of every worker of [`step_metrics`], in the same order (step, then
/// its workers): wake-up and request latency, each cumulative since the worker
/// started, for the work types that measure them. Empty outside `check`. A component
/// that calls it needs a host whose `metrics` interface has `latencies`.
pub fn step_latencies() -> Vec<crate::metrics::WorkerLatency> {
    crate::metrics::latencies()
}

impl StepMetrics {
    /// The live cgroup `name` at the end of this step, if it was there.
    pub fn cgroup(&self, name: &str) -> Option<&CgroupState> {
        self.cgroups.iter().find(|c| c.name == name)
    }

    /// The workers of `cgroup` ("" = the runner's cgroup) at the end of this step.
    pub fn workers_of<'a>(&'a self, cgroup: &'a str) -> impl Iterator<Item = &'a WorkerStat> + 'a {
        self.workers.iter().filter(move |w| w.cgroup == cgroup)
    }
}

impl WorkerMetrics {
    /// The CPUs the workers were seen on at least once.
    pub fn cpus_seen(&self) -> BTreeSet<u32> {
        self.cpus.iter().filter(|c| c.count > 0).map(|c| c.cpu).collect()
    }
}

/// Collects failed expectations into a [`Verdict`].
///
/// ```rust
/// use schedbox_scenario::prelude::*;
///
/// let mut c = Checker::new();
/// c.expect(1 + 1 == 2, "arithmetic");
/// c.expect_eq("pids in dst", 2, 3);
/// let verdict = c.verdict();
/// assert_eq!(verdict.outcome, Outcome::Fail);
/// assert_eq!(verdict.messages, ["pids in dst: got 2, want 3"]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Checker {
    failures: Vec<String>,
}

impl Checker {
    /// No failures yet.
    pub fn new() -> Self {
        Checker::default()
    }

    /// Record `msg` as a failure unless `cond` holds; returns `cond`.
    pub fn expect(&mut self, cond: bool, msg: impl Into<String>) -> bool {
        if !cond {
            self.failures.push(msg.into());
        }
        cond
    }

    /// Record a failure unless `got == want`; returns whether they are equal.
    pub fn expect_eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) -> bool {
        self.expect(got == want, format!("{what}: got {got:?}, want {want:?}"))
    }

    /// Record a failure for every step that did not pass (with its error), or
    /// one when there are no step results; returns whether all passed.
    pub fn expect_steps_passed(&mut self, results: &Results) -> bool {
        if results.steps.is_empty() {
            self.fail("no step results");
            return false;
        }
        let mut ok = true;
        for s in results.unpassed_steps() {
            ok = false;
            let why = s.error.as_deref().unwrap_or("no error given");
            let status = match s.status {
                StepStatus::Passed => "passed",
                StepStatus::Failed => "failed",
                StepStatus::Skipped => "was skipped",
            };
            self.fail(format!("step {} {status}: {why}", s.index));
        }
        ok
    }

    /// Record a failure.
    pub fn fail(&mut self, msg: impl Into<String>) {
        self.failures.push(msg.into());
    }

    /// The failures so far.
    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    /// Whether nothing failed so far.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// Pass if nothing failed, otherwise fail with every message.
    pub fn verdict(self) -> Verdict {
        if self.failures.is_empty() {
            Verdict::pass()
        } else {
            Verdict { outcome: Outcome::Fail, messages: self.failures }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::CpuCount;
    use std::time::Duration;

    fn results() -> Results {
        Results {
            steps: vec![
                StepResult { index: 0, status: StepStatus::Passed, error: None, duration_ms: 10 },
                StepResult {
                    index: 1,
                    status: StepStatus::Failed,
                    error: Some("cgroup missing".into()),
                    duration_ms: 5,
                },
            ],
            snapshots: vec![],
            cgroup_procs: vec![CgroupProcs { tag: "t".into(), cgroup: "cg".into(), pids: vec![10, 11] }],
            kernel_reads: vec![KernelRead { tag: "j".into(), value: KernelValue::U64(42) }],
            workers: vec![WorkerMetrics {
                cgroup: "cg".into(),
                workers: 2,
                iterations: 100,
                cpu_time_ns: 1,
                run_delay_ns: 0,
                migrations: 0,
                cpus: vec![CpuCount { cpu: 0, count: 3 }, CpuCount { cpu: 1, count: 0 }, CpuCount { cpu: 2, count: 1 }],
            }],
            payloads: vec![],
        }
    }

    #[test]
    fn lookups_find_by_tag() {
        let r = results();
        assert_eq!(r.procs("t"), Some(&[10, 11][..]));
        assert_eq!(r.procs("missing"), None);
        assert_eq!(r.kernel_read("j").and_then(KernelValue::as_u64), Some(42));
        assert_eq!(r.worker_metrics("cg").map(|m| m.iterations), Some(100));
        assert_eq!(r.worker_metrics("cg").unwrap().cpus_seen(), BTreeSet::from([0, 2]));
        assert_eq!(r.step(1).map(|s| s.status), Some(StepStatus::Failed));
        assert!(r.step(2).is_none());
    }

    #[test]
    fn all_steps_passed_needs_steps() {
        let mut r = results();
        assert!(!r.all_steps_passed());
        r.steps[1].status = StepStatus::Passed;
        assert!(r.all_steps_passed());
        r.steps.clear();
        assert!(!r.all_steps_passed());
    }

    #[test]
    fn checker_collects_failures() {
        let r = results();
        let mut c = Checker::new();
        assert!(!c.expect_steps_passed(&r));
        assert!(c.expect(true, "never"));
        assert!(!c.expect_eq("pids", 1, 2));
        let v = c.verdict();
        assert_eq!(v.outcome, Outcome::Fail);
        assert_eq!(v.messages, ["step 1 failed: cgroup missing", "pids: got 1, want 2"]);
        assert_eq!(Checker::new().verdict(), Verdict::pass());
    }

    #[test]
    fn info_builder() {
        let info = ScenarioInfo::new("n", "s")
            .topology(2, 1, 2, 2)
            .needs(KernelFeature::SchedExt)
            .needs(KernelFeature::SchedExt)
            .scheduler("fixture")
            .payload("p")
            .duration(Duration::from_millis(2500));
        assert_eq!(info.topology, Topology::new(2, 1, 2, 2));
        assert_eq!(info.kernel_features, [KernelFeature::SchedExt]);
        assert_eq!(info.schedulers, ["fixture"]);
        assert_eq!(info.payloads, ["p"]);
        assert_eq!(info.duration_ms, 2500);
        let d = ScenarioInfo::new("n", "s");
        assert_eq!(d.topology.cpus(), 2);
        assert_eq!(d.duration_ms, 3000);
    }

    #[test]
    fn verdict_constructors() {
        assert!(Verdict::pass().is_pass());
        assert_eq!(Verdict::fail("x").outcome, Outcome::Fail);
        assert_eq!(Verdict::skip("y").messages, ["y"]);
    }
}
