//! The executor: what the agent does for `BeginScenario`, `Setup`, `Apply`, `EndStep`
//! and `EndScenario`. It owns the scenario's state — the managed cgroups with their
//! owner, the worker processes, the payloads — and tears it down so that nothing
//! outlives its step or scenario.
//!
//! Scenario cgroups are flat children of [`cgroupfs::PARENT`]. Every error names the op
//! (or request), the cgroup and what to do; nothing the kernel refuses is a silent success.

mod apply;
mod cgroupfs;
mod cgroups;
mod cpuset;
mod irq;
mod metrics;
mod payload;
mod procstat;
mod reset;
mod sched;
mod spawn;
mod workers;

use std::collections::BTreeMap;
use std::path::Path;

use schedbox_ops::results::{WorkerMetrics, WorkerStat};
use schedbox_wire::{Applied, Owner, RequestBody, ResponseBody, Teardown};

use cpuset::Topo;
pub use payload::set_wait_limit as set_payload_wait_limit;
use payload::Payload;
use workers::Worker;

/// A managed cgroup.
struct Cgroup {
    owner: Owner,
    /// Frozen by a `freeze-cgroup` (of any step or the Backdrop): it stays frozen until an
    /// `unfreeze-cgroup` or its removal, which thaws it before draining its tasks.
    frozen: bool,
}

/// The scenario state.
#[derive(Default)]
pub struct Executor {
    topo: Topo,
    cgroups: BTreeMap<String, Cgroup>,
    workers: Vec<Worker>,
    payloads: Vec<Payload>,
    /// Metrics of workers stopped by stop-cgroup / remove-cgroup, reported by the next teardown.
    stopped: Vec<WorkerMetrics>,
    /// Their per-worker counters, reported by the next step's metrics.
    stopped_stats: Vec<WorkerStat>,
    /// IRQs steered: their affinity before the first steer (restored by the reset) and
    /// which the current scenario steered (reported in its step metrics).
    irqs: irq::Steered,
    /// The attached sched_ext scheduler and the pinned BPF maps.
    sched: sched::Sched,
}

impl Executor {
    /// A fresh executor; attaches the run's boot scheduler when the host staged one.
    pub fn new() -> Self {
        let mut exec = Self::default();
        exec.sched.start_boot();
        exec
    }

    /// Handles a scenario request; `None` for requests that are not the executor's.
    pub fn handle(&mut self, body: &RequestBody) -> Option<Result<ResponseBody, String>> {
        let begun = Path::new(cgroupfs::PARENT).is_dir();
        let result = match body {
            RequestBody::Setup { .. } | RequestBody::Apply { .. } if !begun => {
                Err("no scenario is running in the guest: send BeginScenario first".to_owned())
            }
            RequestBody::BeginScenario { name } => self.begin(name).map(|()| ResponseBody::Ok),
            RequestBody::Setup { owner, defs } => defs
                .iter()
                .try_for_each(|def| self.add_def(def, *owner).map_err(|e| format!("setup: {e}")))
                .map(|()| ResponseBody::Applied(Applied::default())),
            RequestBody::Apply { owner, op } => self
                .scheduler_alive()
                .and_then(|()| self.apply(*owner, op))
                .map(ResponseBody::Applied)
                .map_err(|e| format!("{}: {e}", op.kind().wit_name())),
            // A scheduler that died during the step, or during its teardown, fails it; the
            // teardown's metrics come back all the same.
            RequestBody::EndStep => {
                let step = self.step_metrics();
                let mut report = self.teardown(false);
                report.step = Some(step);
                report.scheduler_exit = self.scheduler_alive().err();
                Ok(ResponseBody::Teardown(report))
            }
            // The same up to the moment the scenario's end detaches it (the Backdrop's
            // workers run until this teardown): `end_scenario` reports it.
            RequestBody::EndScenario => Ok(ResponseBody::Teardown(self.teardown(true))),
            RequestBody::Reset => Ok(ResponseBody::Reset(self.reset())),
            _ => return None,
        };
        Some(result)
    }

    /// Reaps exited children: payloads keep their status for wait-payload, workers are
    /// marked gone, orphans the kernel re-parented to PID 1 are just collected.
    pub fn reap(&mut self) {
        for (pid, status) in spawn::reap_any() {
            if let Some(p) = self.payloads.iter_mut().find(|p| p.pid == pid && p.status.is_none()) {
                p.status = Some(status);
            } else if self.workers.iter().any(|w| w.process == pid && w.alive) {
                // A worker's process: every worker it holds is gone.
                self.workers.iter_mut().filter(|w| w.process == pid).for_each(|w| w.alive = false);
            } else {
                self.sched.take_status(pid, status);
            }
        }
    }

    /// Fails when the attached scheduler died since the last request.
    fn scheduler_alive(&mut self) -> Result<(), String> {
        self.reap();
        self.sched.check()
    }

    fn begin(&mut self, name: &str) -> Result<(), String> {
        let leftovers = self.teardown(true).leftovers;
        if !leftovers.is_empty() {
            return Err(format!(
                "cannot start scenario {name:?}: what the previous scenario left could not be removed: {}",
                leftovers.join(", ")
            ));
        }
        self.sched.boot_ready().map_err(|e| format!("cannot start scenario {name:?}: {e}"))?;
        self.stopped_stats.clear();
        self.irqs.scenario.clear();
        self.topo = Topo::read();
        cgroupfs::create_parent(&cpuset::format_cpu_list(&self.topo.online))
            .map_err(|e| format!("creating the managed cgroup parent: {e}"))
    }

    /// Stops what `all` (the scenario) or the step owns — metrics first — and removes
    /// its cgroups; reports what could not be removed.
    fn teardown(&mut self, all: bool) -> Teardown {
        self.reap();
        let doomed: Vec<String> =
            self.cgroups.iter().filter(|(_, c)| all || c.owner == Owner::Step).map(|(n, _)| n.clone()).collect();
        let worker_doomed = |w: &Worker| all || w.owner == Owner::Step || doomed.contains(&w.cgroup);
        let mut report = Teardown { workers: std::mem::take(&mut self.stopped), ..Teardown::default() };
        workers::merge_metrics(&mut report.workers, workers::metrics(self.workers.iter().filter(|w| worker_doomed(w))));

        // Thaw every frozen cgroup about to go before draining it (a frozen task would not
        // die until thawed). A cgroup that lives on stays frozen: a freeze lasts until an
        // unfreeze-cgroup or the cgroup's removal, whichever step froze it.
        for (name, cg) in self.cgroups.iter_mut() {
            if cg.frozen && (all || doomed.contains(name)) {
                if let Err(e) = cgroupfs::set_frozen(&cgroupfs::dir(name), false) {
                    report.leftovers.push(format!("cgroup {name:?} stays frozen: {e}"));
                }
                cg.frozen = false;
            }
        }
        let killed: Vec<u32> = self.workers.iter().filter(|w| worker_doomed(w)).map(|w| w.pid).collect();
        workers::stop_all(self.workers.iter_mut().filter(|w| worker_doomed(w)));
        self.workers.retain(|w| w.alive);
        let (gone, kept): (Vec<Payload>, Vec<Payload>) = std::mem::take(&mut self.payloads)
            .into_iter()
            .partition(|p| all || p.owner == Owner::Step || p.cgroup.as_ref().is_some_and(|c| doomed.contains(c)));
        self.payloads = kept;
        for mut p in gone {
            p.kill();
            report.payloads.push(p.exit());
        }
        for name in doomed {
            self.cgroups.remove(&name);
            if let Err(e) = self.remove_dir(&cgroupfs::dir(&name)) {
                report.leftovers.push(e);
            }
        }
        if all {
            // A steered IRQ goes back to where it was: the next scenario starts as this one did.
            let restored = self.irqs.restore();
            report.leftovers.extend(restored.into_iter().filter(|l| l.starts_with("could not")));
            let (left, exit) = self.sched.end_scenario();
            report.leftovers.extend(left);
            report.scheduler_exit = exit;
            let parent = Path::new(cgroupfs::PARENT);
            if parent.exists() {
                let mut reap = || self.reap();
                if let Err(e) = cgroupfs::remove_tree(parent, &mut reap) {
                    report.leftovers.push(e);
                }
            }
            if parent.exists() {
                report.leftovers.push(format!("{} still exists", parent.display()));
            }
        }
        report
            .leftovers
            .extend(killed.into_iter().filter(|p| workers::pid_exists(*p)).map(|p| format!("worker pid {p}")));
        report
    }

    /// Kills whatever is left in a cgroup and removes it, reaping while it waits.
    fn remove_dir(&mut self, dir: &Path) -> Result<(), String> {
        if !dir.exists() {
            return Ok(());
        }
        let _ = cgroupfs::kill_all(dir);
        // Child cgroups a worker made (cgroup-churn, cgroup-attach-storm) go first.
        for child in cgroupfs::children(dir) {
            cgroupfs::rmdir(&child, || self.reap())?;
        }
        cgroupfs::rmdir(dir, || self.reap())
    }
}
