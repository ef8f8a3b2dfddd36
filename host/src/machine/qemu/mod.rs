//! The `qemu` backend: a QEMU process we start (TCG), firmware-less PVH boot
//! of the vmlinux, guest RAM in shared files mapped here with vm-memory, QMP
//! for stop/cont/quit, the agent on a virtio-serial port, and the gdbstub for
//! hardware watchpoints (connected when the first one is armed). Freezes and
//! watchpoint captures take one capture gate: at most one in flight.

mod args;
mod gdb;
mod qmp;
mod registers;

use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use schedbox_ops::results::VcpuRegisters;
use schedbox_wire::{GuestFacts, RequestBody, ResponseBody};

use super::capture_gate::{CaptureGate, FREEZE_WAIT};
pub use args::{kernel_cmdline, qemu_args, VmPaths};
use gdb::Gdb;
use qmp::Qmp;

use super::{
    AgentLink, BackendKind, BootSpec, BootTimes, Console, GuestRam, Machine, MachineError, PagingRegisters,
    WatchHandler,
};

/// The QEMU binary (`SCHEDBOX_QEMU` overrides).
pub fn qemu_program() -> String {
    std::env::var("SCHEDBOX_QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into())
}

/// Puts a QEMU about to be spawned in its own process group (a terminal's
/// Ctrl-C reaches schedbox, which powers the guest off, not QEMU directly)
/// and has it killed when the thread that spawns it dies, even by SIGKILL.
pub fn tie_to_this_process(command: &mut Command) {
    command.process_group(0);
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
    // which is async-signal-safe; it touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A running QEMU guest.
pub struct QemuMachine {
    child: Child,
    qmp: Qmp,
    link: AgentLink,
    console: Console,
    ram: Arc<GuestRam>,
    facts: GuestFacts,
    /// At most one capture (freeze or watchpoint hit) in flight.
    gate: Arc<CaptureGate>,
    /// The gdbstub connection, made when the first watchpoint is armed.
    gdb: Option<Gdb>,
    gdb_path: PathBuf,
    /// The current freeze found the guest stopped by a watchpoint: the gdb
    /// worker resumes it after its capture, so `resume` must not.
    watch_stopped: bool,
    times: BootTimes,
    vmlinux: PathBuf,
    /// Sockets; removed on drop.
    _dir: tempfile::TempDir,
    /// RAM files; removed on drop.
    _ram_dir: tempfile::TempDir,
}

/// Scratch RAM goes to /dev/shm when it exists (tmpfs), else the temp dir.
fn ram_parent() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// Kills and reaps the child if boot fails half-way.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn alive(child: &mut Child, console: &Console, phase: &'static str) -> Result<(), MachineError> {
    if console.panicked() {
        // Give the panic's trace a moment to reach the console.
        std::thread::sleep(Duration::from_millis(200));
        return Err(MachineError::KernelPanic {
            phase,
            panic: console.panic_line().unwrap_or_default(),
            console: console.tail(40),
        });
    }
    if let Some(status) = child.try_wait()? {
        std::thread::sleep(Duration::from_millis(100));
        if console.panicked() {
            return Err(MachineError::KernelPanic {
                phase,
                panic: console.panic_line().unwrap_or_default(),
                console: console.tail(40),
            });
        }
        return Err(MachineError::Exited { status: status.to_string(), console: console.tail(40) });
    }
    Ok(())
}

fn connect_when_ready(
    path: &Path,
    child: &mut Child,
    console: &Console,
    deadline: Instant,
) -> Result<UnixStream, MachineError> {
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(_) if Instant::now() < deadline => {
                alive(child, console, "VM start-up")?;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(MachineError::Spawn(format!("connecting {}: {e}", path.display()))),
        }
    }
}

impl QemuMachine {
    /// Starts QEMU and waits for the agent's Ready (bounded by `spec.boot_timeout`).
    pub fn boot(spec: &BootSpec) -> Result<Self, MachineError> {
        let start = Instant::now();
        let deadline = start + spec.boot_timeout;
        super::scratch::sweep(&std::env::temp_dir(), "schedbox-vm");
        super::scratch::sweep(&ram_parent(), "schedbox-ram");
        let dir = tempfile::Builder::new().prefix(&super::scratch::prefix("schedbox-vm")).tempdir()?;
        let ram_dir =
            tempfile::Builder::new().prefix(&super::scratch::prefix("schedbox-ram")).tempdir_in(ram_parent())?;
        let paths = VmPaths::new(dir.path(), ram_dir.path(), spec.topology.numa_nodes);
        let args = qemu_args(spec, &paths, super::host_tsc_khz());
        let program = qemu_program();
        tracing::debug!("{program} {}", args.join(" "));
        let mut command = Command::new(&program);
        command.args(&args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        tie_to_this_process(&mut command);
        let child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => MachineError::QemuMissing { program: program.clone() },
            _ => MachineError::Spawn(format!("{program}: {e}")),
        })?;
        let mut guard = ChildGuard(Some(child));
        let child = guard.0.as_mut().expect("just set");
        let console = Console::spawn_reader(child.stdout.take().expect("stdout is piped"));
        // QEMU's own errors (bad option, missing file) land on stderr.
        let qemu_errors = Console::spawn_reader(child.stderr.take().expect("stderr is piped"));
        let qmp_stream = connect_when_ready(&paths.qmp, child, &console, deadline).map_err(|e| match e {
            MachineError::Exited { status, .. } => {
                MachineError::Spawn(format!("{program} exited ({status}): {}", qemu_errors.tail(10)))
            }
            e => e,
        })?;
        // After QMP answers, QEMU can still fail (a device it cannot realize, a file it
        // cannot open): then its own words on stderr are the error, not the reset socket.
        let qemu_failed = |e: MachineError, child: &mut Child| {
            if matches!(e, MachineError::KernelPanic { .. } | MachineError::Interrupted { .. }) {
                return e;
            }
            // A reset socket comes a moment before the exit.
            let until = Instant::now() + Duration::from_millis(500);
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        std::thread::sleep(Duration::from_millis(50));
                        return MachineError::Spawn(format!("{program} exited ({status}): {}", qemu_errors.tail(10)));
                    }
                    Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
                    _ => return e,
                }
            }
        };
        let mut qmp = Qmp::connect(qmp_stream).map_err(|e| qemu_failed(e, child))?;
        let setup_ms = start.elapsed().as_millis() as u64;
        let agent_stream =
            connect_when_ready(&paths.agent, child, &console, deadline).map_err(|e| qemu_failed(e, child))?;
        let mut link = AgentLink::new(agent_stream, spec.request_timeout, console.clone())?;
        let facts = link
            .wait_ready(deadline, &mut || alive(child, &console, "boot"))
            .map_err(|e| match e {
                MachineError::AgentTimeout { console, .. } => {
                    MachineError::BootTimeout { secs: spec.boot_timeout.as_secs(), console }
                }
                e => e,
            })
            .map_err(|e| qemu_failed(e, child))?;
        let agent_ready_ms = start.elapsed().as_millis() as u64;
        let per_node = ((spec.memory_mib / u64::from(spec.topology.numa_nodes)) & !1) << 20;
        let files: Vec<(&Path, u64)> = paths.ram.iter().map(|p| (p.as_path(), per_node)).collect();
        let ram = Arc::new(GuestRam::map_files(&files)?);
        let _ = qmp.status()?;
        let child = guard.0.take().expect("still owned");
        Ok(Self {
            child,
            qmp,
            link,
            console,
            ram,
            gate: Arc::default(),
            gdb: None,
            gdb_path: paths.gdb.clone(),
            watch_stopped: false,
            times: BootTimes { setup_ms, kernel_ms: facts.uptime_ms, agent_ready_ms },
            vmlinux: spec.vmlinux.clone(),
            facts,
            _dir: dir,
            _ram_dir: ram_dir,
        })
    }

    /// QEMU's process id (tests check it is gone after power-off).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The QMP `query-status` value.
    pub fn status(&mut self) -> Result<String, MachineError> {
        self.qmp.status()
    }
}

impl Machine for QemuMachine {
    fn backend(&self) -> BackendKind {
        BackendKind::Qemu
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
        let (child, console) = (&mut self.child, &self.console);
        self.link.request(body, &mut || alive(child, console, "a request"))
    }

    fn request_within(&mut self, body: RequestBody, timeout: Duration) -> Result<ResponseBody, MachineError> {
        let (child, console) = (&mut self.child, &self.console);
        self.link.request_within(body, timeout, &mut || alive(child, console, "a request"))
    }

    fn health(&mut self) -> Result<(), MachineError> {
        alive(&mut self.child, &self.console, "a hold")?;
        self.link.broken().map_or(Ok(()), |why| Err(super::link_down(why)))
    }

    fn guest_ram(&self) -> &GuestRam {
        &self.ram
    }

    fn guest_requests(&mut self) -> Vec<super::GuestRequest> {
        self.link.take_guest_requests()
    }

    fn pause(&mut self) -> Result<(), MachineError> {
        self.stop_for("freeze")
    }

    fn resume(&mut self) -> Result<(), MachineError> {
        self.restart()
    }

    fn paging_registers(&mut self) -> Result<Vec<PagingRegisters>, MachineError> {
        let out = self
            .qmp
            .execute("human-monitor-command", Some(serde_json::json!({"command-line": "info registers -a"})))?;
        let regs = registers::parse_paging_registers(out.as_str().unwrap_or_default());
        if regs.is_empty() {
            return Err(MachineError::Qmp("no control registers in QEMU's `info registers -a`".into()));
        }
        Ok(regs)
    }

    fn arm_watchpoint(&mut self, addr: u64, len: u64, handler: WatchHandler) -> Result<(), MachineError> {
        if !matches!(len, 1 | 2 | 4 | 8) || !addr.is_multiple_of(len) {
            return Err(MachineError::Unsupported(format!(
                "a watchpoint covers 1, 2, 4 or 8 bytes at an address aligned to its length; {addr:#x} (+{len}) is not"
            )));
        }
        // The gdbstub takes packets only while the guest is stopped.
        self.stop_for("watchpoint arm")?;
        let armed = (|| {
            if self.gdb.is_none() {
                self.gdb = Some(Gdb::connect(&self.gdb_path, self.gate.clone(), self.ram.clone())?);
            }
            self.gdb.as_ref().expect("just connected").insert_watch(addr, len, handler)
        })();
        let resumed = self.restart();
        armed?;
        resumed
    }

    fn disarm_watchpoints(&mut self) -> Result<(), MachineError> {
        if self.gdb.as_ref().is_none_or(|g| g.armed() == 0) {
            return Ok(());
        }
        self.stop_for("watchpoint removal")?;
        let removed = self.gdb.as_ref().expect("checked").remove_watches();
        let resumed = self.restart();
        removed?;
        resumed
    }

    fn vcpu_registers(&mut self) -> Result<Vec<VcpuRegisters>, MachineError> {
        // `debug`: stopped by a watchpoint (a freeze can find it so).
        if !matches!(self.qmp.status()?.as_str(), "paused" | "debug") {
            return Err(MachineError::Unsupported(
                "vCPU registers are read with the guest paused: pause it first".into(),
            ));
        }
        let out = self
            .qmp
            .execute("human-monitor-command", Some(serde_json::json!({"command-line": "info registers -a"})))?;
        let text = out.as_str().unwrap_or_default();
        let regs = registers::parse_info_registers(text);
        if regs.is_empty() {
            return Err(MachineError::Qmp(format!("no registers in QEMU's answer: {}", &text[..text.len().min(200)])));
        }
        Ok(regs)
    }

    fn console_tail(&self, n: usize) -> String {
        self.console.tail(n)
    }

    fn power_off(mut self: Box<Self>) -> Result<(), MachineError> {
        self.link.send(RequestBody::PowerOff)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    return Err(MachineError::Exited { status: status.to_string(), console: self.console.tail(20) });
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // The guest ignored the power-off: stop QEMU ourselves and say so.
        let _ = self.qmp.execute("quit", None);
        Err(MachineError::AgentTimeout { what: "power-off".into(), secs: 20, console: self.console.tail(20) })
    }
}

impl QemuMachine {
    /// Takes the capture gate and stops the guest (QMP `stop` returns once every
    /// vCPU is parked; the QMP socket's read timeout bounds it). A guest already
    /// stopped by a watchpoint (`debug`) is left for the gdb worker to resume.
    fn stop_for(&mut self, who: &'static str) -> Result<(), MachineError> {
        self.gate.enter(who, FREEZE_WAIT)?;
        match self.qmp.execute("stop", None).and_then(|_| self.qmp.status()) {
            Ok(status) => {
                self.watch_stopped = status == "debug";
                Ok(())
            }
            Err(e) => {
                self.gate.leave();
                Err(freeze_error("QMP stop", e))
            }
        }
    }

    /// Resumes the guest (unless the gdb worker owns the resume) and frees the gate.
    fn restart(&mut self) -> Result<(), MachineError> {
        let out = if std::mem::take(&mut self.watch_stopped) {
            Ok(())
        } else {
            self.qmp.execute("cont", None).map(|_| ()).map_err(|e| freeze_error("QMP cont", e))
        };
        self.gate.leave();
        out
    }
}

/// A QMP failure during a freeze; a read timeout becomes a bounded-wait error.
fn freeze_error(what: &str, e: MachineError) -> MachineError {
    match e {
        MachineError::Io(io) if matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
            MachineError::FreezeTimeout {
                what: format!("{what} (parking or resuming every vCPU)"),
                ms: 10_000,
                why: "QEMU did not answer; the VM may be wedged".into(),
            }
        }
        e => e,
    }
}

impl Drop for QemuMachine {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
