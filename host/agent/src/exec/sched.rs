//! sched_ext schedulers: attach, detach, restart, replace; noticing a scheduler's
//! death; and pin-bpf-map.
//!
//! A scheduler is a staged program that attaches a sched_ext struct_ops and stays
//! attached while it runs. `attach-scheduler NAME` starts
//! `/staging/schedulers/NAME/NAME` with the words of `/staging/schedulers/NAME/args`
//! (if that file exists), or — when nothing is staged under that name — one of the
//! built-in fixture variants ([`BUILTINS`]), all served by the one staged fixture
//! loader [`FIXTURE`] with their own arguments. It is attached once
//! `/sys/kernel/sched_ext/state` reads `enabled` (and, for the fixtures,
//! `/sys/kernel/sched_ext/root/ops` names the expected ops).
//!
//! The kernel runs one scheduler at a time, so the agent tracks at most one. Its
//! lifetime is the scenario's whatever the op's owner: `EndScenario` detaches a
//! scheduler still attached (or restores the boot scheduler, below). While one is attached, every request checks that it is
//! alive (the process runs and the state is `enabled`); when not, that request fails
//! with the kernel's reason (the `sched_ext:` lines of the kernel log since the attach)
//! and the scheduler's own last words.
//!
//! A boot scheduler may be set for the whole run: the host stages its name in
//! [`BOOT`]. The agent attaches it when it starts, every scenario begins with it attached
//! and ends by restoring it (a scenario may detach or replace it meanwhile), and
//! `restart-scheduler` kills whatever is attached and starts the boot scheduler again.
//! Without a boot scheduler, `restart-scheduler` restarts the one attached now.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::payload::{drain, tail_text, SharedTail};
use super::spawn;

/// Where the host stages schedulers: `DIR/<name>/<name>` (and optional `DIR/<name>/args`).
pub const DIR: &str = "/staging/schedulers";
/// The fixture scheduler's loader, staged by the host when it was built.
pub const FIXTURE: &str = "/staging/fixture-scheduler/schedbox-fixture-scheduler";
/// The boot scheduler's name, when the host set one for the run.
pub const BOOT: &str = "/staging/boot-scheduler";
/// Built-in scheduler names: the fixture loader's arguments for each. The ops name
/// the kernel reports is the scheduler's name with `_` for `-` (the kernel allows
/// only letters, digits, `_` and `.` in an ops name).
pub const BUILTINS: &[(&str, &[&str])] = &[
    ("fixture", &["--name", "fixture"]),
    ("fixture-alt", &["--name", "fixture_alt"]),
    // Stops dispatching 1 s after attaching; its 1 s watchdog timeout then ejects it.
    ("fixture-stall", &["--name", "fixture_stall", "--stall-after", "1"]),
    // Exits through scx_bpf_error 1 s after attaching.
    ("fixture-error", &["--name", "fixture_error", "--exit-after", "1"]),
    // A planted bug: exits through scx_bpf_error when a SCHED_EXT task's cpumask narrows
    // while its cgroup is frozen (a cpuset shrunk or an affinity narrowed after a freeze).
    ("fixture-planted", &["--name", "fixture_planted", "--planted"]),
];

const STATE: &str = "/sys/kernel/sched_ext/state";
const ROOT_OPS: &str = "/sys/kernel/sched_ext/root/ops";
/// How long detaching may take.
pub const TRANSITION: Duration = Duration::from_secs(10);
/// How long attaching may take: a real scheduler's load (libbpf, the verifier on large
/// programs) takes 1–15 s under TCG on a quiet 2-core host (scx_lavd the longest) and
/// more than 20 s on a loaded one, the fixture under 1 s. The no-scheduler window of a
/// replace is reported against it. The host waits [`schedbox_wire::SCHEDULER_START_WAIT`]
/// for a request that may start one.
pub const ATTACH: Duration = Duration::from_secs(schedbox_wire::SCHEDULER_ATTACH_BOUND_S);
/// After SIGTERM, how long before the agent disables the scheduler itself (sysrq S).
const SYSRQ_AFTER: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(5);

/// What to start for a scheduler name.
#[derive(Clone, Debug)]
struct Launch {
    name: String,
    path: PathBuf,
    args: Vec<String>,
    /// The ops name the kernel must report; `None`: whatever it is.
    ops: Option<String>,
}

/// The attached scheduler.
struct Running {
    launch: Launch,
    pid: u32,
    /// Its wait status once reaped.
    status: Option<i32>,
    stdout: SharedTail,
    stderr: SharedTail,
    /// `/dev/kmsg`, positioned at the attach: the kernel's words about it.
    kmsg: Option<File>,
    /// What `root/ops` read when it attached.
    ops: String,
}

/// A map held open by pin-bpf-map.
struct Pinned {
    name: String,
    id: u32,
    fd: OwnedFd,
}

/// The scheduler state of the agent.
#[derive(Default)]
pub struct Sched {
    running: Option<Running>,
    /// The boot scheduler: attached at start, restored at each scenario's end.
    boot: Option<Launch>,
    /// Why the boot scheduler could not be resolved or attached, until it is.
    boot_error: Option<String>,
    pinned: Vec<Pinned>,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// `/sys/kernel/sched_ext/state`, or "unsupported" without sched_ext.
pub fn state() -> String {
    match std::fs::read_to_string(STATE) {
        Ok(s) => s.trim().to_owned(),
        Err(_) => "unsupported".to_owned(),
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// How a wait status reads.
fn describe_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exit code {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status:#x}")
    }
}

/// Resolves a scheduler name to what to start.
fn resolve(name: &str) -> Result<Launch, String> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(format!("scheduler name {name:?} must be a plain name"));
    }
    let staged = Path::new(DIR).join(name).join(name);
    if staged.is_file() {
        let args = std::fs::read_to_string(Path::new(DIR).join(name).join("args"))
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        return Ok(Launch { name: name.to_owned(), path: staged, args, ops: None });
    }
    if let Some((_, args)) = BUILTINS.iter().find(|(n, _)| *n == name) {
        if !Path::new(FIXTURE).is_file() {
            return Err(format!(
                "scheduler {name:?} is the built-in fixture, but the fixture scheduler is not staged in this guest \
                 (build it with `cargo xtask build-scenarios`: the host stages it when it finds it)"
            ));
        }
        return Ok(Launch {
            name: name.to_owned(),
            path: FIXTURE.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            ops: Some(name.replace('-', "_")),
        });
    }
    let mut known: Vec<String> = std::fs::read_dir(DIR)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    known.sort();
    known.extend(BUILTINS.iter().map(|(n, _)| (*n).to_owned()));
    Err(format!(
        "scheduler {name:?} is not staged at {} and is not built in (known: {}); stage it with \
         `schedbox run --scheduler {name}=PATH`",
        staged.display(),
        known.join(", ")
    ))
}

/// How many of a scheduler's last output lines a detach note keeps.
const TAIL_LINES: usize = 5;

/// The last `n` non-blank lines of `text`, trimmed, without terminal colour codes
/// (the scx schedulers colour their log lines).
fn last_lines(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<String> = text.lines().map(|l| strip_ansi(l).trim().to_owned()).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// `text` without `ESC [ … letter` sequences.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Opens `/dev/kmsg` without blocking, positioned after the last record.
fn kmsg_at_end() -> Option<File> {
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open("/dev/kmsg").ok()?;
    // SAFETY: lseek on a descriptor we own.
    unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_END) };
    Some(f)
}

/// The `sched_ext` records the kernel logged since `kmsg` was positioned.
fn kmsg_sched_ext(kmsg: &mut Option<File>) -> Vec<String> {
    let Some(f) = kmsg else { return Vec::new() };
    let mut out = Vec::new();
    let mut buf = vec![0u8; 8192];
    for _ in 0..10_000 {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let rec = String::from_utf8_lossy(&buf[..n]);
                // "<prio>,<seq>,<usec>,<flags>;message\n continuation lines"
                let msg = rec.split_once(';').map_or(rec.as_ref(), |(_, m)| m).lines().next().unwrap_or("");
                if msg.contains("sched_ext") {
                    out.push(msg.trim().to_owned());
                }
            }
            // EPIPE: records were overwritten; the next read continues.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(_) => break,
        }
    }
    out
}

/// Reaps our child `pid` if it exited; its wait status.
fn try_reap(pid: u32) -> Option<i32> {
    let mut status = 0;
    // SAFETY: non-blocking waitpid on our own child; `status` is a valid out-pointer.
    let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
    (rc == pid as libc::pid_t).then_some(status)
}

impl Running {
    fn start(launch: Launch) -> Result<(Self, Duration), String> {
        let t0 = Instant::now();
        let kmsg = kmsg_at_end();
        let mut cmd = Command::new(&launch.path);
        cmd.args(&launch.args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("starting {}: {e}", launch.path.display()))?;
        let stdout = drain(child.stdout.take().expect("piped stdout"));
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        let mut r = Running { pid: child.id(), launch, status: None, stdout, stderr, kmsg, ops: String::new() };
        let name = r.launch.name.clone();
        let deadline = t0 + ATTACH;
        loop {
            if r.status.is_none() {
                r.status = try_reap(r.pid);
            }
            if let Some(status) = r.status {
                return Err(format!(
                    "scheduler {name:?} exited before it attached ({}){}",
                    describe_status(status),
                    r.last_words()
                ));
            }
            let (state, ops) = (state(), read_trim(ROOT_OPS));
            let ops_ok = r.launch.ops.as_ref().map_or(!ops.is_empty(), |want| *want == ops);
            if state == "enabled" && ops_ok {
                r.ops = ops;
                return Ok((r, t0.elapsed()));
            }
            if Instant::now() >= deadline {
                spawn::kill(r.pid);
                r.status = spawn::reap(r.pid);
                return Err(format!(
                    "scheduler {name:?} did not attach within {} s (state {state:?}, root/ops {ops:?}{}){}",
                    ATTACH.as_secs(),
                    r.launch.ops.as_ref().map(|o| format!(", expected {o:?}")).unwrap_or_default(),
                    r.last_words()
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// The kernel's `sched_ext` lines and the scheduler's output tails, for an error.
    fn last_words(&mut self) -> String {
        let mut s = String::new();
        let kernel = kmsg_sched_ext(&mut self.kmsg);
        if !kernel.is_empty() {
            s += &format!("; kernel: {}", kernel.join(" | "));
        }
        let deadline = Instant::now() + Duration::from_millis(200);
        for (what, t) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let text = tail_text(t, deadline);
            let last = last_lines(&text, 20);
            if !last.is_empty() {
                s += &format!("; {what}: {}", last.join(" | "));
            }
        }
        s
    }

    /// `Some(why)` when the scheduler is no longer attached.
    fn dead(&mut self) -> Option<String> {
        if self.status.is_none() {
            self.status = try_reap(self.pid);
        }
        let state = state();
        let ops = read_trim(ROOT_OPS);
        let why = match self.status {
            Some(status) => format!("its process ended ({}); sched_ext state {state:?}", describe_status(status)),
            None if state != "enabled" => format!("sched_ext state is {state:?}"),
            None if ops != self.ops => format!("root/ops is {ops:?}, not {:?}", self.ops),
            None => return None,
        };
        Some(why)
    }

    /// SIGTERMs it and waits for the process to exit and the state to read `disabled`;
    /// the note, how long it took, and the kernel's line when the kernel had disabled it
    /// for a reason of its own (not the unregistration the SIGTERM causes).
    fn stop(mut self) -> Result<(String, Duration, Option<String>), String> {
        let t0 = Instant::now();
        let name = self.launch.name.clone();
        if self.status.is_none() {
            // SAFETY: our unreaped child; kill touches no memory.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        }
        let mut sysrq_sent = false;
        loop {
            if self.status.is_none() {
                self.status = try_reap(self.pid);
            }
            let state = state();
            if self.status.is_some() && state == "disabled" {
                break;
            }
            if !sysrq_sent && t0.elapsed() >= SYSRQ_AFTER && state != "disabled" {
                // The kernel-side disable, as sysrq S does, in case the scheduler hangs in detaching.
                let _ = std::fs::write("/proc/sys/kernel/sysrq", "1");
                let _ = std::fs::write("/proc/sysrq-trigger", "S");
                sysrq_sent = true;
            }
            if t0.elapsed() >= TRANSITION {
                let alive = self.status.is_none();
                if alive {
                    spawn::kill(self.pid);
                    self.status = spawn::reap(self.pid);
                }
                return Err(format!(
                    "scheduler {name:?} did not detach within {} s (sched_ext state {state:?}{}){}",
                    TRANSITION.as_secs(),
                    if alive { ", process SIGKILLed" } else { "" },
                    self.last_words()
                ));
            }
            std::thread::sleep(POLL);
        }
        let took = t0.elapsed();
        let status = self.status.map(describe_status).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_millis(300);
        let out = tail_text(&self.stdout, deadline);
        let exit_line = out.lines().rev().find(|l| l.contains(" exit kind=")).map(str::to_owned);
        let mut summary = match exit_line {
            Some(l) => format!("{status}; {}", l.trim()),
            None => status,
        };
        // The kernel's exit message (`sched_ext: BPF scheduler "x" disabled (reason)`) and
        // the scheduler's own last lines: what the report keeps of how it ended.
        let mut kernel = kmsg_sched_ext(&mut self.kmsg);
        // The kernel logs "disabled (reason)" just after the state turns `disabled`.
        for _ in 0..10 {
            if kernel.iter().any(|l| l.contains("disabled")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            kernel.extend(kmsg_sched_ext(&mut self.kmsg));
        }
        if !kernel.is_empty() {
            summary += &format!(" | kernel: {}", kernel.join(" / "));
        }
        let ejected = disabled_by_kernel(&kernel)
            .then(|| format!("its detach found the kernel had disabled it already; kernel: {}", kernel.join(" | ")));
        let err = tail_text(&self.stderr, deadline);
        for (what, text) in [("stdout", &out), ("stderr", &err)] {
            let last = last_lines(text, TAIL_LINES);
            if !last.is_empty() {
                summary += &format!(" | {what}: {}", last.join(" / "));
            }
        }
        Ok((summary, took, ejected))
    }
}

impl Sched {
    /// Whether `pid` is the scheduler process (the executor's reaper hands its status over).
    pub fn take_status(&mut self, pid: u32, status: i32) -> bool {
        match &mut self.running {
            Some(r) if r.pid == pid && r.status.is_none() => {
                r.status = Some(status);
                true
            }
            _ => false,
        }
    }

    /// Fails when the attached scheduler died since the last check (and forgets it).
    pub fn check(&mut self) -> Result<(), String> {
        let Some(r) = &mut self.running else { return Ok(()) };
        let Some(why) = r.dead() else { return Ok(()) };
        let mut r = self.running.take().expect("checked above");
        let name = r.launch.name.clone();
        // Give the kernel a moment to log its reason, then collect everything.
        std::thread::sleep(Duration::from_millis(50));
        if r.status.is_none() {
            // SAFETY: our unreaped child; kill touches no memory.
            unsafe { libc::kill(r.pid as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(2);
            while r.status.is_none() && Instant::now() < deadline {
                r.status = try_reap(r.pid);
                std::thread::sleep(POLL);
            }
            if r.status.is_none() {
                spawn::kill(r.pid);
                r.status = spawn::reap(r.pid);
            }
        }
        Err(format!("scheduler {name:?} is no longer attached: {why}{}", r.last_words()))
    }

    /// Reads the boot scheduler's name staged by the host and attaches it; a failure is
    /// kept and reported by [`Sched::boot_ready`].
    pub fn start_boot(&mut self) {
        let Ok(name) = std::fs::read_to_string(BOOT) else { return };
        let name = name.trim().to_owned();
        match resolve(&name) {
            Ok(launch) => {
                self.boot = Some(launch);
                if let Err(e) = self.restore_boot() {
                    self.boot_error = Some(e);
                }
            }
            Err(e) => self.boot_error = Some(format!("boot scheduler: {e}")),
        }
    }

    /// Fails when a boot scheduler is set but could not be attached (a scenario must not
    /// start without it).
    pub fn boot_ready(&mut self) -> Result<(), String> {
        if self.boot.is_some() && self.boot_error.is_some() {
            // One more try: the failure may have been transient.
            if self.restore_boot().is_ok() {
                self.boot_error = None;
            }
        }
        match &self.boot_error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Makes the boot scheduler the attached one (if one is set): stops another, starts
    /// it when nothing (alive) is attached. Its notes.
    fn restore_boot(&mut self) -> Result<Vec<String>, String> {
        let Some(boot) = self.boot.clone() else { return Ok(Vec::new()) };
        let mut notes = Vec::new();
        if self.running.is_some() {
            let alive = self.check().is_ok();
            let is_boot = self.running.as_ref().is_some_and(|r| r.launch.name == boot.name);
            if alive && is_boot {
                return Ok(notes);
            }
            if alive {
                notes.push(self.stop()?);
            }
        }
        let note = self.start(boot.clone()).map_err(|e| format!("restoring boot scheduler {:?}: {e}", boot.name))?;
        notes.push(format!("{note} (boot scheduler)"));
        Ok(notes)
    }

    pub fn attach(&mut self, name: &str) -> Result<Vec<String>, String> {
        if let Some(r) = &self.running {
            let boot = self.boot.as_ref().is_some_and(|b| b.name == r.launch.name);
            return Err(format!(
                "EBUSY: scheduler {:?} (ops {:?}) is attached{} and the kernel runs one at a time: detach-scheduler \
                 or replace-scheduler first",
                r.launch.name,
                r.ops,
                if boot { " as the run's boot scheduler" } else { "" }
            ));
        }
        let state = state();
        if state != "disabled" {
            return Err(match state.as_str() {
                "unsupported" => "this guest kernel has no sched_ext (no /sys/kernel/sched_ext/state)".to_owned(),
                _ => format!(
                    "EBUSY: /sys/kernel/sched_ext/state is {state:?}, not \"disabled\": a scheduler the agent did not \
                     start is attached (root/ops {:?})",
                    read_trim(ROOT_OPS)
                ),
            });
        }
        let launch = resolve(name)?;
        self.start(launch).map(|n| vec![n])
    }

    fn start(&mut self, launch: Launch) -> Result<String, String> {
        let (r, took) = Running::start(launch)?;
        let note = format!("attached {} (ops {:?}, pid {}) in {} ms", r.launch.name, r.ops, r.pid, ms(took));
        self.running = Some(r);
        Ok(note)
    }

    fn stop(&mut self) -> Result<String, String> {
        self.stop_noting().map(|(note, _)| note)
    }

    /// [`Sched::stop`], and why it was no longer attached when the kernel had disabled it
    /// by itself just before the SIGTERM (between the last check and the stop).
    fn stop_noting(&mut self) -> Result<(String, Option<String>), String> {
        let r = self.running.take().ok_or("no scheduler is attached (attach-scheduler first)")?;
        let name = r.launch.name.clone();
        let (summary, took, ejected) = r.stop()?;
        let ejected = ejected.map(|e| format!("scheduler {name:?} is no longer attached: {e}"));
        Ok((format!("detached {name} in {} ms ({summary})", ms(took)), ejected))
    }

    pub fn detach(&mut self) -> Result<Vec<String>, String> {
        self.stop().map(|n| vec![n])
    }

    /// Stops the attached scheduler and starts `next` (`None`: restart — the boot
    /// scheduler when the run has one, else the attached one again).
    pub fn replace(&mut self, next: Option<&str>) -> Result<Vec<String>, String> {
        let Some(current) = &self.running else {
            return Err(format!(
                "no scheduler is attached, so there is nothing to {}: attach-scheduler first",
                if next.is_some() { "replace" } else { "restart" }
            ));
        };
        let launch = match next {
            Some(name) => resolve(name)?,
            None => self.boot.clone().unwrap_or_else(|| current.launch.clone()),
        };
        let t0 = Instant::now();
        let mut notes = vec![self.stop()?];
        let gap = Instant::now();
        let started = self.start(launch);
        let window = format!("no-scheduler window {} ms (bounded by {} s)", ms(gap.elapsed()), ATTACH.as_secs());
        match started {
            Ok(n) => {
                notes.push(n);
                notes.push(window);
                notes.push(format!("total {} ms", ms(t0.elapsed())));
                Ok(notes)
            }
            Err(e) => Err(format!("{} then: {e} (no scheduler is attached now)", notes.join("; "))),
        }
    }

    /// Holds the lowest-id BPF map named `name` until the scenario ends.
    pub fn pin_map(&mut self, name: &str) -> Result<Vec<String>, String> {
        if let Some(p) = self.pinned.iter().find(|p| p.name == name) {
            return Ok(vec![format!("{name} already pinned (id {} fd {})", p.id, p.fd.as_raw_fd())]);
        }
        let mut seen = Vec::new();
        let mut id = 0;
        while let Some(next) = bpf::next_map_id(id)? {
            id = next;
            // A map freed between the two calls is skipped.
            let Some(fd) = bpf::map_fd_by_id(id)? else { continue };
            let map_name = bpf::map_name(&fd)?;
            if map_name == name {
                let note = format!("pinned {name} id {id} fd {}", fd.as_raw_fd());
                self.pinned.push(Pinned { name: name.to_owned(), id, fd });
                return Ok(vec![note]);
            }
            seen.push(map_name);
        }
        seen.sort();
        seen.dedup();
        Err(format!(
            "no BPF map is named {name:?} (map names keep 15 characters: `<object name, truncated>.bss`); maps now: {}",
            if seen.is_empty() { "none".to_owned() } else { seen.join(", ") }
        ))
    }

    /// The scenario ends: closes the pinned maps, and restores the boot scheduler or,
    /// without one, detaches a scheduler still attached; what could not be cleaned up, and
    /// why the scheduler was no longer attached when it had died on its own since the last
    /// check (or just before the detach).
    pub fn end_scenario(&mut self) -> (Vec<String>, Option<String>) {
        let mut left = Vec::new();
        self.pinned.clear();
        // A dead one is forgotten here: it needs no stop, and a boot scheduler restarts.
        let mut exit = self.check().err();
        if self.boot.is_some() {
            if let Err(e) = self.restore_boot() {
                self.boot_error = Some(e.clone());
                left.push(e);
            }
        } else if self.running.is_some() {
            match self.stop_noting() {
                Ok((_, ejected)) => exit = ejected,
                Err(e) => left.push(e),
            }
        }
        (left, exit)
    }

    /// Whether the run has a boot scheduler (a clean guest keeps it attached).
    pub fn has_boot(&self) -> bool {
        self.boot.is_some()
    }

    /// The attached scheduler's pid when it is the run's boot scheduler.
    pub fn boot_pid(&self) -> Option<u32> {
        let r = self.running.as_ref()?;
        self.boot.as_ref().filter(|b| b.name == r.launch.name).map(|_| r.pid)
    }
}

/// Whether the kernel's `sched_ext` lines say it disabled the scheduler for a reason of
/// its own (`disabled (runtime error)`, `(scx_bpf_error)`, `(runnable task stall)`), not the
/// unregistration a SIGTERM'd loader does or the sysrq-S a stop sends to one that hangs.
fn disabled_by_kernel(lines: &[String]) -> bool {
    lines.iter().any(|l| {
        l.contains(" disabled (")
            && !l.contains("disabled (unregistered from user space)")
            && !l.contains("disabled (disabled by sysrq-S)")
    })
}

/// The bpf(2) commands pin-bpf-map needs, as raw syscalls.
mod bpf {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    const BPF_MAP_GET_NEXT_ID: libc::c_long = 12;
    const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    /// `struct bpf_map_info`: `name[16]` follows six u32s.
    const INFO_NAME: usize = 24;

    /// A zeroed `union bpf_attr` (larger than any command here needs).
    #[repr(C, align(8))]
    struct Attr([u8; 128]);

    fn call(cmd: libc::c_long, attr: &mut Attr) -> Result<libc::c_long, std::io::Error> {
        // SAFETY: bpf(2) with a zero-initialised attr buffer of the size passed; the
        // commands used read/write only inside it (and the info buffer it points to).
        let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), attr.0.len() as u32) };
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    }

    fn put_u32(a: &mut Attr, at: usize, v: u32) {
        a.0[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    }

    /// The id after `id`; `None` at the end.
    pub fn next_map_id(id: u32) -> Result<Option<u32>, String> {
        let mut a = Attr([0; 128]);
        put_u32(&mut a, 0, id);
        match call(BPF_MAP_GET_NEXT_ID, &mut a) {
            Ok(_) => Ok(Some(u32::from_ne_bytes(a.0[4..8].try_into().unwrap()))),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(format!("walking BPF map ids (BPF_MAP_GET_NEXT_ID after {id}): {e}")),
        }
    }

    /// A descriptor of map `id`; `None` if it is gone.
    pub fn map_fd_by_id(id: u32) -> Result<Option<OwnedFd>, String> {
        let mut a = Attr([0; 128]);
        put_u32(&mut a, 0, id);
        match call(BPF_MAP_GET_FD_BY_ID, &mut a) {
            // SAFETY: the kernel returned a new descriptor that nothing else owns.
            Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(format!("opening BPF map id {id}: {e}")),
        }
    }

    pub fn map_name(fd: &OwnedFd) -> Result<String, String> {
        let mut info = [0u8; 128];
        let mut a = Attr([0; 128]);
        put_u32(&mut a, 0, fd.as_raw_fd() as u32);
        put_u32(&mut a, 4, info.len() as u32);
        a.0[8..16].copy_from_slice(&(info.as_mut_ptr() as u64).to_ne_bytes());
        call(BPF_OBJ_GET_INFO_BY_FD, &mut a).map_err(|e| format!("reading BPF map info: {e}"))?;
        let name = &info[INFO_NAME..INFO_NAME + 16];
        Ok(String::from_utf8_lossy(&name[..name.iter().position(|&b| b == 0).unwrap_or(16)]).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_to_staged_or_builtin() {
        let e = resolve("a/b").unwrap_err();
        assert!(e.contains("plain name"), "{e}");
        let e = resolve("nope").unwrap_err();
        assert!(e.contains("not staged") && e.contains("fixture, fixture-alt"), "{e}");
        // Outside a guest the fixture loader is not staged.
        let e = resolve("fixture").unwrap_err();
        assert!(e.contains("built-in fixture") && e.contains("xtask build-scenarios"), "{e}");
    }

    #[test]
    fn output_tails_drop_colour_codes_and_blank_lines() {
        let text = "a\n\n\u{1b}[0m\u{1b}[34m[INFO] \u{1b}[0mscheduler flags: 0x36\n  \nlast\n";
        assert_eq!(last_lines(text, 5), ["a", "[INFO] scheduler flags: 0x36", "last"]);
        assert_eq!(last_lines(text, 1), ["last"]);
    }

    #[test]
    fn statuses_read_plainly() {
        assert_eq!(describe_status(0), "exit code 0");
        assert_eq!(describe_status(1 << 8), "exit code 1");
        assert_eq!(describe_status(libc::SIGKILL), "killed by signal 9");
    }

    #[test]
    fn a_kernel_disable_is_told_from_our_unregistration() {
        let l = |s: &str| vec![s.to_owned()];
        assert!(!disabled_by_kernel(&l(
            "sched_ext: BPF scheduler \"fixture\" disabled (unregistered from user space)"
        )));
        assert!(disabled_by_kernel(&l("sched_ext: BPF scheduler \"fixture_error\" disabled (scx_bpf_error)")));
        assert!(disabled_by_kernel(&l("sched_ext: BPF scheduler \"fixture_stall\" disabled (runnable task stall)")));
        assert!(!disabled_by_kernel(&l("sched_ext: BPF scheduler \"fixture\" enabled")));
        assert!(!disabled_by_kernel(&l("sched_ext: BPF scheduler \"x\" disabled (disabled by sysrq-S)")));
        assert!(disabled_by_kernel(&l("sched_ext: BPF scheduler \"x\" disabled (unregistered from BPF)")));
        assert!(!disabled_by_kernel(&[]));
    }

    #[test]
    fn no_scheduler_no_detach() {
        let mut s = Sched::default();
        assert!(s.detach().unwrap_err().contains("no scheduler is attached"));
        assert!(s.replace(Some("fixture")).unwrap_err().contains("nothing to replace"));
        assert!(s.replace(None).unwrap_err().contains("nothing to restart"));
        assert!(s.check().is_ok());
        assert_eq!(s.end_scenario(), (vec![], None));
    }
}
