//! `schedbox watch` as an author uses it, against a real guest (qemu backend): the CLI
//! watches a temporary copy of a component; the tests replace it on disk the way editors
//! and cargo do (write a temporary file, rename it over the old one) or write it in place,
//! and read the watcher's `--events json` lines.
//!
//! The CLI is `target/debug/schedbox` (`SCHEDBOX_BIN` overrides): build it first with
//! `cargo build -p schedbox`, and the components with `cargo xtask build-scenarios`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schedbox::sandbox::digest;
use schedbox_tests::{example, fixture, schedbox_bin, wat};
use serde_json::Value;

static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Boot, compile and a run together stay well below this on a loaded 2-core host.
const PATIENCE: Duration = Duration::from_secs(240);

/// A running `schedbox watch` and the events it printed so far.
struct Watcher {
    child: Child,
    events: Receiver<Value>,
    seen: Vec<Value>,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Watcher {
    /// Starts `schedbox watch <component> --events json` with a private cache, plus `extra`.
    fn start(component: &Path, dir: tempfile::TempDir, extra: &[&str]) -> Self {
        let mut child = Command::new(schedbox_bin())
            .current_dir(dir.path())
            .arg("watch")
            .arg(component)
            .args(["--events", "json", "--memory", "512M", "--cache-dir"])
            .arg(dir.path().join("cache"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting schedbox watch");
        let (tx, events) = channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v: Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON event: {line:?}: {e}"));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut pipe = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    return;
                }
                sink.lock().unwrap_or_else(|p| p.into_inner()).push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self { child, events, seen: Vec::new(), stderr, _dir: dir }
    }

    fn context(&self) -> String {
        let events: Vec<String> = self.seen.iter().map(Value::to_string).collect();
        let stderr = self.stderr.lock().unwrap_or_else(|p| p.into_inner()).clone();
        format!("events so far:\n{}\nstderr:\n{stderr}", events.join("\n"))
    }

    /// Waits for the next event of kind `kind` for which `want` holds; returns it and
    /// its position in the event stream.
    fn next(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> (usize, Value) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if want(&v) {
                        return (self.seen.len() - 1, v);
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("no {what} within {PATIENCE:?}; {}", self.context()),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the watcher exited before {what} ({:?}); {}", self.child.try_wait(), self.context())
                }
            }
        }
    }

    /// Waits for the watcher to exit; its exit code.
    fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the watcher") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the watcher did not exit; {}", self.context());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The QEMU processes this watcher started (its children named qemu-system-*).
    fn qemu_children(&self) -> Vec<u32> {
        children_of(self.child.id())
            .into_iter()
            .filter(|(_, comm)| comm.starts_with("qemu-system"))
            .map(|(p, _)| p)
            .collect()
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -{name} failed");
    }
}

impl Drop for Watcher {
    /// A failed test still must not leave a VM: SIGTERM (the watcher powers the guest
    /// off), then SIGKILL if it does not exit.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let qemu = self.qemu_children();
            let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
            for pid in qemu {
                let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).stderr(Stdio::null()).status();
            }
        }
    }
}

/// `(pid, comm)` of every process whose parent is `parent`.
fn children_of(parent: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        let comm = head.split_once('(').map(|(_, c)| c.to_owned()).unwrap_or_default();
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push((pid, comm));
        }
    }
    out
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A temporary directory holding `scenario.wasm`, a copy of `from`.
fn workdir(from: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("scenario.wasm");
    std::fs::copy(from, &path).expect("copying the component");
    (dir, path)
}

/// Replaces `path` with `from`'s bytes the way editors and cargo do: a temporary file
/// in the same directory, renamed over the old one.
fn replace_atomically(path: &Path, from: &Path) {
    let tmp = path.with_file_name(".scenario.wasm.tmp");
    std::fs::copy(from, &tmp).expect("writing the temporary file");
    std::fs::rename(&tmp, path).expect("renaming it into place");
}

fn sha(path: &Path) -> String {
    let d = digest(&std::fs::read(path).expect("reading the component"));
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn is(kind: &str, v: &Value) -> bool {
    v["event"] == kind
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

#[test]
fn a_changed_component_runs_after_a_reset_verified_in_the_guest() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let first = fixture("watch-held");
    let second = example("rust", "freeze-resume");
    let (dir, path) = workdir(&first);
    let mut w = Watcher::start(&path, dir, &["--max-runs", "2"]);

    let (_, started) = w.next("watch-held's run-started", |v| is("run-started", v));
    assert_eq!(started["scenario"], "watch-held");
    assert_eq!(started["component_sha"], sha(&first));
    // The first version is mid-hold: workers in `held` (frozen) and `step-local`, the
    // fixture scheduler attached.
    w.next("watch-held holding", |v| is("step", v) && v["status"] == "holding");
    let qemu = w.qemu_children();
    assert_eq!(qemu.len(), 1, "one guest: {qemu:?}; {}", w.context());

    replace_atomically(&path, &second);
    let (cancelled_at, verdict) = w.next("watch-held's verdict", |v| is("verdict", v));
    assert_eq!((verdict["scenario"].as_str(), verdict["verdict"].as_str()), (Some("watch-held"), Some("cancelled")));

    // The reset found in the kernel what the abandoned run left, cleaned it, and a second
    // survey found nothing: verified in the guest, without a reboot.
    let (reset_at, reset) = w.next("the reset after watch-held", |v| is("reset", v));
    assert!(reset_at > cancelled_at);
    assert_eq!(reset["verified"], true, "{reset}");
    assert_eq!(reset["rebooted"], false, "{reset}");
    let checked = &reset["checked"];
    let cgroups = strings(&checked["cgroups"]["found"]);
    for cg in ["/schedbox/held", "/schedbox/step-local"] {
        assert!(cgroups.iter().any(|c| c == cg), "{cg} not found by the reset: {reset}");
    }
    assert_eq!(strings(&checked["frozen"]["found"]), ["/schedbox/held"], "{reset}");
    let tasks = strings(&checked["tasks"]["found"]);
    let count = |comm: &str| tasks.iter().filter(|t| t.contains(&format!("({comm})"))).count();
    assert_eq!((count("held-worker"), count("step-worker")), (2, 1), "{reset}");
    let scheduler = strings(&checked["scheduler"]["found"]);
    assert!(scheduler.iter().any(|s| s.contains("enabled") && s.contains("fixture")), "{reset}");
    for aspect in ["cgroups", "tasks", "scheduler", "frozen"] {
        assert_eq!(checked[aspect]["remaining"], serde_json::json!([]), "{aspect} left after the reset: {reset}");
    }
    let actions = strings(&reset["actions"]);
    assert!(actions.iter().any(|a| a == "thawed /schedbox/held"), "{reset}");

    // Then the second version runs, in the same guest, and passes.
    let (started_at, started) = w.next("freeze-resume's run-started", |v| is("run-started", v));
    assert!(started_at > reset_at, "the reset precedes the next run");
    assert_eq!(started["scenario"], "freeze-resume");
    assert_eq!(started["component_sha"], sha(&second));
    let (_, verdict) = w.next("freeze-resume's verdict", |v| is("verdict", v));
    assert_eq!(
        (verdict["scenario"].as_str(), verdict["verdict"].as_str()),
        (Some("freeze-resume"), Some("pass")),
        "{verdict}"
    );
    let (_, after) = w.next("the reset after freeze-resume", |v| is("reset", v));
    assert_eq!(after["verified"], true, "{after}");

    assert_eq!(w.exit_code(), Some(0), "{}", w.context());
    assert_eq!(w.seen.iter().filter(|v| is("booted", v)).count(), 1, "one guest for both versions");
    for pid in qemu {
        assert!(!process_exists(pid), "QEMU pid {pid} outlived the watcher");
    }
}

#[test]
fn a_broken_component_shows_its_error_and_the_next_good_version_runs() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let good = example("rust", "freeze-resume");
    let (dir, path) = workdir(&good);
    let mut w = Watcher::start(&path, dir, &["--max-runs", "5"]);
    let (_, v) = w.next("the first verdict", |v| is("verdict", v));
    assert_eq!(v["verdict"], "pass", "{v}");
    let (_, first) = w.next("the reset after the first run", |v| is("reset", v) && v["verified"] == true);
    let qemu = w.qemu_children();

    // Written in place, not even wasm.
    std::fs::write(&path, b"this is not a component\n").unwrap();
    let (_, e) = w.next("the error of the garbage file", |v| is("error", v));
    assert_eq!(e["stage"], "load");
    assert!(e["message"].as_str().unwrap().contains("not a WebAssembly binary"), "{e}");

    // A component importing what scenarios may not use is refused before instantiation.
    std::fs::write(&path, std::fs::read(wat("forbidden-import")).unwrap()).unwrap();
    let (_, e) = w.next("the refused import", |v| is("error", v));
    assert_eq!(e["stage"], "load");
    assert!(e["message"].as_str().unwrap().contains("refused before instantiation"), "{e}");

    // A component whose check traps: it runs in the guest, then its verdict is an error.
    replace_atomically(&path, &fixture("trap-in-check"));
    let (_, v) = w.next("trap-in-check's verdict", |v| is("verdict", v));
    assert_eq!(v["verdict"], "error", "{v}");
    assert!(v["messages"].to_string().contains("trapped"), "{v}");
    w.next("the reset after trap-in-check", |v| is("reset", v) && v["verified"] == true);

    // The good version again: the same bytes, so no compile (the in-memory cache).
    replace_atomically(&path, &good);
    let (_, started) = w.next("the good version's run-started", |v| is("run-started", v));
    assert_eq!(started["component_sha"], sha(&good));
    assert_eq!(started["cache"], "memory", "{started}");
    let (_, v) = w.next("the good version's verdict", |v| is("verdict", v));
    assert_eq!(v["verdict"], "pass", "{v}");
    assert_eq!(w.exit_code(), Some(0), "{}", w.context());

    let boots = w.seen.iter().filter(|v| is("booted", v)).count();
    assert_eq!(boots, 1, "one guest for the whole session; {}", w.context());
    assert_eq!(first["rebooted"], false);
    for pid in qemu {
        assert!(!process_exists(pid), "QEMU pid {pid} outlived the watcher");
    }
}

#[test]
fn sigterm_mid_run_and_sigint_while_idle_power_the_guest_off() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    for (signal, component, busy) in [("TERM", fixture("watch-held"), true), ("INT", fixture("check-fails"), false)] {
        let (dir, path) = workdir(&component);
        let mut w = Watcher::start(&path, dir, &[]);
        if busy {
            w.next("holding", |v| is("step", v) && v["status"] == "holding");
        } else {
            w.next("the reset after the run", |v| is("reset", v));
        }
        let qemu = w.qemu_children();
        assert_eq!(qemu.len(), 1, "SIG{signal}: one guest before the signal: {qemu:?}");
        w.signal(signal);
        let (_, stopped) = w.next("stopped", |v| is("stopped", v));
        assert_eq!(stopped["reason"], format!("SIG{signal}"));
        let code = w.exit_code();
        assert!(matches!(code, Some(0 | 1)), "SIG{signal}: exit {code:?}; {}", w.context());
        for pid in &qemu {
            assert!(!process_exists(*pid), "SIG{signal}: QEMU pid {pid} outlived the watcher; {}", w.context());
        }
        assert!(w.context().contains("powering the guest off"), "{}", w.context());
        if busy {
            // The abandoned run was not reset (the guest was powered off instead).
            let last = w.seen.iter().rev().find(|v| is("verdict", v)).cloned();
            assert_eq!(last.map(|v| v["verdict"].clone()), Some(Value::from("cancelled")));
        }
    }
}

#[test]
fn the_reset_keeps_the_boot_scheduler_attached() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (dir, path) = workdir(&fixture("check-fails"));
    let mut w = Watcher::start(&path, dir, &["--boot-scheduler", "fixture", "--max-runs", "1"]);
    // The baseline reset of the fresh guest and the one after the run: both verified
    // without a reboot, and both leave the boot scheduler attached (its loader is the one
    // process kept, sched_ext stays enabled with its ops).
    for when in ["after boot", "after the run"] {
        if when == "after the run" {
            let (_, v) = w.next("check-fails' verdict", |v| is("verdict", v));
            assert_eq!(v["verdict"], "fail", "check-fails fails on purpose: {v}");
        }
        let (_, r) = w.next(when, |v| is("reset", v));
        assert_eq!((r["verified"].as_bool(), r["rebooted"].as_bool()), (Some(true), Some(false)), "{when}: {r}");
        let kept = strings(&r["kept"]);
        assert!(kept.len() == 1 && kept[0].contains("\"enabled\"") && kept[0].contains("\"fixture\""), "{when}: {r}");
        assert_eq!(r["checked"]["scheduler"]["found"], serde_json::json!([]), "{when}: {r}");
    }
    assert_eq!(w.exit_code(), Some(1), "{}", w.context());
}

#[test]
fn build_runs_on_source_changes_and_a_failed_build_keeps_the_loop_going() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (src, out) = (dir.path().join("src"), dir.path().join("out"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    // The "build" copies the component that src/which names into out/.
    let which = src.join("which");
    std::fs::write(&which, fixture("check-fails").display().to_string()).unwrap();
    let component = out.join("scenario.wasm");
    std::fs::copy(fixture("check-fails"), &component).unwrap();
    let mut w = Watcher::start(
        &component,
        dir,
        &["--build", "cp \"$(cat src/which)\" out/scenario.wasm", "--source", "src", "--max-runs", "2"],
    );
    let (_, b) = w.next("the first build", |v| is("build", v));
    assert_eq!(b["ok"], true, "{b}");
    let (_, v) = w.next("check-fails' verdict", |v| is("verdict", v));
    assert_eq!(v["verdict"], "fail");
    w.next("the reset", |v| is("reset", v));

    // A source change whose build fails: shown, and nothing runs.
    std::fs::write(&which, "/nonexistent/component.wasm").unwrap();
    let (_, b) = w.next("the failed build", |v| is("build", v));
    assert_eq!(b["ok"], false, "{b}");
    assert!(b["output"].as_str().unwrap().contains("/nonexistent/component.wasm"), "{b}");

    // The next source change builds the other component, which then runs.
    let second = example("rust", "freeze-resume");
    std::fs::write(&which, second.display().to_string()).unwrap();
    let (build_at, b) = w.next("the good build", |v| is("build", v) || is("run-started", v));
    assert_eq!((b["event"].as_str(), b["ok"].as_bool()), (Some("build"), Some(true)), "{b}");
    let (started_at, started) = w.next("freeze-resume's run-started", |v| is("run-started", v));
    assert!(started_at > build_at);
    assert_eq!(started["component_sha"], sha(&second));
    let (_, v) = w.next("freeze-resume's verdict", |v| is("verdict", v));
    assert_eq!(v["verdict"], "pass", "{v}");
    assert_eq!(w.exit_code(), Some(0), "{}", w.context());
}

#[test]
fn the_reset_ends_an_orphan_the_executor_does_not_know() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let (dir, path) = workdir(&fixture("watch-orphan"));
    // /bin/sh and /bin/sleep are dynamically linked: their loader and libc are staged with them.
    let mut w =
        Watcher::start(&path, dir, &["--payload", "sh=/bin/sh", "--payload", "sleep=/bin/sleep", "--max-runs", "1"]);
    let (_, v) = w.next("watch-orphan's verdict", |v| is("verdict", v));
    assert_eq!(v["verdict"], "pass", "the payload ran and exited 0: {v}");
    // The scenario's own teardown ended (its payload had exited); the background `sleep`
    // it started lives on outside every scenario cgroup until the reset finds and ends it.
    let (_, r) = w.next("the reset after the run", |v| is("reset", v));
    assert_eq!((r["verified"].as_bool(), r["rebooted"].as_bool()), (Some(true), Some(false)), "{r}");
    let tasks = strings(&r["checked"]["tasks"]["found"]);
    assert!(tasks.len() == 1 && tasks[0].contains("(sleep) in /") && !tasks[0].contains("/schedbox"), "{r}");
    assert_eq!(r["checked"]["tasks"]["remaining"], serde_json::json!([]), "{r}");
    assert!(strings(&r["actions"]).iter().any(|a| a.starts_with("killed pid") && a.contains("(sleep)")), "{r}");
    assert_eq!(w.exit_code(), Some(0), "{}", w.context());
}
