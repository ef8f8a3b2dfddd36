//! The machine layer: one trait, two backends (`qemu` and `kvm`).
//!
//! Everything above it — initramfs, agent, wire, monitor — is shared. A
//! [`Machine`] is a booted guest whose agent reported `Ready`; dropping it
//! kills the VM and removes its scratch files, so no VM outlives its owner.

mod agent_link;
mod capture_gate;
mod console;
mod guest_ram;
pub mod kvm;
mod prepare;
pub mod qemu;
pub mod scratch;
mod topology;
mod tsc;

use std::path::PathBuf;
use std::time::Duration;

pub use agent_link::{AgentLink, GuestRequest};
pub use console::Console;
pub use guest_ram::GuestRam;
pub use prepare::{
    find_agent, find_fixture_scheduler, parse_memory_mib, prepare_boot, stage_boot_scheduler, BootRequest,
    BOOT_SCHEDULER_GUEST, BUILT_IN_SCHEDULERS, NULL_BLK, VIRTIO_MMIO,
};
pub use schedbox_wire::GuestFacts;
pub use topology::{parse_topology, TopologyError};
pub use tsc::host_tsc_khz;

use crate::op_model::Topology;

/// Which VMM runs the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// QEMU with TCG (or KVM where it can run the kernel).
    Qemu,
    /// schedbox's own VMM on /dev/kvm.
    Kvm,
}

/// Sets the default boot watchdog, in seconds (a nested run sets it: see
/// [`crate::nested::inherited_env`]).
pub const BOOT_TIMEOUT_ENV: &str = "SCHEDBOX_BOOT_TIMEOUT";

/// The boot watchdog where nothing else sets one.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// The default boot watchdog: [`BOOT_TIMEOUT_ENV`] seconds where it is set, else
/// [`DEFAULT_BOOT_TIMEOUT`] (a value that is not a positive number is reported and ignored).
pub fn default_boot_timeout() -> Duration {
    boot_timeout_from(std::env::var_os(BOOT_TIMEOUT_ENV).as_deref())
}

/// [`default_boot_timeout`] for a value of [`BOOT_TIMEOUT_ENV`].
fn boot_timeout_from(value: Option<&std::ffi::OsStr>) -> Duration {
    let Some(value) = value else { return DEFAULT_BOOT_TIMEOUT };
    match value.to_str().and_then(|v| v.trim().parse::<u64>().ok()).filter(|&s| s > 0) {
        Some(secs) => Duration::from_secs(secs),
        None => {
            tracing::warn!(
                "{BOOT_TIMEOUT_ENV}={value:?} is not a positive number of seconds: the boot watchdog stays at {} s",
                DEFAULT_BOOT_TIMEOUT.as_secs()
            );
            DEFAULT_BOOT_TIMEOUT
        }
    }
}

/// Everything a backend needs to boot a guest.
#[derive(Clone, Debug)]
pub struct BootSpec {
    /// Uncompressed kernel ELF (PVH entry).
    pub vmlinux: PathBuf,
    pub initramfs: PathBuf,
    pub topology: Topology,
    pub memory_mib: u64,
    /// Appended to the kernel command line.
    pub extra_cmdline: String,
    /// Process start → agent Ready must take less than this ([`default_boot_timeout`]).
    pub boot_timeout: Duration,
    /// How long a request may wait for the agent's answer.
    pub request_timeout: Duration,
    /// virtio_mmio.ko is not staged: the qemu backend boots q35 even for one NUMA node
    /// (microvm needs it), the kvm backend gives the agent COM2 instead of its virtio console.
    pub prefer_q35: bool,
}

impl BootSpec {
    pub fn new(vmlinux: PathBuf, initramfs: PathBuf, topology: Topology) -> Self {
        Self {
            vmlinux,
            initramfs,
            topology,
            memory_mib: 1024,
            extra_cmdline: String::new(),
            boot_timeout: default_boot_timeout(),
            request_timeout: Duration::from_secs(30),
            prefer_q35: false,
        }
    }
}

/// Where the boot time went, ms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BootTimes {
    /// Process start → the VMM is up (QMP answers / vCPUs created).
    pub setup_ms: u64,
    /// Guest boot → agent ready, by the guest's clock.
    pub kernel_ms: u64,
    /// Process start → `Ready` received, by the host's clock.
    pub agent_ready_ms: u64,
}

/// Why a machine failed.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error("{program} not found: install QEMU (`apt-get install qemu-system-x86`, or run `cargo xtask setup`)")]
    QemuMissing { program: String },
    #[error("the {backend:?} backend is not available here: {why}")]
    Unavailable { backend: BackendKind, why: String },
    #[error("starting the VM failed: {0}")]
    Spawn(String),
    #[error("the guest kernel panicked during {phase}: {panic}\nlast console lines:\n{console}")]
    KernelPanic { phase: &'static str, panic: String, console: String },
    #[error("the guest did not report Ready within {secs} s (boot watchdog); last console lines:\n{console}")]
    BootTimeout { secs: u64, console: String },
    #[error("the agent did not answer {what} within {secs} s (hung guest?); last console lines:\n{console}")]
    AgentTimeout { what: String, secs: u64, console: String },
    #[error("the VM exited unexpectedly ({status}); last console lines:\n{console}")]
    Exited { status: String, console: String },
    #[error("agent channel: {0}")]
    Wire(#[from] schedbox_wire::WireError),
    #[error("the agent refused {what}: {message}")]
    Agent { what: String, message: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("QMP: {0}")]
    Qmp(String),
    #[error("{0}")]
    Unsupported(String),
    /// A freeze rendezvous or watchpoint capture could not start or finish in time.
    #[error("freeze rendezvous: {what} did not finish within {ms} ms ({why})")]
    FreezeTimeout { what: String, ms: u64, why: String },
    /// The gdb remote protocol with the VMM's gdbstub failed.
    #[error("gdbstub: {0}")]
    Gdb(String),
    /// A signal asked this process to stop ([`crate::interrupt`]) while it waited on the guest.
    #[error("interrupted by {signal}")]
    Interrupted { signal: &'static str },
}

/// Paging state of one vCPU (for page-table walks of kernel addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PagingRegisters {
    pub cpu: u32,
    pub rip: u64,
    pub cr3: u64,
    pub cr4: u64,
}

/// A data-write watchpoint that fired, handed to its [`WatchHandler`] while
/// every vCPU is stopped (no freeze and no other capture runs meanwhile).
pub struct WatchHit<'a> {
    /// The guest virtual address the watchpoint was armed on.
    pub addr: u64,
    /// When the backend learned of the hit.
    pub at: std::time::Instant,
    /// Every vCPU's registers at the stop.
    pub vcpus: Vec<schedbox_ops::results::VcpuRegisters>,
    /// Guest RAM.
    pub ram: &'a GuestRam,
}

/// Runs on a backend thread for each hit of a watchpoint; the guest resumes when it returns.
pub type WatchHandler = Box<dyn FnMut(WatchHit<'_>) + Send>;

/// A booted guest with a ready agent.
pub trait Machine: Send {
    fn backend(&self) -> BackendKind;
    /// What the agent reported at Ready.
    fn facts(&self) -> &GuestFacts;
    /// The kernel ELF the guest booted (symbols' types come from its BTF).
    fn vmlinux(&self) -> &std::path::Path;
    fn boot_times(&self) -> BootTimes;
    /// Sends a request to the agent and waits (bounded) for its answer,
    /// failing early if the VM dies or the kernel panics meanwhile.
    fn request(&mut self, body: schedbox_wire::RequestBody) -> Result<schedbox_wire::ResponseBody, MachineError>;
    /// [`Machine::request`] with its own bound instead of the boot spec's request timeout
    /// (a `wait-payload` may take minutes).
    fn request_within(
        &mut self,
        body: schedbox_wire::RequestBody,
        timeout: Duration,
    ) -> Result<schedbox_wire::ResponseBody, MachineError> {
        let _ = timeout;
        self.request(body)
    }
    /// Guest physical memory, mapped in this process.
    fn guest_ram(&self) -> &GuestRam;
    /// Parks every vCPU (the freeze rendezvous); paired with [`Machine::resume`].
    /// Bounded: waits for a watchpoint capture in flight, then for the vCPUs, and
    /// fails with [`MachineError::FreezeTimeout`] rather than hang.
    fn pause(&mut self) -> Result<(), MachineError>;
    fn resume(&mut self) -> Result<(), MachineError>;
    /// RIP, RSP and CR3 of every vCPU; the guest must be paused.
    fn vcpu_registers(&mut self) -> Result<Vec<schedbox_ops::results::VcpuRegisters>, MachineError>;
    /// CR3/CR4 (and RIP) of every vCPU. CR3 is coherent only while paused; CR4's
    /// paging mode bits do not change after boot, so they may be read at any time.
    fn paging_registers(&mut self) -> Result<Vec<PagingRegisters>, MachineError> {
        Err(MachineError::Unsupported(format!("the {:?} backend does not report paging registers", self.backend())))
    }
    /// Arms a hardware data-write watchpoint on `len` bytes (1, 2, 4 or 8, aligned)
    /// at guest virtual address `addr`. Each hit runs `handler` on a backend thread
    /// with every vCPU stopped; hits and freezes exclude each other (at most one
    /// capture in flight). Armed watchpoints stay until [`Machine::disarm_watchpoints`].
    fn arm_watchpoint(&mut self, addr: u64, len: u64, handler: WatchHandler) -> Result<(), MachineError> {
        let _ = (addr, len, handler);
        Err(MachineError::Unsupported(format!("the {:?} backend has no hardware watchpoints", self.backend())))
    }
    /// Removes every armed watchpoint; no handler runs after it returns.
    fn disarm_watchpoints(&mut self) -> Result<(), MachineError> {
        Ok(())
    }
    /// Guest processes' requests for host-side ops that the agent forwarded since the
    /// last call (see `AgentLink::take_guest_requests`); never blocks.
    fn guest_requests(&mut self) -> Vec<GuestRequest> {
        Vec::new()
    }
    /// The last `n` lines the guest printed on its console.
    fn console_tail(&self, n: usize) -> String;
    /// Fails when the VM exited, its kernel panicked (with the panic line and the last
    /// console lines) or the agent link is down; cheap enough to poll during a hold.
    fn health(&mut self) -> Result<(), MachineError> {
        Ok(())
    }
    /// Asks the agent to power off and waits for the VM to exit.
    fn power_off(self: Box<Self>) -> Result<(), MachineError>;
}

/// The error of a machine whose agent link is down (after a timeout or a broken frame).
pub(crate) fn link_down(why: &str) -> MachineError {
    MachineError::Agent { what: "the next request".into(), message: format!("the link is down ({why})") }
}

/// Picks a backend: `requested`, or the default for this host — `kvm` on
/// hardware KVM (also nested);
/// otherwise `qemu`, with a one-line warning saying why (software PVM cannot
/// boot a stock kernel; no usable /dev/kvm), logged once per process however
/// many guests it boots. `--backend kvm` is refused only where /dev/kvm cannot
/// be opened.
pub fn select_backend(requested: Option<BackendKind>) -> Result<BackendKind, MachineError> {
    match requested {
        Some(BackendKind::Qemu) => Ok(BackendKind::Qemu),
        Some(BackendKind::Kvm) => match schedbox_kvm::detect() {
            schedbox_kvm::KvmKind::Unavailable(why) => {
                Err(MachineError::Unavailable { backend: BackendKind::Kvm, why })
            }
            schedbox_kvm::KvmKind::Pvm => {
                warn_once("/dev/kvm is software PVM: the kvm backend runs here, but a stock kernel will not boot");
                Ok(BackendKind::Kvm)
            }
            schedbox_kvm::KvmKind::Hardware => Ok(BackendKind::Kvm),
        },
        None => {
            let (backend, why) = kvm::default_backend(&schedbox_kvm::detect());
            if let Some(why) = why {
                warn_once(&why);
            }
            Ok(backend)
        }
    }
}

/// Whether the backend choice was already explained in this process.
static BACKEND_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Logs why the backend is what it is, the first time only: it does not change
/// between the boots of one process (`run` boots one guest per topology, `watch`
/// reboots).
fn warn_once(why: &str) {
    if !BACKEND_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!("{why}");
    }
}

/// `Ok` where /dev/kvm is hardware KVM (nested included), so the kvm backend boots
/// a stock kernel; otherwise why not (software PVM, no usable /dev/kvm).
pub fn hardware_kvm() -> Result<(), String> {
    match kvm::default_backend(&schedbox_kvm::detect()) {
        (BackendKind::Kvm, _) => Ok(()),
        (_, why) => Err(why.unwrap_or_else(|| "no hardware KVM".into())),
    }
}

/// Boots a guest on `backend`.
pub fn boot(backend: BackendKind, spec: &BootSpec) -> Result<Box<dyn Machine>, MachineError> {
    match backend {
        BackendKind::Qemu => Ok(Box::new(qemu::QemuMachine::boot(spec)?)),
        BackendKind::Kvm => Ok(Box::new(kvm::KvmMachine::boot(spec)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn the_boot_watchdog_default_comes_from_the_environment_when_it_is_a_positive_number() {
        assert_eq!(boot_timeout_from(None), Duration::from_secs(90));
        assert_eq!(boot_timeout_from(Some(OsStr::new("300"))), Duration::from_secs(300));
        assert_eq!(boot_timeout_from(Some(OsStr::new(" 45\n"))), Duration::from_secs(45));
        for bad in ["0", "-5", "1.5", "ninety", ""] {
            assert_eq!(boot_timeout_from(Some(OsStr::new(bad))), DEFAULT_BOOT_TIMEOUT, "{bad:?}");
        }
    }
}
