//! `schedbox run` when things go wrong around the scenario, as a user meets them on the
//! qemu backend: Ctrl-C in a hold, a guest killed in a hold, a payload that never exits.
//! Each writes a report that says what happened and leaves no VM, RAM file or socket
//! directory behind.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A stream of one 2-CPU scenario named `name` with `steps`.
fn stream(name: &str, payloads: &[&str], steps: Value) -> Value {
    json!({
        "contract": "schedbox:scenario@0.1.0",
        "scenario": {
            "name": name,
            "summary": "run lifecycle test",
            "topology": {"numa_nodes": 1, "llcs_per_node": 1, "cores_per_llc": 2, "threads_per_core": 1},
            "kernel_features": [],
            "payloads": payloads,
            "schedulers": [],
            "duration_ms": 1000
        },
        "backdrop": {"cgroups": [{"name": "bg", "workers": [{"work": "spin-wait", "workers": {"count": 1},
            "policy": "normal", "nice": 0, "affinity": "inherit"}], "swappable": false}]},
        "steps": steps
    })
}

fn short(name: &str) -> Value {
    stream(
        name,
        &[],
        json!([{"ops": [{"op": "capture-cgroup-procs", "tag": "bg", "cgroup": "bg"}], "hold": {"fixed-ms": 200}}]),
    )
}

fn long_hold(name: &str) -> Value {
    stream(name, &[], json!([{"ops": [], "hold": {"fixed-ms": 120_000}}]))
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(format!("{name}.json"));
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p
}

/// `schedbox run` started with piped output; stderr lines arrive on the channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stdout: std::thread::JoinHandle<String>,
}

impl Running {
    fn start(args: &[&std::ffi::OsStr]) -> Self {
        // -v: the "holding" lines say when a hold began.
        let mut child = Command::new(env!("CARGO_BIN_EXE_schedbox"))
            .args(["-v", "run"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("schedbox starts");
        let (tx, lines) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut out, &mut s);
            s
        });
        Self { child, lines, seen: Vec::new(), stdout }
    }

    /// Waits (bounded) for a stderr line containing `text`.
    fn wait_for(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                let hit = line.contains(text);
                self.seen.push(line);
                if hit {
                    return;
                }
            }
        }
        panic!("no stderr line with {text:?}:\n{}", self.seen.join("\n"));
    }

    /// The exit code and everything printed, waiting at most 120 s.
    fn finish(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("schedbox did not exit:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        self.seen.extend(self.lines.try_iter());
        let stdout = self.stdout.join().unwrap();
        (status.code(), format!("stdout:\n{stdout}\nstderr:\n{}", self.seen.join("\n")))
    }
}

/// The pids of `parent`'s children (from /proc).
fn children(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// The QEMU process schedbox `pid` started.
fn qemu_of(pid: u32) -> u32 {
    let qemu = children(pid)
        .into_iter()
        .find(|c| std::fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|comm| comm.starts_with("qemu-system")));
    qemu.unwrap_or_else(|| panic!("schedbox {pid} runs no QEMU"))
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// Scratch directories (RAM files in /dev/shm, sockets in the temp dir) of process `pid`.
fn scratch_of(pid: u32) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for (dir, kind) in [(PathBuf::from("/dev/shm"), "schedbox-ram"), (std::env::temp_dir(), "schedbox-vm")] {
        let prefix = format!("{kind}-{pid}-");
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                found.push(e.path());
            }
        }
    }
    found
}

fn report(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("the report was written")).expect("the report is JSON")
}

#[test]
fn sigint_in_a_hold_writes_the_report_and_leaves_no_vm_or_files() {
    let dir = tempfile::tempdir().unwrap();
    let first = write(dir.path(), "first", &short("first"));
    let held = write(dir.path(), "held", &long_hold("held"));
    let never = write(dir.path(), "never", &short("never"));
    let out = dir.path().join("report.json");
    let mut run =
        Running::start(&[first.as_os_str(), held.as_os_str(), never.as_os_str(), "--report".as_ref(), out.as_os_str()]);
    let pid = run.child.id();
    run.wait_for("held: step 0 holding");
    // The first scenario is in the report already, before the run ends.
    let early = report(&out);
    assert_eq!(early["scenarios"][0]["name"], "first", "{early:#}");
    assert_eq!(early["scenarios"][0]["verdict"], "pass", "{early:#}");
    assert_eq!(early["complete"], false);
    let qemu = qemu_of(pid);
    assert!(!scratch_of(pid).is_empty(), "a running guest has its RAM files and sockets");
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill(2) on the child we started; it touches no memory.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGINT) }, 0);
    let (code, all) = run.finish();
    assert_eq!(code, Some(128 + libc::SIGINT), "{all}");

    let r = report(&out);
    assert_eq!(r["complete"], false, "{r:#}");
    assert_eq!(r["ended"], "interrupted by SIGINT", "{r:#}");
    let scenarios = r["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 2, "{r:#}");
    assert_eq!(scenarios[0]["verdict"], "pass");
    let h = &scenarios[1];
    assert_eq!(h["name"], "held");
    assert_eq!(h["verdict"], "error", "{h:#}");
    assert!(h["messages"][0].as_str().unwrap().contains("interrupted by SIGINT"), "{h:#}");
    // The hold was cut: the step did not run its 120 s.
    assert!(h["steps"][0]["duration_ms"].as_u64().unwrap_or(0) < 120_000, "{h:#}");
    assert_eq!(r["not_run"][0]["source"], never.display().to_string(), "{r:#}");
    assert_eq!(r["not_run"][0]["reason"], "interrupted by SIGINT");

    assert!(!process_exists(qemu), "QEMU {qemu} outlived schedbox");
    assert_eq!(scratch_of(pid), Vec::<PathBuf>::new(), "scratch files left behind");
}

#[test]
fn a_guest_killed_in_a_hold_fails_the_step_at_once_and_the_next_scenario_gets_a_fresh_guest() {
    let dir = tempfile::tempdir().unwrap();
    let held = write(dir.path(), "held", &long_hold("held"));
    let after = write(dir.path(), "after", &short("after"));
    let out = dir.path().join("report.json");
    let mut run = Running::start(&[held.as_os_str(), after.as_os_str(), "--report".as_ref(), out.as_os_str()]);
    let pid = run.child.id();
    run.wait_for("held: step 0 holding");
    let qemu = qemu_of(pid);
    // SAFETY: kill(2) on the QEMU our child started; it touches no memory.
    assert_eq!(unsafe { libc::kill(qemu as i32, libc::SIGKILL) }, 0);
    let (code, all) = run.finish();
    assert_eq!(code, Some(3), "a lost guest is a guest failure: {all}");
    assert!(all.contains("booting a fresh one"), "{all}");

    let r = report(&out);
    assert_eq!(r["complete"], true, "{r:#}");
    let held = &r["scenarios"][0];
    assert_eq!(held["verdict"], "error", "{held:#}");
    let step = &held["steps"][0];
    assert_eq!(step["status"], "failed", "{held:#}");
    let error = step["error"].as_str().unwrap();
    assert!(error.contains("during the hold") && error.contains("exited unexpectedly"), "{error}");
    assert!(step["duration_ms"].as_u64().unwrap() < 120_000, "the hold did not run out: {held:#}");
    // The next scenario ran on a new guest and passed.
    assert_eq!(r["scenarios"][1]["name"], "after");
    assert_eq!(r["scenarios"][1]["verdict"], "pass", "{r:#}");
    assert_eq!(scratch_of(pid), Vec::<PathBuf>::new(), "scratch files left behind");
}

#[test]
fn a_payload_that_outlives_its_wait_is_killed_with_its_output_and_the_guest_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let waits = stream(
        "waits",
        &["sleep"],
        json!([{"ops": [
            {"op": "run-payload", "name": "sleep", "args": ["100"], "cgroup": null},
            {"op": "wait-payload", "name": "sleep", "cgroup": null}
        ], "hold": {"fixed-ms": 100}}]),
    );
    let waits = write(dir.path(), "waits", &waits);
    let after = write(dir.path(), "after", &short("after"));
    let out = dir.path().join("report.json");
    let run = Running::start(&[
        waits.as_os_str(),
        after.as_os_str(),
        "--payload".as_ref(),
        "sleep=/bin/sleep".as_ref(),
        "--wait-payload-timeout".as_ref(),
        "3".as_ref(),
        "--report".as_ref(),
        out.as_os_str(),
    ]);
    let (code, all) = run.finish();
    assert_eq!(code, Some(1), "{all}");
    let r = report(&out);
    let step = &r["scenarios"][0]["steps"][0];
    assert_eq!(step["status"], "failed", "{r:#}");
    let error = step["error"].as_str().unwrap();
    assert!(error.contains("still ran after 3 s") && error.contains("killed"), "{error}");
    assert!(!all.contains("booting a fresh one"), "the guest was not lost: {all}");
    assert_eq!(r["scenarios"][1]["verdict"], "pass", "the same guest runs the next scenario: {r:#}");
}

#[test]
fn sigterm_during_vm_info_boot_powers_off_and_leaves_nothing() {
    let child = Command::new(env!("CARGO_BIN_EXE_schedbox"))
        .args(["-v", "vm", "info", "--topology", "1n1l2c1t"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("schedbox starts");
    let pid = child.id();
    // Wait for QEMU to be up (the boot is under way), then stop schedbox.
    let deadline = Instant::now() + Duration::from_secs(60);
    let qemu = loop {
        let found = children(pid).into_iter().find(|c| {
            std::fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|comm| comm.starts_with("qemu-system"))
        });
        if let Some(q) = found {
            break q;
        }
        assert!(Instant::now() < deadline, "no QEMU started");
        std::thread::sleep(Duration::from_millis(20));
    };
    // SAFETY: kill(2) on the child we started; it touches no memory.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(128 + libc::SIGTERM), "{all}");
    assert!(!process_exists(qemu), "QEMU {qemu} outlived schedbox");
    assert_eq!(scratch_of(pid), Vec::<PathBuf>::new(), "scratch files left behind");
}
