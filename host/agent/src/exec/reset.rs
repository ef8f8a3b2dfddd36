//! `Reset`: bring the guest back to a clean state between scenarios and prove it from
//! what the kernel shows, not from the executor's bookkeeping.
//!
//! A survey reads the kernel: cgroups under the managed parent, user processes other
//! than PID 1 (kernel threads excluded by `PF_KTHREAD`), `/sys/kernel/sched_ext/state`,
//! every cgroup in the hierarchy that is frozen or asked to freeze, and the
//! `smp_affinity_list` of every IRQ a scenario steered against what it was before. Cleaning runs
//! the executor's own teardown first, then acts on whatever the kernel still shows —
//! orphans a payload left behind, cgroups the executor never created, a scheduler it
//! does not track — and a second survey says what remains. Nothing remaining is the
//! only way a reset is `verified`.
//!
//! When the run has a boot scheduler, clean means it is attached: its loader is the one
//! user process kept, sched_ext must be `enabled`, and the executor's teardown restores
//! it if a scenario detached or replaced it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use schedbox_wire::{ResetCheck, ResetReport};

use super::{cgroupfs, sched, Executor};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// `PF_KTHREAD` in the flags field of `/proc/<pid>/stat`.
const PF_KTHREAD: u64 = 0x0020_0000;
/// How long killed tasks may take to disappear.
const KILL_WAIT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(5);

/// What the kernel shows, one line per finding.
#[derive(Default)]
struct Survey {
    cgroups: Vec<String>,
    tasks: Vec<String>,
    scheduler: Vec<String>,
    frozen: Vec<String>,
}

/// Surveys the kernel; `keep` is the boot scheduler's pid, `boot` whether the run has one.
fn survey(keep: Option<u32>, boot: bool) -> Survey {
    let parent = Path::new(cgroupfs::PARENT);
    let mut cgroups = Vec::new();
    if parent.is_dir() {
        walk(parent, &mut |d| cgroups.push(relative(d)));
    }
    let mut frozen = Vec::new();
    walk(Path::new(CGROUP_ROOT), &mut |d| {
        if is_frozen(d) {
            frozen.push(relative(d));
        }
    });
    let tasks = user_tasks(keep).into_iter().map(|t| t.describe()).collect();
    let state = sched::state();
    let ops = std::fs::read_to_string("/sys/kernel/sched_ext/root/ops").unwrap_or_default();
    let scheduler = match (boot, keep, state.as_str()) {
        (false, _, "disabled" | "unsupported") | (true, Some(_), "enabled") => Vec::new(),
        (true, None, _) => vec![format!("the boot scheduler is not attached (sched_ext state {state:?})")],
        _ => vec![format!("sched_ext state {state:?} (ops {:?})", ops.trim())],
    };
    Survey { cgroups, tasks, scheduler, frozen }
}

/// Visits `dir` and every cgroup below it, parents first.
fn walk(dir: &Path, visit: &mut dyn FnMut(&Path)) {
    visit(dir);
    for child in cgroupfs::children(dir) {
        walk(&child, visit);
    }
}

fn relative(dir: &Path) -> String {
    dir.strip_prefix(CGROUP_ROOT).map(|p| format!("/{}", p.display())).unwrap_or_else(|_| dir.display().to_string())
}

/// Asked to freeze (`cgroup.freeze 1`) or frozen (`cgroup.events` `frozen 1`). The root has neither file.
fn is_frozen(dir: &Path) -> bool {
    let asked = std::fs::read_to_string(dir.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1");
    asked || cgroupfs::is_frozen(dir).unwrap_or(false)
}

/// A live user process.
struct Task {
    pid: u32,
    comm: String,
    cgroup: String,
}

impl Task {
    fn describe(&self) -> String {
        format!("pid {} ({}) in {}", self.pid, self.comm, self.cgroup)
    }
}

/// Every user process but PID 1, the worker parent (see `crate::zygote`) and `keep`;
/// kernel threads and zombies (exited, only a pid) are not tasks.
fn user_tasks(keep: Option<u32>) -> Vec<Task> {
    let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
    let zygote = crate::zygote::pid();
    let mut out: Vec<Task> = rd
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != 1 && Some(pid) != keep && Some(pid) != zygote)
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (head, rest) = stat.rsplit_once(')')?;
            let comm = head.split_once('(').map(|(_, c)| c.to_owned()).unwrap_or_default();
            // After the comm: state, ppid, pgrp, session, tty_nr, tpgid, flags.
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let flags: u64 = fields.get(6)?.parse().ok()?;
            if flags & PF_KTHREAD != 0 || fields.first() == Some(&"Z") {
                return None;
            }
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .ok()
                .and_then(|s| s.lines().find_map(|l| l.strip_prefix("0::").map(str::to_owned)))
                .unwrap_or_else(|| "?".into());
            Some(Task { pid, comm, cgroup })
        })
        .collect();
    out.sort_by_key(|t| t.pid);
    out
}

impl Executor {
    /// Cleans the guest and proves it clean (see the module docs).
    pub(super) fn reset(&mut self) -> ResetReport {
        let t0 = Instant::now();
        let boot = self.sched.has_boot();
        let before = survey(self.sched.boot_pid(), boot);
        // Before the teardown, which restores them too.
        let irqs_found = self.irqs.changed();
        let mut actions = Vec::new();
        let mut phases = vec![("survey", t0.elapsed())];
        let mut lap = Instant::now();
        let mut mark = |name: &'static str, phases: &mut Vec<(&'static str, Duration)>| {
            phases.push((name, lap.elapsed()));
            lap = Instant::now();
        };

        // What the executor knows about: its own teardown, which stops workers with
        // their metrics, thaws, kills payloads, detaches its scheduler (restores the boot one).
        let torn = self.teardown(true);
        let workers: u32 = torn.workers.iter().map(|w| w.workers).sum();
        if workers > 0 {
            actions.push(format!("stopped {workers} worker(s) the scenario started"));
        }
        for p in &torn.payloads {
            actions.push(format!("killed payload {:?}", p.name));
        }
        actions.extend(torn.leftovers.iter().map(|l| format!("executor teardown left {l}")));
        mark("teardown", &mut phases);

        // What the kernel still shows, whoever made it.
        self.thaw_all(&mut actions);
        mark("thaw", &mut phases);
        self.kill_all_tasks(&mut actions);
        mark("kill", &mut phases);
        let parent = Path::new(cgroupfs::PARENT);
        if parent.exists() {
            let mut reap = || self.reap();
            match cgroupfs::remove_tree(parent, &mut reap) {
                Ok(()) => actions.push(format!("removed {} and everything below it", relative(parent))),
                Err(e) => actions.push(format!("could not remove {}: {e}", relative(parent))),
            }
        }
        actions.extend(self.irqs.restore());
        if boot {
            // Its loader is kept by the kill above; this restores it if it is not attached.
            actions.extend(self.sched.end_scenario().0.into_iter().map(|l| format!("boot scheduler: {l}")));
        } else {
            disable_sched_ext(&mut actions);
        }
        self.reap();
        mark("cgroups and scheduler", &mut phases);

        let after = survey(self.sched.boot_pid(), boot);
        mark("survey", &mut phases);
        let gone = |found: &[String], remaining: &[String], what: &str, actions: &mut Vec<String>| {
            for f in found.iter().filter(|f| !remaining.contains(f)) {
                actions.push(format!("{what} {f}"));
            }
        };
        gone(&before.frozen, &after.frozen, "thawed", &mut actions);
        gone(&before.tasks, &after.tasks, "ended", &mut actions);
        gone(&before.cgroups, &after.cgroups, "removed cgroup", &mut actions);
        gone(&before.scheduler, &after.scheduler, "detached the scheduler:", &mut actions);
        let irqs_after = self.irqs.changed();
        gone(&irqs_found, &irqs_after, "restored", &mut actions);
        let mut kept = Vec::new();
        if let (true, Some(pid), true) = (boot, self.sched.boot_pid(), after.scheduler.is_empty()) {
            kept.push(format!(
                "boot scheduler pid {pid}, sched_ext {:?} (ops {:?})",
                sched::state(),
                std::fs::read_to_string("/sys/kernel/sched_ext/root/ops").unwrap_or_default().trim()
            ));
        }
        let took: Vec<String> =
            phases.iter().map(|(name, d)| format!("{name} {:.1} ms", d.as_secs_f64() * 1e3)).collect();
        actions.push(format!("took {}", took.join(", ")));
        let check = |found: Vec<String>, remaining: Vec<String>| ResetCheck { found, remaining };
        ResetReport {
            cgroups: check(before.cgroups, after.cgroups),
            tasks: check(before.tasks, after.tasks),
            scheduler: check(before.scheduler, after.scheduler),
            frozen: check(before.frozen, after.frozen),
            irqs: check(irqs_found, irqs_after),
            actions,
            kept,
            guest_us: t0.elapsed().as_micros() as u64,
        }
    }

    /// Thaws every cgroup asked to freeze, then waits until none reports `frozen 1`.
    fn thaw_all(&mut self, actions: &mut Vec<String>) {
        let mut asked: Vec<PathBuf> = Vec::new();
        walk(Path::new(CGROUP_ROOT), &mut |d| {
            if std::fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1") {
                asked.push(d.to_owned());
            }
        });
        for dir in &asked {
            match cgroupfs::write(dir, "cgroup.freeze", "0") {
                Ok(()) => actions.push(format!("thawed {}", relative(dir))),
                Err(e) => actions.push(format!("could not thaw {}: {e}", relative(dir))),
            }
        }
        let deadline = Instant::now() + cgroupfs::FREEZE_WAIT;
        loop {
            let mut still = Vec::new();
            walk(Path::new(CGROUP_ROOT), &mut |d| {
                if cgroupfs::is_frozen(d).unwrap_or(false) {
                    still.push(d.to_owned());
                }
            });
            if still.is_empty() || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILLs every user process but PID 1 (their orphans come to PID 1 and are killed
    /// in the next round) until none is left or [`KILL_WAIT`] passes.
    fn kill_all_tasks(&mut self, actions: &mut Vec<String>) {
        let deadline = Instant::now() + KILL_WAIT;
        let mut killed = Vec::new();
        loop {
            self.reap();
            let tasks = user_tasks(self.sched.boot_pid());
            if tasks.is_empty() || Instant::now() >= deadline {
                break;
            }
            for t in tasks {
                // SAFETY: kill(2) touches no memory. The pid was read from /proc an instant ago;
                // it is not PID 1 and not a kernel thread, and every user process in this guest
                // is one the reset means to end, so a reused pid would be one as well.
                unsafe { libc::kill(t.pid as libc::pid_t, libc::SIGKILL) };
                if !killed.iter().any(|k: &Task| k.pid == t.pid) {
                    killed.push(t);
                }
            }
            std::thread::sleep(POLL);
        }
        if !killed.is_empty() {
            let list: Vec<String> = killed.iter().map(Task::describe).collect();
            actions.push(format!("killed {}", list.join(", ")));
        }
    }
}

/// A scheduler still attached after its process is gone (or one the agent never
/// started): disable sched_ext the way sysrq S does, and wait for `disabled`.
fn disable_sched_ext(actions: &mut Vec<String>) {
    let state = sched::state();
    if state == "disabled" || state == "unsupported" {
        return;
    }
    // A killed loader's struct_ops link goes with its process: give the kernel a moment.
    let settle = Instant::now() + Duration::from_secs(1);
    while sched::state() != "disabled" && Instant::now() < settle {
        std::thread::sleep(POLL);
    }
    if sched::state() == "disabled" {
        actions.push(format!("sched_ext went from {state:?} to \"disabled\" once its loader was gone"));
        return;
    }
    let _ = std::fs::write("/proc/sys/kernel/sysrq", "1");
    let sent = std::fs::write("/proc/sysrq-trigger", "S");
    let deadline = Instant::now() + sched::TRANSITION;
    while sched::state() != "disabled" && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
    match sent {
        Ok(()) => actions.push(format!("disabled sched_ext through sysrq S (state was {state:?})")),
        Err(e) => actions.push(format!("could not disable sched_ext (state {state:?}): writing sysrq-trigger: {e}")),
    }
}
