//! The one booted guest of `schedbox watch`, its verified reset between runs, and the
//! reboot when a reset cannot be verified.

use std::path::PathBuf;
use std::time::Instant;

use schedbox::machine::Machine;
use schedbox::op_model::Topology;
use schedbox_wire::{RequestBody, ResetReport, ResponseBody};
use serde_json::json;

use super::super::vm::{boot_with, GuestArgs};
use super::super::Failure;
use super::events::Events;

/// A booted guest and what it takes to boot it again.
pub struct Guest {
    machine: Option<Box<dyn Machine>>,
    pub topology: Topology,
    args: GuestArgs,
    staged: Vec<(String, PathBuf)>,
}

/// How a reset went.
pub struct ResetOutcome {
    /// The agent's report (absent when the request itself failed).
    pub report: Option<ResetReport>,
    pub verified: bool,
    /// Why the reset was not verified (and the guest rebooted).
    pub reason: Option<String>,
    pub rebooted: bool,
    /// The reset's round trip as the host saw it, ms.
    pub ms: f64,
}

impl Guest {
    /// Boots a guest of `topology` with `staged` files (payloads, schedulers).
    pub fn boot(
        args: &GuestArgs,
        topology: Topology,
        staged: Vec<(String, PathBuf)>,
        events: &mut Events,
    ) -> Result<Self, Failure> {
        let mut args = args.clone();
        args.topology = topology.to_string();
        let mut g = Self { machine: None, topology, args, staged };
        g.start(events)?;
        Ok(g)
    }

    fn start(&mut self, events: &mut Events) -> Result<(), Failure> {
        let t0 = Instant::now();
        eprintln!("booting a {} guest", self.topology);
        let staged = self.staged.clone();
        let m = boot_with(&self.args, |req| req.staged = staged)?;
        let ms = t0.elapsed().as_millis() as u64;
        events.emit("booted", json!({ "topology": self.topology.to_string(), "boot_ms": ms }));
        eprintln!("guest ready in {ms} ms");
        self.machine = Some(m);
        Ok(())
    }

    /// The machine. A guest is never without one between the public calls.
    pub fn machine(&mut self) -> &mut dyn Machine {
        self.machine.as_deref_mut().expect("a booted guest always holds its machine")
    }

    /// Resets the guest and verifies it clean in the guest; reboots it when that fails.
    /// `Err` only when the reboot fails too.
    pub fn reset(&mut self, events: &mut Events) -> Result<ResetOutcome, Failure> {
        let t0 = Instant::now();
        // A reset restores the boot scheduler, whose start may outlast the request timeout.
        let answer = self.machine().request_within(RequestBody::Reset, schedbox_wire::SCHEDULER_START_WAIT);
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let (report, reason) = match answer {
            Ok(ResponseBody::Reset(r)) if r.verified() => (Some(r), None),
            Ok(ResponseBody::Reset(r)) => {
                let left: Vec<String> = [&r.cgroups, &r.tasks, &r.scheduler, &r.frozen]
                    .iter()
                    .flat_map(|c| c.remaining.iter().cloned())
                    .collect();
                let why = format!("the guest still shows {} after cleaning", left.join(", "));
                (Some(r), Some(why))
            }
            Ok(other) => (None, Some(format!("the agent answered Reset with {other:?} (an older agent?)"))),
            Err(e) => (None, Some(format!("the reset request failed: {e}"))),
        };
        let mut out = ResetOutcome { verified: reason.is_none(), report, reason, rebooted: false, ms };
        if let Some(why) = &out.reason {
            eprintln!("guest reset could not be verified ({why}); rebooting the guest");
            if let Some(m) = self.machine.take() {
                if let Err(e) = m.power_off() {
                    tracing::debug!("power-off before the reboot: {e}");
                }
            }
            out.rebooted = true;
            self.emit(&out, events);
            self.start(events)?;
            return Ok(out);
        }
        self.emit(&out, events);
        Ok(out)
    }

    fn emit(&self, o: &ResetOutcome, events: &mut Events) {
        let check = |c: Option<&schedbox_wire::ResetCheck>| match c {
            Some(c) => json!({ "found": c.found, "remaining": c.remaining }),
            None => json!(null),
        };
        let r = o.report.as_ref();
        events.emit(
            "reset",
            json!({
                "verified": o.verified,
                "rebooted": o.rebooted,
                "reason": o.reason,
                "ms": o.ms,
                "guest_us": r.map(|r| r.guest_us),
                "checked": {
                    "cgroups": check(r.map(|r| &r.cgroups)),
                    "tasks": check(r.map(|r| &r.tasks)),
                    "scheduler": check(r.map(|r| &r.scheduler)),
                    "frozen": check(r.map(|r| &r.frozen)),
                    "irqs": check(r.map(|r| &r.irqs)),
                },
                "actions": r.map(|r| r.actions.clone()).unwrap_or_default(),
                "kept": r.map(|r| r.kept.clone()).unwrap_or_default(),
            }),
        );
        if let Some(r) = r.filter(|_| o.verified) {
            let found: Vec<String> = [
                ("cgroup", &r.cgroups),
                ("task", &r.tasks),
                ("scheduler", &r.scheduler),
                ("frozen", &r.frozen),
                ("steered IRQ", &r.irqs),
            ]
            .iter()
            .filter(|(_, c)| !c.found.is_empty())
            .map(|(what, c)| format!("{} {what}(s)", c.found.len()))
            .collect();
            if found.is_empty() {
                eprintln!("guest reset: verified clean in {:.1} ms (nothing was left)", o.ms);
            } else {
                eprintln!(
                    "guest reset: verified clean in {:.1} ms; it found {} and cleaned them: {}",
                    o.ms,
                    found.join(", "),
                    r.actions.join("; ")
                );
            }
        }
    }

    /// Powers the guest off (killing the VM if the agent does not comply).
    pub fn power_off(mut self) {
        if let Some(m) = self.machine.take() {
            match m.power_off() {
                Ok(()) => {}
                // Ctrl-C on a terminal reaches QEMU too (same process group): it may be gone already.
                Err(e) if super::signals::received().is_some() => tracing::debug!("power-off: {e}"),
                Err(e) => tracing::warn!("power-off: {e}"),
            }
        }
    }
}
