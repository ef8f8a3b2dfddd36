//! Watchpoints on the kvm backend: DR1–DR3 of every vCPU through
//! KVM_SET_GUEST_DEBUG. The vCPU that hits parks itself right after the
//! write (`Vm::watch_hits`); a watch thread then parks the others, runs the
//! handler with every vCPU's registers, and resumes them all. A capture holds
//! the gate, so it never overlaps a freeze.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use schedbox_kvm::linux::LinuxVm;
use schedbox_kvm::{WatchKind, Watchpoint};
use schedbox_ops::results::VcpuRegisters;

use crate::machine::capture_gate::{CaptureGate, CAPTURE_WAIT, FREEZE_WAIT};
use crate::machine::{GuestRam, MachineError, WatchHandler, WatchHit};

/// DR1–DR3 (DR0 is the VMM's own).
pub const SLOTS: usize = 3;

struct Armed {
    point: Watchpoint,
    handler: WatchHandler,
}

/// The armed watchpoints and the thread capturing their hits.
pub struct Watches {
    armed: Arc<Mutex<Vec<Armed>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watches {
    pub fn new() -> Self {
        Self { armed: Arc::default(), stop: Arc::default(), thread: None }
    }

    /// Arms a write watchpoint on `len` bytes at `addr` on every vCPU.
    pub fn arm(
        &mut self,
        guest: &Arc<LinuxVm>,
        gate: &Arc<CaptureGate>,
        ram: &Arc<GuestRam>,
        addr: u64,
        len: u64,
        handler: WatchHandler,
    ) -> Result<(), MachineError> {
        if !matches!(len, 1 | 2 | 4 | 8) || !addr.is_multiple_of(len) {
            return Err(MachineError::Unsupported(format!(
                "a watchpoint covers 1, 2, 4 or 8 bytes at an address aligned to its length; {addr:#x} (+{len}) is not"
            )));
        }
        if self.thread.is_none() {
            let hits = guest.vm.watch_hits();
            let (guest, gate, ram, armed, stop) =
                (guest.clone(), gate.clone(), ram.clone(), self.armed.clone(), self.stop.clone());
            self.thread = Some(
                std::thread::Builder::new()
                    .name("kvm-watch".into())
                    .spawn(move || capture_loop(hits, &guest, &gate, &ram, &armed, &stop))?,
            );
        }
        // Only this thread (the machine's owner) changes the set, so it can be
        // read, programmed and extended without holding the lock across the gate.
        let mut points: Vec<Watchpoint> =
            self.armed.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|a| a.point).collect();
        let slot = (1..=SLOTS as u8).find(|s| !points.iter().any(|p| p.slot == *s)).ok_or_else(|| {
            MachineError::Unsupported(format!("all {SLOTS} hardware watchpoints (DR1–DR3) are in use"))
        })?;
        let point = Watchpoint { slot, addr, len: len as u8, kind: WatchKind::Write };
        points.push(point);
        // The handler goes in first: a hit right after the registers are set finds it.
        self.armed.lock().unwrap_or_else(|p| p.into_inner()).push(Armed { point, handler });
        if let Err(e) = program(guest, gate, &points) {
            self.armed.lock().unwrap_or_else(|p| p.into_inner()).retain(|a| a.point.slot != slot);
            return Err(e);
        }
        Ok(())
    }

    /// Removes every watchpoint; no handler runs after it returns.
    pub fn disarm(&mut self, guest: &LinuxVm, gate: &CaptureGate) -> Result<(), MachineError> {
        if self.armed.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
            return Ok(());
        }
        // The gate first, the handlers after: a capture in flight holds the gate
        // and then takes the handlers, so the other order could deadlock.
        program(guest, gate, &[])?;
        // Hits queued before the registers were cleared find no handler.
        self.armed.lock().unwrap_or_else(|p| p.into_inner()).clear();
        Ok(())
    }

    /// Stops the capture thread (before the VM goes).
    pub fn shut_down(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Sets the debug registers of every vCPU to `points`, with the VM paused.
fn program(guest: &LinuxVm, gate: &CaptureGate, points: &[Watchpoint]) -> Result<(), MachineError> {
    gate.enter("watchpoint arm", FREEZE_WAIT)?;
    let done = (|| {
        guest.vm.pause().map_err(|e| MachineError::Unsupported(format!("parking the vCPUs: {e}")))?;
        let set = guest.vm.set_watchpoints(points).map_err(|e| MachineError::Unsupported(e.to_string()));
        let resumed = guest.vm.resume().map_err(|e| MachineError::Unsupported(format!("resuming the vCPUs: {e}")));
        set.and(resumed)
    })();
    gate.leave();
    done
}

/// Every vCPU's RIP, RSP and CR3 (the VM paused).
pub fn registers(guest: &LinuxVm) -> Result<Vec<VcpuRegisters>, MachineError> {
    (0..guest.vm.states().len())
        .map(|i| {
            let (r, s) = guest.vm.registers(i).map_err(|e| MachineError::Unsupported(e.to_string()))?;
            Ok(VcpuRegisters { cpu: i as u32, rip: r.rip, rsp: r.rsp, cr3: s.cr3 })
        })
        .collect()
}

fn capture_loop(
    hits: Receiver<schedbox_kvm::WatchHit>,
    guest: &LinuxVm,
    gate: &CaptureGate,
    ram: &GuestRam,
    armed: &Mutex<Vec<Armed>>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Acquire) {
        let hit = match hits.recv_timeout(Duration::from_millis(100)) {
            Ok(hit) => hit,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let at = Instant::now();
        if let Err(e) = gate.enter("watchpoint capture", CAPTURE_WAIT) {
            // The hitting vCPU stays parked; whoever holds the gate resumes it.
            tracing::error!("watchpoint hit on vCPU {}: no capture taken: {e}", hit.vcpu);
            continue;
        }
        match guest.vm.pause() {
            Ok(_) => {
                let vcpus = registers(guest).unwrap_or_else(|e| {
                    tracing::warn!("registers at the watchpoint hit: {e}");
                    Vec::new()
                });
                let mut armed = armed.lock().unwrap_or_else(|p| p.into_inner());
                let fired = armed.iter_mut().filter(|a| hit.slots & (1 << a.point.slot) != 0);
                for a in fired {
                    (a.handler)(WatchHit { addr: a.point.addr, at, vcpus: vcpus.clone(), ram });
                }
            }
            Err(e) => tracing::error!("watchpoint hit on vCPU {}: parking the others: {e}", hit.vcpu),
        }
        if let Err(e) = guest.vm.resume() {
            tracing::error!("resuming after a watchpoint capture: {e}");
        }
        gate.leave();
    }
}
