//! Host-side ops: kernel-memory reads and writes (hot: live; cold: inside one
//! freeze rendezvous) and snapshots, through the monitor.

use schedbox_wire::{RequestBody, ResponseBody};

use super::Run;
use crate::op_model::{KernelTarget, KernelValue, KernelValueWidth, KernelWrite, Op};
use crate::results::{KernelRead, Snapshot};

impl Run<'_> {
    /// Runs `op` if it is host-side; `None` for guest-side ops.
    pub(super) fn host_side(&mut self, op: &Op) -> Option<Result<(), String>> {
        Some(match op {
            Op::ReadKernelHot { tag, target, width } => self.read(tag, target, width, false),
            Op::ReadKernelCold { tag, target, width } => self.read(tag, target, width, true),
            Op::WriteKernelHot { writes } => self.write(writes, false),
            Op::WriteKernelCold { writes } => self.write(writes, true),
            Op::CaptureSnapshot { name } => self.snapshot(name),
            _ => return None,
        })
    }

    /// Parks every vCPU, runs `f`, resumes — resuming even when `f` fails.
    fn frozen<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, String>) -> Result<T, String> {
        self.m.pause().map_err(|e| format!("freezing the guest: {e}"))?;
        self.monitor.rendezvous += 1;
        let out = f(self);
        let resumed = self.m.resume().map_err(|e| format!("resuming the guest: {e}"));
        let out = out?;
        resumed?;
        Ok(out)
    }

    fn read(&mut self, tag: &str, target: &KernelTarget, width: &KernelValueWidth, cold: bool) -> Result<(), String> {
        self.monitor.prefetch(self.m, &[target])?;
        let value = if cold {
            self.frozen(|r| r.monitor.read(r.m, target, width))?
        } else {
            self.monitor.read(self.m, target, width)?
        };
        self.results.kernel_reads.push(KernelRead { tag: tag.to_owned(), value });
        Ok(())
    }

    fn write(&mut self, writes: &[KernelWrite], cold: bool) -> Result<(), String> {
        let targets: Vec<&KernelTarget> = writes.iter().map(|w| &w.target).collect();
        self.monitor.prefetch(self.m, &targets)?;
        let all = |r: &mut Self| -> Result<(), String> {
            for (i, w) in writes.iter().enumerate() {
                r.monitor.write(r.m, w).map_err(|e| format!("write {i}: {e}"))?;
            }
            Ok(())
        };
        if cold {
            self.frozen(all)
        } else {
            all(self)
        }
    }

    /// Registers of every vCPU, `jiffies_64` and each CPU's runqueue
    /// `nr_running` and `clock`, all from one rendezvous; plus the sched_ext state.
    fn snapshot(&mut self, name: &str) -> Result<(), String> {
        let sched_ext_state = match self.m.request(RequestBody::ReadFile { path: "/sys/kernel/sched_ext/state".into() })
        {
            Ok(ResponseBody::File(s)) => s.trim().to_owned(),
            _ => "unknown".into(),
        };
        let cpus = self.m.facts().cpus_online.clone();
        let jiffies = KernelTarget::symbol("jiffies_64");
        let rq = |field: &str, cpu: u32| KernelTarget::per_cpu_field("runqueues", field, cpu);
        self.monitor.prefetch(self.m, &[&jiffies, &rq("clock", 0)])?;
        let (vcpus, values) = self.frozen(|r| {
            let vcpus = r.m.vcpu_registers().map_err(|e| e.to_string())?;
            let mut values = vec![("jiffies_64".to_owned(), r.monitor.read(r.m, &jiffies, &KernelValueWidth::U64)?)];
            for &cpu in &cpus {
                let nr = r.monitor.read(r.m, &rq("nr_running", cpu), &KernelValueWidth::U32)?;
                let clock = r.monitor.read(r.m, &rq("clock", cpu), &KernelValueWidth::U64)?;
                values.push((format!("cpu{cpu}.rq.nr_running"), nr));
                values.push((format!("cpu{cpu}.rq.clock"), clock));
            }
            Ok((vcpus, values))
        })?;
        let values: Vec<(String, KernelValue)> = values;
        self.results.snapshots.push(Snapshot { name: name.to_owned(), vcpus, values, sched_ext_state });
        Ok(())
    }
}
