//! Host-side ops: kernel-memory reads and writes (hot: live; cold: inside one
//! freeze rendezvous), snapshots and watchpoint snapshots, through the monitor.
//! A host-initiated batch ([`run_host_ops`]) takes the same path as a scenario's op.

use schedbox_wire::{RequestBody, ResponseBody};

use super::{PayloadDefaults, Run};
use crate::machine::Machine;
use crate::monitor::Monitor;
use crate::op_model::{KernelTarget, KernelValue, KernelValueWidth, KernelWrite, Op};
use crate::results::{KernelRead, Results, Snapshot};
use crate::validate::MAX_WATCHES;

/// What a host-initiated batch of host-side ops produced.
#[derive(Debug, Default)]
pub struct HostOpsOutcome {
    pub results: Results,
    /// One entry per op: `Err` names the op index and why.
    pub outcomes: Vec<Result<(), String>>,
    pub rendezvous: u64,
}

/// Runs host-side `ops` on `m` outside a scenario stream (no agent scenario
/// framing): the same code a scenario's op runs. Watches armed by the batch
/// are removed before it returns, their snapshots included. Guest-side ops are
/// refused per op.
pub fn run_host_ops(m: &mut dyn Machine, ops: &[Op]) -> HostOpsOutcome {
    static NO_PAYLOADS: PayloadDefaults = PayloadDefaults::new();
    static NO_REQUESTS: super::GuestGrants = super::GuestGrants { reads_refused: None };
    let monitor = Monitor::new(m.vmlinux().to_owned());
    let mut run = Run {
        m,
        progress: &mut super::NoProgress,
        payloads: &NO_PAYLOADS,
        results: Results::default(),
        monitor,
        notes: Vec::new(),
        watches: 0,
        watch_log: Default::default(),
        // No scenario runs, so no guest request is served here.
        grants: &NO_REQUESTS,
        guest_budget: super::guest_requests::Budget::new(std::time::Instant::now()),
    };
    let mut outcomes: Vec<Result<(), String>> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let name = op.kind().wit_name();
            run.host_side(op)
                .unwrap_or_else(|| Err("a guest-side op; run it in a scenario".into()))
                .map_err(|e| format!("op {i} ({name}): {e}"))
        })
        .collect();
    if let Err(e) = run.end_watches() {
        outcomes.push(Err(e));
    }
    HostOpsOutcome { results: run.results, outcomes, rendezvous: run.monitor.rendezvous }
}

impl Run<'_> {
    /// Runs `op` if it is host-side; `None` for guest-side ops.
    pub(super) fn host_side(&mut self, op: &Op) -> Option<Result<(), String>> {
        Some(match op {
            Op::ReadKernelHot { tag, target, width } => self.read(tag, target, width, false),
            Op::ReadKernelCold { tag, target, width } => self.read(tag, target, width, true),
            Op::WriteKernelHot { writes } => self.write(writes, false),
            Op::WriteKernelCold { writes } => self.write(writes, true),
            Op::CaptureSnapshot { name } => self.snapshot(name),
            Op::WatchSnapshot { symbol } => self.watch(symbol),
            _ => return None,
        })
    }

    /// Parks every vCPU, runs `f`, resumes — resuming even when `f` fails.
    fn frozen<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, String>) -> Result<T, String> {
        self.m.pause().map_err(|e| format!("freezing the guest: {e}"))?;
        self.monitor.rendezvous += 1;
        self.monitor.set_frozen(true);
        let out = f(self);
        self.monitor.set_frozen(false);
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

impl Run<'_> {
    /// Arms a data-write watchpoint on `symbol`; each hit captures a snapshot
    /// tagged with the symbol. At most [`MAX_WATCHES`] per scenario; watching an
    /// already watched symbol again (a looping hold repeats its step's ops) is a no-op.
    fn watch(&mut self, symbol: &str) -> Result<(), String> {
        if self.watch_log.is_armed(symbol) {
            return Ok(());
        }
        if self.watches >= MAX_WATCHES {
            return Err(format!(
                "a watch on {symbol:?} would be watch number {} in this scenario; at most {MAX_WATCHES} are allowed \
                 (hardware slot 0 is reserved): drop one, or use capture-snapshot",
                self.watches + 1
            ));
        }
        let (kva, plan) = self.monitor.watch_plan(self.m, symbol)?;
        self.m
            .arm_watchpoint(kva, 4, plan.handler(self.watch_log.clone()))
            .map_err(|e| format!("arming a write watchpoint on {symbol:?} at {kva:#x}: {e}"))?;
        self.watches += 1;
        self.watch_log.mark_armed(symbol);
        tracing::debug!("watching {symbol:?} at {kva:#x}");
        Ok(())
    }

    /// Removes the scenario's watchpoints and adds their snapshots to the results.
    pub(super) fn end_watches(&mut self) -> Result<(), String> {
        if self.watches == 0 {
            return Ok(());
        }
        self.watches = 0;
        let removed = self.m.disarm_watchpoints().map_err(|e| format!("removing the watchpoints: {e}"));
        self.results.snapshots.extend(self.watch_log.drain());
        removed
    }
}
