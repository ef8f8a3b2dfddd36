//! The `kvm` backend: schedbox's own VMM (`schedbox-kvm`) in this process.
//!
//! The vmlinux is entered in 64-bit mode with hardware-reduced ACPI; COM1
//! (ttyS0) is the console and a virtio console on virtio-mmio (`/dev/hvc0`,
//! `schedbox.channel=/dev/hvc0`; whole buffers per exit, not a byte per exit as a
//! 16550 would take) the agent's channel. Both are bridged to Unix socket pairs
//! so the shared [`Console`] and [`AgentLink`] work unchanged. Guest RAM is the VMM's
//! memfd, mapped a second time as [`GuestRam`].

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use schedbox_kvm::linux::{GuestExit, LinuxSpec, LinuxVm, Watch};
use schedbox_kvm::x86::cpuid::{CpuShape, CpuidOptions};
use schedbox_kvm::{KvmKind, SerialOutput, SerialPort, VcpuState};
use schedbox_ops::results::VcpuRegisters;
use schedbox_wire::{GuestFacts, RequestBody, ResponseBody};

use super::capture_gate::{CaptureGate, FREEZE_WAIT};
use super::{
    AgentLink, BackendKind, BootSpec, BootTimes, Console, GuestRam, Machine, MachineError, PagingRegisters,
    WatchHandler,
};

mod watch;
use watch::Watches;

/// RAM the backend can map as one contiguous [`GuestRam`] (below the 32-bit MMIO hole).
const MAX_MEMORY_MIB: u64 = schedbox_kvm::memory::PCI_HOLE_START >> 20;

/// Which guest device carries the agent's channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentChannel {
    /// The virtio console on virtio-mmio (`/dev/hvc0`): the default.
    VirtioConsole,
    /// COM2 (`/dev/ttyS1`): one exit per byte; for guests without a virtio driver.
    Com2,
}

impl AgentChannel {
    fn device(self) -> &'static str {
        match self {
            Self::VirtioConsole => "/dev/hvc0",
            Self::Com2 => "/dev/ttyS1",
        }
    }
}

/// The guest's kernel command line, naming the agent's channel device.
pub fn kernel_cmdline(spec: &BootSpec, channel: AgentChannel) -> String {
    // tsc=nowatchdog: no clocksource watchdog for the TSC (the guest keeps kvm-clock).
    // Its inter-CPU skew check spins on one vCPU, under the watchdog lock, until
    // another answers an IPI. With more vCPUs than host CPUs (nested here: 8 on 1),
    // 3 of about 90 boots were still spinning there at a 45 s boot watchdog, the
    // other vCPU halted with interrupts off (a paravirtual spinlock wait).
    let mut c =
        ["console=ttyS0", "quiet", "loglevel=4", "panic=-1", "reboot=t", "rdinit=/init", "tsc=nowatchdog"].join(" ");
    c.push_str(" schedbox.channel=");
    c.push_str(channel.device());
    if !spec.extra_cmdline.is_empty() {
        c.push(' ');
        c.push_str(&spec.extra_cmdline);
    }
    c
}

/// Copies what the guest transmits on a serial port into `sink` until `stop`.
fn pump_out(output: Arc<SerialOutput>, mut sink: UnixStream, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("serial-out".into()).spawn(move || {
        let mut pos = 0;
        while !stop.load(Ordering::Acquire) {
            if !output.wait_bytes(pos, 1, Duration::from_millis(100)) {
                continue;
            }
            let (bytes, next) = output.read_from(pos);
            pos = next;
            if sink.write_all(&bytes).is_err() {
                break;
            }
        }
    })
}

/// Feeds bytes read from `source` into the guest's receive FIFO until EOF or `stop`.
fn pump_in(port: SerialPort, mut source: UnixStream, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("serial-in".into()).spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = source.read(&mut buf) {
            let mut off = 0;
            while off < n {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                let took = port.send(&buf[off..n]);
                off += took;
                if took == 0 {
                    // The FIFO is full until the guest's interrupt handler drains it.
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    })
}

/// A guest on schedbox's own VMM.
pub struct KvmMachine {
    // Drop order: the watch thread, the link and the pumps go before the VM.
    watches: Watches,
    link: AgentLink,
    console: Console,
    /// Held for its drop: stops the pumps before the VM goes.
    _bridges: Bridges,
    ram: Arc<GuestRam>,
    /// At most one capture (freeze or watchpoint hit) in flight.
    gate: Arc<CaptureGate>,
    facts: GuestFacts,
    times: BootTimes,
    vmlinux: PathBuf,
    guest: Arc<LinuxVm>,
}

/// The serial ↔ socket pumps; stopped and joined on drop.
struct Bridges {
    stop: Arc<AtomicBool>,
    /// VMM-side socket ends, shut down to wake blocked readers.
    ends: Vec<UnixStream>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Bridges {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for e in &self.ends {
            let _ = e.shutdown(std::net::Shutdown::Both);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn alive(guest: &LinuxVm, console: &Console, phase: &'static str) -> Result<(), MachineError> {
    let panic = |line: Option<String>| MachineError::KernelPanic {
        phase,
        panic: line.unwrap_or_default(),
        console: console.tail(40),
    };
    if console.panicked() {
        std::thread::sleep(Duration::from_millis(200));
        return Err(panic(console.panic_line()));
    }
    match guest.watch(Duration::ZERO, |_| false) {
        Watch::Ended(GuestExit::Panic(line)) => Err(panic(Some(line))),
        Watch::Ended(end) => Err(MachineError::Exited { status: format!("{end:?}"), console: console.tail(40) }),
        Watch::Reached | Watch::TimedOut => Ok(()),
    }
}

/// Where a guest that never became Ready is: each vCPU's RIP in three samples
/// 10 ms apart (with its state), and how many bytes the agent's channel and the
/// console carried — a kernel stuck in boot, or an agent whose channel is silent.
fn stall_report(guest: &LinuxVm, channel: &SerialPort) -> String {
    let mut rips: Vec<Vec<String>> = Vec::new();
    for _ in 0..3 {
        let report = match guest.vm.pause() {
            Ok(r) => r,
            Err(e) => return format!("(no vCPU samples: {e})"),
        };
        for (i, state) in report.states.iter().enumerate() {
            let rip = guest.vm.registers(i).map_or_else(|e| format!("? ({e})"), |(r, _)| format!("{:#x}", r.rip));
            if rips.len() <= i {
                rips.push(Vec::new());
            }
            rips[i].push(format!("{rip} {state:?}"));
        }
        if let Err(e) = guest.vm.resume() {
            return format!("(resuming after a vCPU sample: {e})");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut out = String::from("vCPUs at the boot timeout (RIP and state, 3 samples 10 ms apart):");
    for (i, samples) in rips.iter().enumerate() {
        out.push_str(&format!("\n  vCPU {i}: {}", samples.join(", ")));
    }
    out.push_str(&format!(
        "\nbytes from the guest: agent channel {}, console {}",
        channel.output.total(),
        guest.console.output.total()
    ));
    out
}

fn kvm_error(e: schedbox_kvm::KvmError) -> MachineError {
    match e {
        schedbox_kvm::KvmError::NoDevice
        | schedbox_kvm::KvmError::PermissionDenied
        | schedbox_kvm::KvmError::Open(_) => {
            MachineError::Unavailable { backend: BackendKind::Kvm, why: e.to_string() }
        }
        e => MachineError::Spawn(e.to_string()),
    }
}

impl KvmMachine {
    /// Boots the guest and waits for the agent's Ready (bounded by `spec.boot_timeout`).
    /// The agent's channel is the virtio console, or COM2 where virtio_mmio.ko is not
    /// staged (`spec.prefer_q35`).
    pub fn boot(spec: &BootSpec) -> Result<Self, MachineError> {
        if spec.prefer_q35 {
            tracing::warn!(
                "virtio_mmio.ko is not available for this kernel, so the agent's channel is COM2 (one exit per \
                 byte: large transfers are slow); `schedbox kernel fetch --modules` enables the virtio console"
            );
            return Self::boot_with(spec, AgentChannel::Com2);
        }
        Self::boot_with(spec, AgentChannel::VirtioConsole)
    }

    /// [`KvmMachine::boot`] with the agent's channel on `channel`.
    pub fn boot_with(spec: &BootSpec, channel: AgentChannel) -> Result<Self, MachineError> {
        let start = Instant::now();
        let deadline = start + spec.boot_timeout;
        if spec.memory_mib > MAX_MEMORY_MIB {
            return Err(MachineError::Unsupported(format!(
                "the kvm backend maps at most {MAX_MEMORY_MIB} MiB of guest RAM; use --memory {MAX_MEMORY_MIB}M or less"
            )));
        }
        let t = &spec.topology;
        let linux = LinuxSpec {
            vmlinux: spec.vmlinux.clone(),
            initramfs: Some(spec.initramfs.clone()),
            cmdline: kernel_cmdline(spec, channel),
            shape: CpuShape {
                nodes: t.numa_nodes,
                llcs_per_node: t.llcs_per_node,
                cores_per_llc: t.cores_per_llc,
                threads_per_core: t.threads_per_core,
                min_llc_bits: 0,
            },
            memory: spec.memory_mib << 20,
            // XSAVE state sizes do not always match under nested virtualization.
            cpuid: CpuidOptions { hide_xsave: true, hide_cx16: false },
        };
        let guest = LinuxVm::boot(&linux).map_err(kvm_error)?;
        let setup_ms = start.elapsed().as_millis() as u64;
        let stop = Arc::new(AtomicBool::new(false));
        let (console_host, console_vmm) = UnixStream::pair()?;
        let (agent_host, agent_vmm) = UnixStream::pair()?;
        let mut bridges = Bridges {
            stop: stop.clone(),
            ends: vec![console_vmm.try_clone()?, agent_vmm.try_clone()?],
            threads: Vec::new(),
        };
        bridges.threads.push(pump_out(guest.console.output.clone(), console_vmm, stop.clone())?);
        let port = match channel {
            AgentChannel::VirtioConsole => &guest.channel,
            AgentChannel::Com2 => &guest.com2,
        };
        bridges.threads.push(pump_out(port.output.clone(), agent_vmm.try_clone()?, stop.clone())?);
        bridges.threads.push(pump_in(port.clone(), agent_vmm, stop)?);
        let console = Console::spawn_reader(console_host);
        let mut link = AgentLink::new(agent_host, spec.request_timeout, console.clone())?;
        let facts = link.wait_ready(deadline, &mut || alive(&guest, &console, "boot")).map_err(|e| match e {
            MachineError::AgentTimeout { console, .. } => MachineError::BootTimeout {
                secs: spec.boot_timeout.as_secs(),
                console: format!("{console}\n{}", stall_report(&guest, port)),
            },
            e => e,
        })?;
        let agent_ready_ms = start.elapsed().as_millis() as u64;
        let mem = guest.vm.memory();
        let ram = Arc::new(GuestRam::map_files(&[(mem.fd_path().as_path(), mem.size())])?);
        Ok(Self {
            watches: Watches::new(),
            gate: Arc::default(),
            link,
            console,
            _bridges: bridges,
            ram,
            times: BootTimes { setup_ms, kernel_ms: facts.uptime_ms, agent_ready_ms },
            facts,
            vmlinux: spec.vmlinux.clone(),
            guest: Arc::new(guest),
        })
    }
}

impl Machine for KvmMachine {
    fn backend(&self) -> BackendKind {
        BackendKind::Kvm
    }

    fn facts(&self) -> &GuestFacts {
        &self.facts
    }

    fn vmlinux(&self) -> &Path {
        &self.vmlinux
    }

    fn boot_times(&self) -> BootTimes {
        self.times
    }

    fn request(&mut self, body: RequestBody) -> Result<ResponseBody, MachineError> {
        let (guest, console) = (&self.guest, &self.console);
        self.link.request(body, &mut || alive(guest, console, "a request"))
    }

    fn request_within(&mut self, body: RequestBody, timeout: Duration) -> Result<ResponseBody, MachineError> {
        let (guest, console) = (&self.guest, &self.console);
        self.link.request_within(body, timeout, &mut || alive(guest, console, "a request"))
    }

    fn health(&mut self) -> Result<(), MachineError> {
        alive(&self.guest, &self.console, "a hold")?;
        self.link.broken().map_or(Ok(()), |why| Err(super::link_down(why)))
    }

    fn guest_ram(&self) -> &GuestRam {
        &self.ram
    }

    fn guest_requests(&mut self) -> Vec<super::GuestRequest> {
        self.link.take_guest_requests()
    }

    fn pause(&mut self) -> Result<(), MachineError> {
        self.gate.enter("freeze", FREEZE_WAIT)?;
        self.guest.vm.pause().map(drop).map_err(|e| {
            self.gate.leave();
            MachineError::FreezeTimeout { what: "parking every vCPU".into(), ms: 5000, why: e.to_string() }
        })
    }

    fn resume(&mut self) -> Result<(), MachineError> {
        let resumed = self.guest.vm.resume();
        self.gate.leave();
        resumed.map_err(|e| MachineError::Unsupported(format!("resuming the vCPUs: {e}")))
    }

    fn vcpu_registers(&mut self) -> Result<Vec<VcpuRegisters>, MachineError> {
        watch::registers(&self.guest)
    }

    fn paging_registers(&mut self) -> Result<Vec<PagingRegisters>, MachineError> {
        let read = |guest: &LinuxVm| {
            (0..guest.vm.states().len())
                .map(|i| {
                    let (r, s) = guest.vm.registers(i).map_err(|e| MachineError::Unsupported(e.to_string()))?;
                    Ok(PagingRegisters { cpu: i as u32, rip: r.rip, cr3: s.cr3, cr4: s.cr4 })
                })
                .collect()
        };
        if self.guest.vm.states().iter().all(|s| *s != VcpuState::Running) {
            return read(&self.guest);
        }
        // Registers are read on parked vCPUs: park them for the read (a hot
        // kernel read walking page tables costs one short rendezvous here).
        self.pause()?;
        let regs = read(&self.guest);
        self.resume()?;
        regs
    }

    fn arm_watchpoint(&mut self, addr: u64, len: u64, handler: WatchHandler) -> Result<(), MachineError> {
        self.watches.arm(&self.guest, &self.gate, &self.ram, addr, len, handler)
    }

    fn disarm_watchpoints(&mut self) -> Result<(), MachineError> {
        self.watches.disarm(&self.guest, &self.gate)
    }

    fn console_tail(&self, n: usize) -> String {
        self.console.tail(n)
    }

    fn power_off(mut self: Box<Self>) -> Result<(), MachineError> {
        if let Err(e) = self.watches.disarm(&self.guest, &self.gate) {
            tracing::warn!("removing the watchpoints before power-off: {e}");
        }
        self.watches.shut_down();
        self.link.send(RequestBody::PowerOff)?;
        match self.guest.watch(Duration::from_secs(20), |_| false) {
            Watch::Ended(GuestExit::PowerOff) => Ok(()),
            Watch::Ended(GuestExit::Panic(panic)) => {
                Err(MachineError::KernelPanic { phase: "power-off", panic, console: self.console.tail(20) })
            }
            Watch::Ended(end) => {
                Err(MachineError::Exited { status: format!("{end:?}"), console: self.console.tail(20) })
            }
            Watch::Reached | Watch::TimedOut => {
                Err(MachineError::AgentTimeout { what: "power-off".into(), secs: 20, console: self.console.tail(20) })
            }
        }
    }
}

/// Which backend to use when none was requested, and why not kvm: hardware
/// KVM (kvm_intel, kvm_amd; also a nested guest's) runs the kvm backend; PVM,
/// which cannot boot a stock kernel, or no usable /dev/kvm falls back to qemu.
pub fn default_backend(kind: &KvmKind) -> (BackendKind, Option<String>) {
    match kind {
        KvmKind::Hardware => (BackendKind::Kvm, None),
        KvmKind::Pvm => (
            BackendKind::Qemu,
            Some("/dev/kvm is software PVM (kvm_pvm), which cannot boot a stock kernel: using the qemu backend".into()),
        ),
        KvmKind::Unavailable(why) => (BackendKind::Qemu, Some(format!("{why}; using the qemu backend"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op_model::Topology;
    use std::time::Duration;

    #[test]
    fn pvm_and_missing_kvm_fall_back_to_qemu_with_the_reason() {
        assert_eq!(default_backend(&KvmKind::Hardware), (BackendKind::Kvm, None));
        let (b, why) = default_backend(&KvmKind::Pvm);
        assert_eq!(b, BackendKind::Qemu);
        assert!(why.unwrap().contains("PVM"));
        let (b, why) = default_backend(&KvmKind::Unavailable("/dev/kvm does not exist".into()));
        assert_eq!(b, BackendKind::Qemu);
        assert!(why.unwrap().starts_with("/dev/kvm does not exist"));
    }

    #[test]
    fn the_agent_channel_is_the_virtio_console_or_com2() {
        let topology = Topology { numa_nodes: 1, llcs_per_node: 1, cores_per_llc: 1, threads_per_core: 1 };
        let mut spec = BootSpec::new("vmlinux".into(), "initramfs".into(), topology);
        spec.extra_cmdline = "foo=1".into();
        let c = kernel_cmdline(&spec, AgentChannel::VirtioConsole);
        assert!(c.contains("console=ttyS0") && c.contains("schedbox.channel=/dev/hvc0"), "{c}");
        assert!(c.split(' ').any(|w| w == "tsc=nowatchdog"), "{c}");
        assert!(c.ends_with(" foo=1"), "{c}");
        assert!(kernel_cmdline(&spec, AgentChannel::Com2).contains("schedbox.channel=/dev/ttyS1"));
    }

    /// A stand-in kernel playing the agent: it writes the initramfs (a framed
    /// `Ready`) to COM2, waits for any byte from the host, then powers off.
    #[rustfmt::skip]
    const STANDIN_AGENT: &[u8] = &[
        0x49, 0x89, 0xf0,                         // mov r8, rsi             (zero page)
        0x41, 0x8b, 0xb0, 0x18, 0x02, 0x00, 0x00, // mov esi, [r8+0x218]     (ramdisk_image)
        0x41, 0x8b, 0x88, 0x1c, 0x02, 0x00, 0x00, // mov ecx, [r8+0x21c]     (ramdisk_size)
        0x66, 0xba, 0xf8, 0x02,                   // mov dx, 0x2f8           (COM2)
        0xac, 0xee, 0xff, 0xc9, 0x75, 0xfa,       // 1: lodsb; out dx, al; dec ecx; jnz 1b
        0x66, 0xba, 0xfd, 0x02,                   // mov dx, 0x2fd           (COM2 LSR)
        0xec, 0xa8, 0x01, 0x74, 0xfb,             // 2: in al, dx; test al, 1; jz 2b
        0x66, 0xba, 0xc0, 0x03,                   // mov dx, 0x3c0           (sleep control)
        0xb0, 0x34,                               // mov al, SLP_EN | S5 << 2
        0xee, 0xf4,                               // out dx, al; hlt
    ];

    /// A boot spec for the stand-in kernel `code` with `initramfs` as its initramfs,
    /// `cores` vCPUs and 16 MiB; the files live as long as the returned directory.
    fn standin_spec(
        code: &[u8],
        initramfs: &[u8],
        cores: u32,
        boot_timeout: Duration,
    ) -> (tempfile::TempDir, BootSpec) {
        let dir = tempfile::tempdir().unwrap();
        let (vmlinux, image) = (dir.path().join("vmlinux"), dir.path().join("initramfs"));
        std::fs::write(&vmlinux, schedbox_kvm::guest_image::elf64(code)).unwrap();
        std::fs::write(&image, initramfs).unwrap();
        let topology = Topology { numa_nodes: 1, llcs_per_node: 1, cores_per_llc: cores, threads_per_core: 1 };
        let mut spec = BootSpec::new(vmlinux, image, topology);
        spec.memory_mib = 16;
        spec.boot_timeout = boot_timeout;
        (dir, spec)
    }

    #[test]
    fn boots_to_ready_over_the_serial_channel_and_powers_off() {
        if let KvmKind::Unavailable(why) = schedbox_kvm::detect() {
            eprintln!("SKIP boots_to_ready_over_the_serial_channel: {why}");
            return;
        }
        let facts = GuestFacts {
            kernel_release: "stand-in".into(),
            cpus_online: vec![0, 1],
            uptime_ms: 7,
            ..Default::default()
        };
        let mut frame = Vec::new();
        schedbox_wire::write_msg(&mut frame, &schedbox_wire::AgentMessage::Ready(facts.clone())).unwrap();
        let (_dir, spec) = standin_spec(STANDIN_AGENT, &frame, 2, Duration::from_secs(20));
        let mut m = Box::new(KvmMachine::boot_with(&spec, AgentChannel::Com2).expect("boot to Ready"));
        assert_eq!(m.facts(), &facts, "Ready crossed COM2, the pump and the agent link intact");
        assert_eq!(m.boot_times().kernel_ms, 7);
        let mut code = [0u8; 3];
        m.guest_ram().read(schedbox_kvm::guest_image::STANDIN_ENTRY, &mut code).unwrap();
        assert_eq!(code, STANDIN_AGENT[..3], "guest RAM is mapped at its guest addresses");
        m.pause().unwrap();
        let regs = m.vcpu_registers().unwrap();
        assert_eq!(regs.len(), 2);
        let code_range = schedbox_kvm::guest_image::STANDIN_ENTRY..schedbox_kvm::guest_image::STANDIN_ENTRY + 64;
        assert!(code_range.contains(&regs[0].rip), "the BSP polls COM2: {regs:?}");
        assert_eq!(regs[0].cr3, schedbox_kvm::x86::regs::PML4_ADDR);
        m.resume().unwrap();
        m.power_off().expect("the request reached the guest, which powered off");
    }

    /// A stand-in kernel that spins (`jmp $`) never reports Ready: the boot watchdog's
    /// error says where each vCPU is and that the agent's channel stayed silent.
    #[test]
    fn a_boot_timeout_reports_where_the_vcpus_are() {
        if let KvmKind::Unavailable(why) = schedbox_kvm::detect() {
            eprintln!("SKIP a_boot_timeout_reports_where_the_vcpus_are: {why}");
            return;
        }
        let (_dir, spec) = standin_spec(&[0xeb, 0xfe], b"not an agent", 1, Duration::from_secs(2));
        let err = KvmMachine::boot(&spec).err().expect("no Ready from a spinning kernel").to_string();
        let spin = format!("vCPU 0: {:#x} ", schedbox_kvm::guest_image::STANDIN_ENTRY);
        assert!(err.contains("within 2 s") && err.contains(&spin), "{err}");
        assert!(err.contains("bytes from the guest: agent channel 0, console 0"), "{err}");
    }

    /// The real kernel and agent, on hardware KVM only (PVM cannot boot a stock kernel).
    #[test]
    fn boots_the_real_kernel_with_llc_groups_on_hardware_kvm() {
        match schedbox_kvm::detect() {
            KvmKind::Hardware => {}
            other => {
                eprintln!("SKIP boots_the_real_kernel_on_hardware_kvm: needs hardware KVM, /dev/kvm is {other:?}");
                return;
            }
        }
        let topology = Topology { numa_nodes: 1, llcs_per_node: 2, cores_per_llc: 2, threads_per_core: 1 };
        let req = crate::machine::BootRequest { kernel: None, topology, memory_mib: 512, staged: Vec::new() };
        let spec = match crate::machine::prepare_boot(&req) {
            Ok(spec) => spec,
            Err(e) => {
                eprintln!("SKIP boots_the_real_kernel_on_hardware_kvm: no kernel or agent to boot ({e:#})");
                return;
            }
        };
        let m = Box::new(KvmMachine::boot(&spec).expect("boot to Ready"));
        assert_eq!(m.facts().cpus_online, vec![0, 1, 2, 3]);
        assert_eq!(m.facts().llc_groups, vec![vec![0, 1], vec![2, 3]], "CPUID LLC sharing reached sysfs");
        m.power_off().expect("ACPI S5 power-off");
    }
}
