//! A VM: guest memory, device buses, vCPU threads and the freeze rendezvous.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvm_bindings::{kvm_clock_data, kvm_pit_config, kvm_regs, kvm_sregs, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};
use vmm_sys_util::signal::Killable;

use crate::bus::{Bus, SharedDevice};
use crate::error::{KvmError, Result};
use crate::memory::GuestMemory;
use crate::serial::{SerialDevice, SerialOutput};
use crate::vcpu::{install_kick_handler, kick_signal, Control, Request, VcpuState, VcpuThread, VmEvent};
use crate::virtio::{MmioTransport, VirtioConsole, MMIO_SIZE};
use crate::watch::{guest_debug, Watchpoint};

/// How long the freeze rendezvous waits for every vCPU to park.
const RENDEZVOUS_DEADLINE: Duration = Duration::from_secs(5);
/// Re-kick period while waiting (a signal can land between checks).
const REKICK: Duration = Duration::from_millis(10);
/// How long a request to a parked vCPU may take.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// Where the in-kernel irqchip's TSS and identity map live (below 4 GiB, in the hole).
const TSS_ADDRESS: usize = 0xfffb_d000;
const IDENTITY_MAP_ADDRESS: u64 = 0xfffb_c000;

/// The shape of a VM.
#[derive(Clone, Debug)]
pub struct VmConfig {
    pub vcpus: usize,
    /// Bytes of RAM, a multiple of 4 KiB.
    pub memory: u64,
    /// In-kernel IOAPIC/PIC/LAPIC and PIT (what Linux needs); without it HLT exits to the VMM.
    pub irqchip: bool,
}

/// A byte channel to the guest: a 16550 added with [`Vm::add_serial`] or a
/// virtio console added with [`Vm::add_virtio_console`].
#[derive(Clone)]
pub struct SerialPort {
    /// Everything the guest transmitted.
    pub output: Arc<SerialOutput>,
    input: PortInput,
}

/// The device behind a [`SerialPort`], for host input.
#[derive(Clone)]
enum PortInput {
    Uart(Arc<Mutex<SerialDevice>>),
    Virtio(Arc<Mutex<MmioTransport<VirtioConsole>>>),
}

impl SerialPort {
    /// Queues bytes for the guest to receive; returns how many were taken
    /// (what fits in the 16550's FIFO, or in the virtio console's 1 MiB
    /// pending buffer). 0 means full: retry once the guest has read.
    pub fn send(&self, data: &[u8]) -> usize {
        match &self.input {
            PortInput::Uart(d) => d.lock().unwrap_or_else(|e| e.into_inner()).feed(data),
            PortInput::Virtio(d) => d.lock().unwrap_or_else(|e| e.into_inner()).send(data),
        }
    }
}

/// What [`Vm::pause`] observed.
#[derive(Clone, Debug)]
pub struct PauseReport {
    /// Every vCPU's state once the rendezvous completed (none `Running`).
    pub states: Vec<VcpuState>,
    /// Request → every vCPU observed parked.
    pub latency: Duration,
}

/// Whether the VM is paused, and the kvmclock saved at the pause.
#[derive(Default)]
struct PauseState {
    paused: bool,
    saved_clock: Option<kvm_clock_data>,
}

/// A VM with its vCPU threads. Dropping it stops and joins every thread
/// before closing the VM and unmapping guest memory.
pub struct Vm {
    control: Arc<Control>,
    threads: Vec<JoinHandle<()>>,
    /// In a mutex so a `Vm` can be shared (the watch thread of a capture uses it too).
    events: Mutex<Receiver<VmEvent>>,
    event_tx: mpsc::Sender<VmEvent>,
    pio: Bus,
    mmio: Bus,
    config: VmConfig,
    pause_state: Mutex<PauseState>,
    /// KVM vCPU ids (the initial APIC IDs), by vCPU index.
    vcpu_ids: Vec<u64>,
    // Field order matters: the VM fd closes before its memory is unmapped.
    vm: VmFd,
    kvm: Kvm,
    memory: Arc<GuestMemory>,
}

impl Vm {
    /// Opens /dev/kvm, creates the VM and its memory. vCPUs start with [`Vm::start`].
    pub fn new(config: VmConfig) -> Result<Self> {
        if config.vcpus == 0 {
            return Err(KvmError::Invalid("a VM needs at least one vCPU".into()));
        }
        let kvm = Kvm::new().map_err(|e| KvmError::open(std::io::Error::from_raw_os_error(e.errno())))?;
        let api = kvm.get_api_version();
        if api != kvm_bindings::KVM_API_VERSION as i32 {
            return Err(KvmError::ApiVersion(api));
        }
        if !kvm.check_extension(Cap::UserMemory) {
            return Err(KvmError::MissingCapability("KVM_CAP_USER_MEMORY"));
        }
        let max = kvm.get_max_vcpus();
        if config.vcpus > max {
            return Err(KvmError::Invalid(format!("{} vCPUs asked, KVM allows {max}", config.vcpus)));
        }
        let vm = kvm.create_vm().map_err(|e| KvmError::ioctl("KVM_CREATE_VM", e))?;
        let memory = Arc::new(GuestMemory::new(config.memory)?);
        memory.register(&vm)?;
        if config.irqchip {
            vm.set_tss_address(TSS_ADDRESS).map_err(|e| KvmError::ioctl("KVM_SET_TSS_ADDR", e))?;
            vm.set_identity_map_address(IDENTITY_MAP_ADDRESS)
                .map_err(|e| KvmError::ioctl("KVM_SET_IDENTITY_MAP_ADDR", e))?;
            vm.create_irq_chip().map_err(|e| KvmError::ioctl("KVM_CREATE_IRQCHIP", e))?;
            let pit = kvm_pit_config { flags: KVM_PIT_SPEAKER_DUMMY, ..Default::default() };
            vm.create_pit2(pit).map_err(|e| KvmError::ioctl("KVM_CREATE_PIT2", e))?;
        }
        install_kick_handler()
            .map_err(|source| KvmError::Ioctl { what: "installing the vCPU kick signal handler", source })?;
        let (event_tx, events) = mpsc::channel();
        let vcpu_ids = (0..config.vcpus as u64).collect();
        Ok(Self {
            control: Arc::new(Control::new(config.vcpus)),
            threads: Vec::new(),
            events: Mutex::new(events),
            event_tx,
            pio: Bus::default(),
            mmio: Bus::default(),
            config,
            pause_state: Mutex::new(PauseState::default()),
            vcpu_ids,
            vm,
            kvm,
            memory,
        })
    }

    /// The /dev/kvm handle (for supported CPUID and capabilities).
    pub fn kvm(&self) -> &Kvm {
        &self.kvm
    }

    /// The VM fd.
    pub fn fd(&self) -> &VmFd {
        &self.vm
    }

    /// Guest RAM (shared; stays mapped while any clone lives).
    pub fn memory(&self) -> &Arc<GuestMemory> {
        &self.memory
    }

    /// Maps a port I/O device; only before [`Vm::start`].
    pub fn add_pio(&mut self, base: u16, len: u16, device: SharedDevice) -> Result<()> {
        self.check_not_started()?;
        self.pio.insert(u64::from(base), u64::from(len), device)
    }

    /// Maps an MMIO device; only before [`Vm::start`].
    pub fn add_mmio(&mut self, base: u64, len: u64, device: SharedDevice) -> Result<()> {
        self.check_not_started()?;
        self.mmio.insert(base, len, device)
    }

    /// Adds a 16550 at `port` (8 registers), wired to `irq` when the VM has an irqchip.
    pub fn add_serial(&mut self, port: u16, irq: u32) -> Result<SerialPort> {
        let output = Arc::new(SerialOutput::default());
        let dev = SerialDevice::new(output.clone())?;
        if self.config.irqchip {
            self.vm.register_irqfd(dev.irq_fd(), irq).map_err(|e| KvmError::ioctl("KVM_IRQFD", e))?;
        }
        let device = Arc::new(Mutex::new(dev));
        self.add_pio(port, 8, device.clone())?;
        Ok(SerialPort { output, input: PortInput::Uart(device) })
    }

    /// Adds a virtio console on virtio-mmio at `base` ([`MMIO_SIZE`] bytes),
    /// its interrupt wired to `irq` (to be edge-triggered) when the VM has an
    /// irqchip; only before [`Vm::start`]. The guest must be told of it (ACPI).
    pub fn add_virtio_console(&mut self, base: u64, irq: u32) -> Result<SerialPort> {
        self.check_not_started()?;
        let output = Arc::new(SerialOutput::default());
        let dev = MmioTransport::new(VirtioConsole::new(output.clone()), self.memory.clone())?;
        if self.config.irqchip {
            self.vm.register_irqfd(dev.irq_fd(), irq).map_err(|e| KvmError::ioctl("KVM_IRQFD", e))?;
        }
        let device = Arc::new(Mutex::new(dev));
        self.add_mmio(base, MMIO_SIZE, device.clone())?;
        Ok(SerialPort { output, input: PortInput::Virtio(device) })
    }

    fn check_not_started(&self) -> Result<()> {
        if self.threads.is_empty() {
            Ok(())
        } else {
            Err(KvmError::Invalid("devices must be added before the vCPUs start".into()))
        }
    }

    /// Sets each vCPU's KVM id, which the in-kernel LAPIC uses as its initial
    /// APIC ID (default: the index); only before [`Vm::start`].
    pub fn set_vcpu_ids(&mut self, ids: Vec<u64>) -> Result<()> {
        self.check_not_started()?;
        if ids.len() != self.config.vcpus {
            return Err(KvmError::Invalid(format!("{} vCPU ids for {} vCPUs", ids.len(), self.config.vcpus)));
        }
        self.vcpu_ids = ids;
        Ok(())
    }

    /// Creates every vCPU, lets `init` set its state (registers, CPUID, …),
    /// then starts one thread per vCPU.
    pub fn start(&mut self, mut init: impl FnMut(usize, &mut VcpuFd) -> Result<()>) -> Result<()> {
        self.check_not_started()?;
        let mut fds = Vec::with_capacity(self.config.vcpus);
        for i in 0..self.config.vcpus {
            let mut fd = self.vm.create_vcpu(self.vcpu_ids[i]).map_err(|e| KvmError::ioctl("KVM_CREATE_VCPU", e))?;
            init(i, &mut fd)?;
            fds.push(fd);
        }
        for (index, fd) in fds.into_iter().enumerate() {
            let t = VcpuThread {
                index,
                fd,
                control: self.control.clone(),
                pio: self.pio.clone(),
                mmio: self.mmio.clone(),
                events: self.event_tx.clone(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("vcpu{index}"))
                .spawn(move || t.run())
                .map_err(|source| KvmError::Thread { index, source })?;
            self.threads.push(handle);
        }
        tracing::debug!(vcpus = self.threads.len(), "vCPUs started");
        Ok(())
    }

    /// The next event, waiting up to `timeout`.
    pub fn next_event(&self, timeout: Duration) -> Option<VmEvent> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).recv_timeout(timeout).ok()
    }

    /// Every vCPU's state now.
    pub fn states(&self) -> Vec<VcpuState> {
        self.control.lock().states.clone()
    }

    /// The freeze rendezvous: parks every vCPU thread (kick + immediate_exit),
    /// waits until all are observed out of KVM_RUN, and saves the guest's
    /// kvmclock so [`Vm::resume`] can hide the pause from it. Pausing a
    /// paused VM returns at once (callers serialise their captures).
    pub fn pause(&self) -> Result<PauseReport> {
        let t0 = Instant::now();
        let mut ps = self.pause_state.lock().unwrap_or_else(|e| e.into_inner());
        if ps.paused {
            // Already frozen: keep the clock saved at the first pause.
            return Ok(PauseReport { states: self.states(), latency: Duration::ZERO });
        }
        {
            let mut s = self.control.lock();
            s.pause = true;
            self.control.attention.store(true, Ordering::Release);
        }
        let deadline = t0 + RENDEZVOUS_DEADLINE;
        let mut s = self.control.lock();
        loop {
            let running: Vec<usize> =
                s.states.iter().enumerate().filter(|(_, st)| **st == VcpuState::Running).map(|(i, _)| i).collect();
            if running.is_empty() {
                break;
            }
            for &i in &running {
                // A thread not yet joined keeps a valid pthread id, so the signal is safe.
                let _ = self.threads.get(i).map(|t| t.kill(kick_signal()));
            }
            if Instant::now() >= deadline {
                drop(s);
                self.release();
                return Err(KvmError::RendezvousTimeout { ms: RENDEZVOUS_DEADLINE.as_millis() as u64, running });
            }
            s = self.control.wait(s, REKICK);
        }
        let latency = t0.elapsed();
        let states = s.states.clone();
        drop(s);
        ps.paused = true;
        ps.saved_clock = if self.kvm.check_extension(Cap::AdjustClock) { self.vm.get_clock().ok() } else { None };
        tracing::trace!(?latency, "vCPUs parked");
        Ok(PauseReport { states, latency })
    }

    /// The VM's kvmclock (ns), where KVM can read it (KVM_CAP_ADJUST_CLOCK).
    pub fn guest_clock_ns(&self) -> Option<u64> {
        if !self.kvm.check_extension(Cap::AdjustClock) {
            return None;
        }
        self.vm.get_clock().ok().map(|c| c.clock)
    }

    /// Restores the saved kvmclock and releases every parked vCPU at once
    /// (also those held by their own watchpoint hit).
    pub fn resume(&self) -> Result<()> {
        let mut ps = self.pause_state.lock().unwrap_or_else(|e| e.into_inner());
        if !ps.paused {
            return Ok(());
        }
        if let Some(saved) = ps.saved_clock.take() {
            let clock = kvm_clock_data { clock: saved.clock, ..Default::default() };
            self.vm.set_clock(&clock).map_err(|e| KvmError::ioctl("KVM_SET_CLOCK", e))?;
        }
        ps.paused = false;
        drop(ps);
        self.release();
        Ok(())
    }

    fn release(&self) {
        let mut s = self.control.lock();
        s.pause = false;
        s.held.iter_mut().for_each(|h| *h = false);
        self.control.attention.store(s.stop, Ordering::Release);
        drop(s);
        self.control.changed.notify_all();
    }

    /// Watchpoint hits from now on: the vCPU that hit stays parked (its
    /// registers are those right after the access) until the next
    /// [`Vm::resume`], which the receiver is expected to do after a
    /// [`Vm::pause`] of the rest. Without a receiver, hits are [`VmEvent::Watchpoint`]s.
    pub fn watch_hits(&self) -> Receiver<crate::watch::WatchHit> {
        let (tx, rx) = mpsc::channel();
        *self.control.watch_sink.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        rx
    }

    /// Runs `f` on vCPU `index`'s thread with its fd; the vCPU must be parked or halted.
    pub fn with_vcpu<T: Send + 'static>(
        &self,
        index: usize,
        f: impl FnOnce(&mut VcpuFd) -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        {
            let mut s = self.control.lock();
            match s.states.get(index) {
                None => return Err(KvmError::Invalid(format!("no vCPU {index}"))),
                Some(VcpuState::Parked | VcpuState::Halted) => {}
                Some(VcpuState::Exited) => return Err(KvmError::VcpuGone(index)),
                Some(VcpuState::Running) => return Err(KvmError::NotParked(index)),
            }
            let req: Request = Box::new(move |fd| {
                let _ = tx.send(f(fd));
            });
            s.requests[index].push_back(req);
        }
        self.control.changed.notify_all();
        rx.recv_timeout(REQUEST_DEADLINE).map_err(|e| match e {
            RecvTimeoutError::Disconnected => KvmError::VcpuGone(index),
            RecvTimeoutError::Timeout => {
                KvmError::Invalid(format!("vCPU {index} did not run a request within {REQUEST_DEADLINE:?}"))
            }
        })
    }

    /// General and segment registers of vCPU `index` (parked or halted).
    pub fn registers(&self, index: usize) -> Result<(kvm_regs, kvm_sregs)> {
        self.with_vcpu(index, |fd| {
            let regs = fd.get_regs().map_err(|e| KvmError::ioctl("KVM_GET_REGS", e))?;
            let sregs = fd.get_sregs().map_err(|e| KvmError::ioctl("KVM_GET_SREGS", e))?;
            Ok((regs, sregs))
        })?
    }

    /// Sets the hardware watchpoints of every vCPU (empty: none); the VM must be paused.
    pub fn set_watchpoints(&self, points: &[Watchpoint]) -> Result<()> {
        let dbg = guest_debug(points)?;
        for i in 0..self.config.vcpus {
            self.with_vcpu(i, move |fd| {
                fd.set_guest_debug(&dbg).map_err(|e| KvmError::ioctl("KVM_SET_GUEST_DEBUG", e))
            })??;
        }
        Ok(())
    }

    /// Stops every vCPU thread and waits for them; idempotent.
    pub fn stop(&mut self) {
        {
            let mut s = self.control.lock();
            s.stop = true;
            self.control.attention.store(true, Ordering::Release);
        }
        self.control.changed.notify_all();
        let deadline = Instant::now() + RENDEZVOUS_DEADLINE;
        loop {
            let s = self.control.lock();
            let running: Vec<usize> =
                s.states.iter().enumerate().filter(|(_, st)| **st == VcpuState::Running).map(|(i, _)| i).collect();
            if running.is_empty() || Instant::now() >= deadline {
                break;
            }
            for &i in &running {
                let _ = self.threads.get(i).map(|t| t.kill(kick_signal()));
            }
            drop(self.control.wait(s, REKICK));
        }
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::warn!("a vCPU thread panicked");
            }
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.stop();
    }
}
