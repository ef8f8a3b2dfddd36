//! `Apply`: one op, dispatched to its handler; plus the worker and payload ops.

use schedbox_ops::{AffinityIntent, Op, SpawnPlacement, WorkSpec};
use schedbox_wire::{Applied, Owner};

use super::payload::{self, Payload};
use super::{irq, workers, Executor};

impl Executor {
    pub(super) fn apply(&mut self, owner: Owner, op: &Op) -> Result<Applied, String> {
        let mut out = Applied::default();
        match op {
            Op::AddCgroup { name } => self.add_cgroup(name, owner)?,
            Op::AddCgroupDef { def } => self.add_def(def, owner)?,
            Op::RemoveCgroup { cgroup } => out.payloads = self.remove_cgroup(cgroup)?,
            Op::SetCpuset { cgroup, cpus } => self.set_cpuset(cgroup, cpus)?,
            Op::ClearCpuset { cgroup } => self.clear_cpuset(cgroup)?,
            Op::SwapCpusets { a, b } => self.swap_cpusets(a, b)?,
            Op::Spawn { placement, work } => self.spawn(placement, work, owner)?,
            Op::StopCgroup { cgroup } => self.stop_cgroup(cgroup)?,
            Op::SetAffinity { cgroup, affinity } => self.set_affinity(cgroup, affinity)?,
            Op::MoveAllTasks { from, to } => self.move_all(from, to)?,
            Op::RunPayload { name, args, cgroup } => self.run_payload(name, args, cgroup.as_deref(), owner)?,
            Op::WaitPayload { name, cgroup } => out.payloads.push(self.end_payload(name, cgroup.as_deref(), false)?),
            Op::KillPayload { name, cgroup } => out.payloads.push(self.end_payload(name, cgroup.as_deref(), true)?),
            Op::FreezeCgroup { cgroup } => self.freeze(cgroup, true)?,
            Op::UnfreezeCgroup { cgroup } => self.freeze(cgroup, false)?,
            Op::CaptureCgroupProcs { tag, cgroup } => out.captures.push(self.capture(tag, cgroup)?),
            Op::SteerIrq { irq, cpu } => irq::steer(irq, *cpu, &mut self.irqs)?,
            Op::SteerIrqCpus { irq, cpus } => irq::steer_cpus(irq, cpus, &mut self.irqs)?,
            Op::AttachScheduler { scheduler } => out.notes = self.sched.attach(scheduler)?,
            Op::DetachScheduler => out.notes = self.sched.detach()?,
            Op::RestartScheduler => out.notes = self.sched.replace(None)?,
            Op::ReplaceScheduler { scheduler } => out.notes = self.sched.replace(Some(scheduler))?,
            Op::PinBpfMap { name } => out.notes = self.sched.pin_map(name)?,
            // Host-side (monitor) ops, and whatever a newer host sends.
            _ => return Err("not supported by the guest agent yet (host-side ops land with their own issues)".into()),
        }
        Ok(out)
    }

    fn spawn(&mut self, placement: &SpawnPlacement, work: &WorkSpec, owner: Owner) -> Result<(), String> {
        let cgroup = match placement {
            SpawnPlacement::RunnerCgroup => None,
            SpawnPlacement::Cgroup(name) => {
                self.not_frozen(name)?;
                Some(name.as_str())
            }
        };
        let started = workers::spawn(cgroup, work, owner, &self.topo).map_err(|e| match cgroup {
            Some(c) => format!("cgroup {c:?}: {e}"),
            None => format!("runner cgroup: {e}"),
        })?;
        self.workers.extend(started);
        Ok(())
    }

    fn set_affinity(&mut self, cgroup: &str, intent: &AffinityIntent) -> Result<(), String> {
        self.cgroup(cgroup)?;
        self.reap();
        let mine: Vec<&workers::Worker> = self.workers.iter().filter(|w| w.cgroup == cgroup && w.alive).collect();
        if mine.is_empty() {
            return Err(format!("cgroup {cgroup:?} has no running workers to pin: spawn some first"));
        }
        workers::set_affinity(&mine, cgroup, intent, &self.topo).map_err(|e| format!("cgroup {cgroup:?}: {e}"))
    }

    pub(super) fn run_payload(
        &mut self,
        name: &str,
        args: &[String],
        cgroup: Option<&str>,
        owner: Owner,
    ) -> Result<(), String> {
        if let Some(c) = cgroup {
            self.not_frozen(c)?;
        }
        self.reap();
        if self.payloads.iter().any(|p| p.name == name && p.cgroup.as_deref() == cgroup) {
            return Err(format!(
                "payload {name:?} was already started in {} and not waited for or killed yet: wait for or kill it \
                 first, or run it in another cgroup",
                cgroup.map_or_else(|| "the runner's cgroup".to_owned(), |c| format!("cgroup {c:?}"))
            ));
        }
        let p = Payload::start(name, args, cgroup, owner)?;
        self.payloads.push(p);
        Ok(())
    }

    /// wait-payload (`kill` false) or kill-payload: reaps it and returns its exit.
    fn end_payload(
        &mut self,
        name: &str,
        cgroup: Option<&str>,
        kill: bool,
    ) -> Result<schedbox_ops::results::PayloadExit, String> {
        self.reap();
        let live = self.payloads.iter().map(|p| (p.name.as_str(), p.cgroup.as_deref()));
        let i = payload::find(live, name, cgroup)?;
        let mut p = self.payloads.remove(i);
        if kill {
            p.kill();
        } else {
            p.wait_bounded()?;
        }
        Ok(p.exit())
    }
}
