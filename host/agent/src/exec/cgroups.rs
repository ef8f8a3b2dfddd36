//! The cgroup ops: create (empty or from a definition), remove, cpusets, freeze, stop,
//! capture and move-all-tasks.

use schedbox_ops::results::{CgroupProcs, PayloadExit};
use schedbox_ops::{CgroupDef, CpusetSpec};
use schedbox_wire::Owner;

use super::cpuset::{self, format_cpu_list};
use super::payload::Payload;
use super::{cgroupfs, workers, Cgroup, Executor};

impl Executor {
    /// The managed cgroup `name`, or an error telling how to create it.
    pub(super) fn cgroup(&mut self, name: &str) -> Result<&mut Cgroup, String> {
        self.cgroups.get_mut(name).ok_or_else(|| {
            format!("cgroup {name:?} does not exist: create it first (add-cgroup, add-cgroup-def or a setup def)")
        })
    }

    /// Fails when `name` is frozen: a child started there would freeze before it execs.
    pub(super) fn not_frozen(&mut self, name: &str) -> Result<(), String> {
        if self.cgroup(name)?.frozen || cgroupfs::is_frozen(&cgroupfs::dir(name)).unwrap_or(false) {
            return Err(format!("cgroup {name:?} is frozen: unfreeze it before starting tasks in it"));
        }
        Ok(())
    }

    pub(super) fn add_cgroup(&mut self, name: &str, owner: Owner) -> Result<(), String> {
        let dir = cgroupfs::dir(name);
        if self.cgroups.contains_key(name) || dir.exists() {
            return Err(format!("cgroup {name:?} already exists: remove it first or pick another name"));
        }
        std::fs::create_dir(&dir).map_err(|e| format!("creating cgroup {name:?} ({}): {e}", dir.display()))?;
        self.cgroups.insert(name.to_owned(), Cgroup { owner, frozen: false });
        Ok(())
    }

    /// Creates a cgroup from its definition; on failure it is removed again.
    pub(super) fn add_def(&mut self, def: &CgroupDef, owner: Owner) -> Result<(), String> {
        self.add_cgroup(&def.name, owner)?;
        if let Err(e) = self.configure(def, owner) {
            let _ = self.remove_cgroup(&def.name);
            return Err(format!("cgroup {:?}: {e} (the cgroup was removed again)", def.name));
        }
        Ok(())
    }

    fn configure(&mut self, def: &CgroupDef, owner: Owner) -> Result<(), String> {
        let dir = cgroupfs::dir(&def.name);
        if let Some(spec) = &def.cpuset {
            self.set_cpuset(&def.name, spec)?;
        }
        if let Some(mems) = &def.cpuset_mems {
            cgroupfs::write(&dir, "cpuset.mems", &format_cpu_list(mems))?;
        }
        if let Some(w) = def.cpu_weight {
            cgroupfs::write(&dir, "cpu.weight", &w.to_string())?;
        }
        if let Some(m) = &def.cpu_max {
            cgroupfs::write(&dir, "cpu.max", &format!("{} {}", m.quota_us, m.period_us))?;
        }
        if let Some(m) = def.memory_max {
            cgroupfs::write(&dir, "memory.max", &m.to_string())?;
        }
        if let Some(p) = def.pids_max {
            cgroupfs::write(&dir, "pids.max", &p.to_string())?;
        }
        if let Some(w) = def.io_weight {
            if !dir.join("io.weight").exists() {
                return Err("io.weight is not available in this guest (the io controller offers no weight \
                            without a block device and io cost model); leave io_weight unset"
                    .into());
            }
            cgroupfs::write(&dir, "io.weight", &w.to_string())?;
        }
        for spec in &def.workers {
            let started = workers::spawn(Some(&def.name), spec, owner, &self.topo)?;
            self.workers.extend(started);
        }
        if let Some(p) = &def.payload {
            self.run_payload(&p.name, &p.args, Some(&def.name), owner)?;
        }
        Ok(())
    }

    /// Stops everything in `name` and removes it; returns the payloads it killed. The
    /// workers' metrics go to the next teardown.
    pub(super) fn remove_cgroup(&mut self, name: &str) -> Result<Vec<PayloadExit>, String> {
        self.cgroup(name)?;
        self.reap();
        let dir = cgroupfs::dir(name);
        let mine: Vec<usize> = (0..self.workers.len()).filter(|&i| self.workers[i].cgroup == name).collect();
        workers::merge_metrics(&mut self.stopped, workers::metrics(mine.iter().map(|&i| &self.workers[i])));
        self.stopped_stats.extend(workers::stopped(workers::stats(mine.iter().map(|&i| &self.workers[i]))));
        if dir.exists() {
            cgroupfs::set_frozen(&dir, false)
                .map_err(|e| format!("thawing cgroup {name:?} before removing it: {e}"))?;
        }
        self.stop_workers(name);
        let (gone, kept): (Vec<Payload>, Vec<Payload>) =
            std::mem::take(&mut self.payloads).into_iter().partition(|p| p.cgroup.as_deref() == Some(name));
        self.payloads = kept;
        let exits = gone
            .into_iter()
            .map(|mut p| {
                p.kill();
                p.exit()
            })
            .collect();
        self.cgroups.remove(name);
        self.remove_dir(&dir).map_err(|e| format!("cgroup {name:?}: {e}"))?;
        Ok(exits)
    }

    /// Kills and forgets the workers of `name`, after saving their metrics.
    fn stop_workers(&mut self, name: &str) {
        workers::stop_all(self.workers.iter_mut().filter(|w| w.cgroup == name));
        self.workers.retain(|w| w.alive);
    }

    /// stop-cgroup: its workers' metrics go to the next teardown; the cgroup stays.
    pub(super) fn stop_cgroup(&mut self, name: &str) -> Result<(), String> {
        self.cgroup(name)?;
        self.reap();
        let metrics = workers::metrics(self.workers.iter().filter(|w| w.cgroup == name));
        workers::merge_metrics(&mut self.stopped, metrics);
        let stats = workers::stats(self.workers.iter().filter(|w| w.cgroup == name));
        self.stopped_stats.extend(workers::stopped(stats));
        self.stop_workers(name);
        Ok(())
    }

    pub(super) fn set_cpuset(&mut self, name: &str, spec: &CpusetSpec) -> Result<(), String> {
        self.cgroup(name)?;
        let cpus = cpuset::resolve(spec, &self.topo).map_err(|e| format!("cgroup {name:?}: cpuset {e}"))?;
        cgroupfs::write(&cgroupfs::dir(name), "cpuset.cpus", &format_cpu_list(&cpus))
    }

    /// An empty `cpuset.cpus` inherits the parent's CPUs.
    pub(super) fn clear_cpuset(&mut self, name: &str) -> Result<(), String> {
        self.cgroup(name)?;
        cgroupfs::write(&cgroupfs::dir(name), "cpuset.cpus", "")
    }

    /// Swaps the configured `cpuset.cpus` of two cgroups. Scenario cgroups are never
    /// partitions, so siblings may overlap and the order of the two writes is free; a
    /// failed second write puts the first back.
    pub(super) fn swap_cpusets(&mut self, a: &str, b: &str) -> Result<(), String> {
        self.cgroup(a)?;
        self.cgroup(b)?;
        let (da, db) = (cgroupfs::dir(a), cgroupfs::dir(b));
        let old_a = cgroupfs::read(&da, "cpuset.cpus")?.trim().to_owned();
        let old_b = cgroupfs::read(&db, "cpuset.cpus")?.trim().to_owned();
        cgroupfs::write(&da, "cpuset.cpus", &old_b).map_err(|e| format!("cgroup {a:?}: {e}"))?;
        if let Err(e) = cgroupfs::write(&db, "cpuset.cpus", &old_a) {
            let _ = cgroupfs::write(&da, "cpuset.cpus", &old_a);
            return Err(format!("cgroup {b:?}: {e} (cgroup {a:?} was put back)"));
        }
        Ok(())
    }

    /// freeze-cgroup / unfreeze-cgroup. A freeze outlives the step that made it (the
    /// reference's semantics): it ends with an unfreeze-cgroup or the cgroup's removal.
    /// Freezing a frozen cgroup and thawing a thawed one do nothing.
    pub(super) fn freeze(&mut self, name: &str, frozen: bool) -> Result<(), String> {
        self.cgroup(name)?;
        cgroupfs::set_frozen(&cgroupfs::dir(name), frozen).map_err(|e| format!("cgroup {name:?}: {e}"))?;
        self.cgroup(name)?.frozen = frozen;
        Ok(())
    }

    pub(super) fn capture(&mut self, tag: &str, name: &str) -> Result<CgroupProcs, String> {
        self.cgroup(name)?;
        let pids = cgroupfs::procs(&cgroupfs::dir(name)).map_err(|e| format!("cgroup {name:?}: {e}"))?;
        Ok(CgroupProcs { tag: tag.to_owned(), cgroup: name.to_owned(), pids })
    }

    /// Moves every task of `from` (`""`: the runner-cgroup workers) into `to`; the
    /// workers are then addressed by `to` and follow its lifetime. Backdrop tasks may not
    /// move into a step-local cgroup: they would be stranded when the step ends.
    pub(super) fn move_all(&mut self, from: &str, to: &str) -> Result<(), String> {
        if from == to {
            return Err(format!("moving cgroup {from:?} into itself does nothing: name two different cgroups"));
        }
        let to_owner = self.cgroup(to)?.owner;
        self.reap();
        let (from_backdrop, shown) = if from.is_empty() {
            let backdrop = self.workers.iter().any(|w| w.cgroup.is_empty() && w.alive && w.owner == Owner::Backdrop);
            (backdrop, "the Backdrop's runner-cgroup workers".to_owned())
        } else {
            (self.cgroup(from)?.owner == Owner::Backdrop, format!("the tasks of Backdrop cgroup {from:?}"))
        };
        if from_backdrop && to_owner == Owner::Step {
            return Err(format!(
                "moving {shown} into step-local cgroup {to:?} would strand them when the step ends: declare {to:?} \
                 in the Backdrop too, or move them into a Backdrop cgroup"
            ));
        }
        let pids = if from.is_empty() {
            self.workers.iter().filter(|w| w.cgroup.is_empty() && w.alive).map(|w| w.pid).collect()
        } else {
            self.cgroup(from)?;
            cgroupfs::procs(&cgroupfs::dir(from)).map_err(|e| format!("cgroup {from:?}: {e}"))?
        };
        let target = cgroupfs::dir(to).join("cgroup.procs");
        for pid in pids {
            if let Err(e) = std::fs::write(&target, pid.to_string()) {
                // A task that exited meanwhile (a fork-exit child) has nothing to move.
                if e.raw_os_error() != Some(libc::ESRCH) {
                    return Err(format!("moving pid {pid} from {from:?} to cgroup {to:?}: {e}"));
                }
            }
        }
        for w in self.workers.iter_mut().filter(|w| w.cgroup == from) {
            w.cgroup = to.to_owned();
            w.owner = to_owner;
        }
        Ok(())
    }
}
