//! A step's metrics: the guest as the step ends (after its hold, before its teardown),
//! read from the kernel — every live cgroup's resolved cpuset, frozen state and CPU
//! usage, every worker's counters, the IRQs the scenario steered, sched_ext's state.

use std::collections::BTreeMap;

use schedbox_ops::results::{CgroupState, IrqAffinity, StepMetrics, WorkerMetrics, WorkerStat};
use schedbox_wire::Owner;

use super::{cgroupfs, irq, sched, workers, Executor};

/// `usage_usec` of a `cpu.stat`.
fn usage_usec(stat: &str) -> u64 {
    stat.lines().find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse().ok()).unwrap_or(0)
}

/// The [`WorkerMetrics`] of `cgroup`: its workers' counters summed.
fn sum<'a>(cgroup: &str, stats: impl Iterator<Item = &'a WorkerStat>) -> WorkerMetrics {
    let mut m = WorkerMetrics { cgroup: cgroup.to_owned(), ..WorkerMetrics::default() };
    let mut hist: BTreeMap<u32, u64> = BTreeMap::new();
    for w in stats {
        m.workers += 1;
        m.iterations += w.work_units;
        m.cpu_time_ns += w.cpu_time_ns;
        m.run_delay_ns += w.run_delay_ns;
        m.migrations += w.migrations;
        for &(cpu, n) in &w.cpus {
            *hist.entry(cpu).or_default() += n;
        }
    }
    m.cpus = hist.into_iter().collect();
    m
}

impl Executor {
    pub(super) fn step_metrics(&mut self) -> StepMetrics {
        self.reap();
        // Each worker's /proc files are read once: the cgroups' sums come from these.
        let mut stats = workers::stats(self.workers.iter());
        let mut cgroups = Vec::new();
        for (name, cg) in &self.cgroups {
            let dir = cgroupfs::dir(name);
            cgroups.push(CgroupState {
                name: name.clone(),
                backdrop: cg.owner == Owner::Backdrop,
                cpus_effective: cgroupfs::effective_cpus(&dir).unwrap_or_default(),
                frozen: cgroupfs::is_frozen(&dir).unwrap_or(false),
                usage_usec: cgroupfs::read(&dir, "cpu.stat").map(|s| usage_usec(&s)).unwrap_or(0),
                procs: cgroupfs::procs(&dir).map_or(0, |p| p.len() as u32),
                metrics: sum(name, stats.iter().filter(|w| &w.cgroup == name)),
            });
        }
        stats.append(&mut self.stopped_stats);
        let irqs: Vec<IrqAffinity> = self.irqs.scenario.iter().map(|&n| irq::affinity(n)).collect();
        StepMetrics {
            step: 0,
            cgroups,
            workers: stats,
            irqs,
            sched_ext_state: sched::state(),
            sched_ext_ops: std::fs::read_to_string("/sys/kernel/sched_ext/root/ops")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_stat_usage() {
        let stat = "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\nnr_periods 0\n";
        assert_eq!(usage_usec(stat), 123456);
        assert_eq!(usage_usec("nr_periods 0\n"), 0);
    }
}
