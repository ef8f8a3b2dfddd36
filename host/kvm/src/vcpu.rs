//! vCPU threads: the run loop, exit dispatch, and the parking side of the
//! freeze rendezvous.
//!
//! A vCPU thread owns its `VcpuFd`. The controller asks it to park by
//! setting `attention` and sending [`kick_signal`]; the handler sets the
//! thread's `kvm_run.immediate_exit`, so KVM_RUN returns at once whether the
//! signal lands inside KVM_RUN or just before it. A parked (or halted) thread
//! runs requests — register reads, debug-register writes — on its own fd.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};

use kvm_ioctls::{VcpuExit, VcpuFd};

use crate::bus::{Bus, DeviceAction};
use crate::watch::WatchHit;

/// What one vCPU thread is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuState {
    /// In or around KVM_RUN.
    Running,
    /// Parked by the freeze rendezvous.
    Parked,
    /// Executed HLT with no in-kernel irqchip to wake it; waits for stop.
    Halted,
    /// The thread ended (stop, power-off, triple fault or error).
    Exited,
}

/// Something a vCPU reported; read with `Vm::next_event`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmEvent {
    /// HLT with no in-kernel irqchip: the vCPU stays halted.
    Halted { vcpu: usize },
    /// A hardware watchpoint fired; the vCPU went on.
    Watchpoint(WatchHit),
    /// The guest powered off (ACPI S5 or a system event); the vCPU stopped.
    PowerOff { vcpu: usize },
    /// The guest asked for a reset; the vCPU stopped.
    Reset { vcpu: usize },
    /// Triple fault (KVM_EXIT_SHUTDOWN); the vCPU stopped.
    TripleFault { vcpu: usize },
    /// KVM_RUN failed or exited in a way the VMM cannot handle; the vCPU stopped.
    Failed { vcpu: usize, reason: String },
}

/// Work run on a parked vCPU's thread with its fd.
pub(crate) type Request = Box<dyn FnOnce(&mut VcpuFd) + Send>;

/// Rendezvous state shared by the controller and the vCPU threads.
pub(crate) struct Control {
    /// Fast-path flag: the run loop looks at `shared` only when set.
    pub attention: AtomicBool,
    pub shared: Mutex<Shared>,
    pub changed: Condvar,
    /// Where watchpoint hits go when someone captures them (`Vm::watch_hits`):
    /// the vCPU that hit then stays parked until the next resume.
    pub watch_sink: Mutex<Option<Sender<WatchHit>>>,
}

pub(crate) struct Shared {
    pub pause: bool,
    pub stop: bool,
    pub states: Vec<VcpuState>,
    pub requests: Vec<VecDeque<Request>>,
    /// vCPUs parked by their own watchpoint hit, until the next resume.
    pub held: Vec<bool>,
}

impl Control {
    pub fn new(vcpus: usize) -> Self {
        Self {
            attention: AtomicBool::new(false),
            shared: Mutex::new(Shared {
                pause: false,
                stop: false,
                states: vec![VcpuState::Running; vcpus],
                requests: (0..vcpus).map(|_| VecDeque::new()).collect(),
                held: vec![false; vcpus],
            }),
            changed: Condvar::new(),
            watch_sink: Mutex::new(None),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn wait<'a>(&self, g: MutexGuard<'a, Shared>, t: std::time::Duration) -> MutexGuard<'a, Shared> {
        self.changed.wait_timeout(g, t).unwrap_or_else(|e| e.into_inner()).0
    }
}

thread_local! {
    /// This thread's `kvm_run.immediate_exit`, or null outside a vCPU thread.
    static IMMEDIATE_EXIT: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Only touches a const-initialised thread-local without destructor: async-signal-safe.
    let p = IMMEDIATE_EXIT.with(Cell::get);
    if !p.is_null() {
        // SAFETY: the pointer is set by this thread's run loop to its own
        // kvm_run mapping and cleared before the VcpuFd (and the mapping) is
        // dropped; the signal handler runs on that same thread.
        unsafe { p.write_volatile(1) };
    }
}

/// The real-time signal that kicks a vCPU out of KVM_RUN.
pub(crate) fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN()
}

/// Installs the kick handler once per process.
pub(crate) fn install_kick_handler() -> std::io::Result<()> {
    static RESULT: OnceLock<i32> = OnceLock::new();
    let errno = *RESULT.get_or_init(|| match vmm_sys_util::signal::register_signal_handler(kick_signal(), on_kick) {
        Ok(()) => 0,
        Err(e) => e.errno(),
    });
    match errno {
        0 => Ok(()),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

/// Everything a vCPU thread needs.
pub(crate) struct VcpuThread {
    pub index: usize,
    pub fd: VcpuFd,
    pub control: std::sync::Arc<Control>,
    pub pio: Bus,
    pub mmio: Bus,
    pub events: Sender<VmEvent>,
}

enum Step {
    Continue,
    Halt,
    Watch(WatchHit),
    Stop(VmEvent),
}

impl VcpuThread {
    /// The run loop; returns when the VM stops or this vCPU ends.
    pub fn run(mut self) {
        let ptr: *mut u8 = &mut self.fd.get_kvm_run().immediate_exit;
        IMMEDIATE_EXIT.with(|c| c.set(ptr));
        let i = self.index;
        loop {
            if self.control.attention.load(Ordering::Acquire) && !self.park(false) {
                break;
            }
            let step = match self.fd.run() {
                Ok(exit) => dispatch(i, exit, &self.pio, &self.mmio),
                Err(e) if e.errno() == libc::EINTR => {
                    self.fd.set_kvm_immediate_exit(0);
                    Step::Continue
                }
                Err(e) if e.errno() == libc::EAGAIN => Step::Continue,
                Err(e) => Step::Stop(VmEvent::Failed { vcpu: i, reason: format!("KVM_RUN: {e}") }),
            };
            match step {
                Step::Continue => {}
                Step::Halt => {
                    let _ = self.events.send(VmEvent::Halted { vcpu: i });
                    if !self.park(true) {
                        break;
                    }
                }
                Step::Watch(hit) => {
                    let sink = self.control.watch_sink.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    match sink {
                        // Stop right at the hit; the capture resumes every vCPU.
                        Some(tx) => {
                            // Held before the hit is sent: the capture's resume must find it set.
                            self.control.lock().held[i] = true;
                            if tx.send(hit).is_err() {
                                // Nobody captures any more: report the hit and go on.
                                self.control.lock().held[i] = false;
                                let _ = self.events.send(VmEvent::Watchpoint(hit));
                            } else if !self.park(false) {
                                break;
                            }
                        }
                        None => {
                            let _ = self.events.send(VmEvent::Watchpoint(hit));
                        }
                    }
                }
                Step::Stop(mut ev) => {
                    if let (VmEvent::Failed { reason, .. }, Ok(regs)) = (&mut ev, self.fd.get_regs()) {
                        reason.push_str(&format!(" at RIP {:#x}", regs.rip));
                    }
                    tracing::debug!(vcpu = i, ?ev, "vCPU stopped");
                    let _ = self.events.send(ev);
                    break;
                }
            }
        }
        IMMEDIATE_EXIT.with(|c| c.set(std::ptr::null_mut()));
        let mut s = self.control.lock();
        s.states[i] = VcpuState::Exited;
        s.requests[i].clear();
        drop(s);
        self.control.changed.notify_all();
    }

    /// Waits while paused (or forever when `halted`), serving requests.
    /// Returns false when the VM is stopping.
    fn park(&mut self, halted: bool) -> bool {
        let i = self.index;
        let mut told_clock = false;
        let mut s = self.control.lock();
        loop {
            if s.stop {
                return false;
            }
            if let Some(req) = s.requests[i].pop_front() {
                drop(s);
                req(&mut self.fd);
                s = self.control.lock();
                continue;
            }
            let want = if halted {
                VcpuState::Halted
            } else if s.pause || s.held[i] {
                VcpuState::Parked
            } else {
                VcpuState::Running
            };
            if want == VcpuState::Parked && !told_clock {
                // Tell a kvmclock guest it was paused (no soft-lockup
                // warnings); EINVAL when the guest has no kvmclock.
                drop(s);
                let _ = self.fd.kvmclock_ctrl();
                told_clock = true;
                s = self.control.lock();
                continue;
            }
            if s.states[i] != want {
                s.states[i] = want;
                self.control.changed.notify_all();
            }
            if want == VcpuState::Running {
                return true;
            }
            s = self.control.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn dispatch(i: usize, exit: VcpuExit<'_>, pio: &Bus, mmio: &Bus) -> Step {
    let action = match exit {
        VcpuExit::IoOut(port, data) => pio.write(u64::from(port), data).unwrap_or(DeviceAction::None),
        VcpuExit::IoIn(port, data) => {
            pio.read(u64::from(port), data);
            DeviceAction::None
        }
        VcpuExit::MmioWrite(addr, data) => {
            if mmio.write(addr, data).is_none() {
                tracing::trace!(vcpu = i, addr, "MMIO write to nothing");
            }
            DeviceAction::None
        }
        VcpuExit::MmioRead(addr, data) => {
            mmio.read(addr, data);
            DeviceAction::None
        }
        VcpuExit::Hlt => return Step::Halt,
        VcpuExit::Shutdown => return Step::Stop(VmEvent::TripleFault { vcpu: i }),
        VcpuExit::Debug(arch) => {
            return Step::Watch(WatchHit { vcpu: i, slots: (arch.dr6 & 0xf) as u8, rip: arch.pc, dr6: arch.dr6 })
        }
        VcpuExit::SystemEvent(kind, _) => match kind {
            kvm_bindings::KVM_SYSTEM_EVENT_RESET => DeviceAction::Reset,
            _ => DeviceAction::PowerOff,
        },
        VcpuExit::IrqWindowOpen | VcpuExit::Intr => DeviceAction::None,
        VcpuExit::FailEntry(reason, cpu) => {
            return Step::Stop(VmEvent::Failed {
                vcpu: i,
                reason: format!("VM entry failed (hardware reason {reason:#x} on CPU {cpu})"),
            })
        }
        VcpuExit::InternalError => {
            return Step::Stop(VmEvent::Failed { vcpu: i, reason: "KVM internal error (emulation failed?)".into() })
        }
        other => return Step::Stop(VmEvent::Failed { vcpu: i, reason: format!("unhandled exit {other:?}") }),
    };
    match action {
        DeviceAction::None => Step::Continue,
        DeviceAction::PowerOff => Step::Stop(VmEvent::PowerOff { vcpu: i }),
        DeviceAction::Reset => Step::Stop(VmEvent::Reset { vcpu: i }),
    }
}
