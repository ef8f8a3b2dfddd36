//! The `qemu` backend: a QEMU process we start (TCG), firmware-less PVH boot
//! of the vmlinux, guest RAM in shared files mapped here with vm-memory, QMP
//! for stop/cont/quit, the agent on a virtio-serial port.

mod args;
mod qmp;
mod registers;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use schedbox_ops::results::VcpuRegisters;
use schedbox_wire::{GuestFacts, RequestBody, ResponseBody};

pub use args::{kernel_cmdline, qemu_args, VmPaths};
use qmp::Qmp;

use super::{AgentLink, BackendKind, BootSpec, BootTimes, Console, GuestRam, Machine, MachineError};

/// The QEMU binary (`SCHEDBOX_QEMU` overrides).
pub fn qemu_program() -> String {
    std::env::var("SCHEDBOX_QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into())
}

/// A running QEMU guest.
pub struct QemuMachine {
    child: Child,
    qmp: Qmp,
    link: AgentLink,
    console: Console,
    ram: GuestRam,
    facts: GuestFacts,
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
        let dir = tempfile::Builder::new().prefix("schedbox-vm-").tempdir()?;
        let ram_dir = tempfile::Builder::new().prefix("schedbox-ram-").tempdir_in(ram_parent())?;
        let paths = VmPaths::new(dir.path(), ram_dir.path(), spec.topology.numa_nodes);
        let args = qemu_args(spec, &paths, super::host_tsc_khz());
        let program = qemu_program();
        tracing::debug!("{program} {}", args.join(" "));
        let child = Command::new(&program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
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
        let mut qmp = Qmp::connect(qmp_stream)?;
        let setup_ms = start.elapsed().as_millis() as u64;
        let agent_stream = connect_when_ready(&paths.agent, child, &console, deadline)?;
        let mut link = AgentLink::new(agent_stream, spec.request_timeout, console.clone())?;
        let facts = link.wait_ready(deadline, &mut || alive(child, &console, "boot")).map_err(|e| match e {
            MachineError::AgentTimeout { console, .. } => {
                MachineError::BootTimeout { secs: spec.boot_timeout.as_secs(), console }
            }
            e => e,
        })?;
        let agent_ready_ms = start.elapsed().as_millis() as u64;
        let per_node = ((spec.memory_mib / u64::from(spec.topology.numa_nodes)) & !1) << 20;
        let files: Vec<(&Path, u64)> = paths.ram.iter().map(|p| (p.as_path(), per_node)).collect();
        let ram = GuestRam::map_files(&files)?;
        let _ = qmp.status()?;
        let child = guard.0.take().expect("still owned");
        Ok(Self {
            child,
            qmp,
            link,
            console,
            ram,
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

    fn guest_ram(&self) -> &GuestRam {
        &self.ram
    }

    fn pause(&mut self) -> Result<(), MachineError> {
        self.qmp.execute("stop", None).map(|_| ())
    }

    fn resume(&mut self) -> Result<(), MachineError> {
        self.qmp.execute("cont", None).map(|_| ())
    }

    fn vcpu_registers(&mut self) -> Result<Vec<VcpuRegisters>, MachineError> {
        if self.qmp.status()? != "paused" {
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

impl Drop for QemuMachine {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
