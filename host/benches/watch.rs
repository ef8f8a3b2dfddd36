//! `schedbox watch`: hot-reload latency (file renamed into place → the new version's
//! first op running in the booted guest), the guest reset's cost, and cached vs
//! uncached loads of a large component. Prints tables for docs/BENCHMARKS.md.
//!
//! `cargo bench -p schedbox --bench watch` (after `cargo xtask build-scenarios` and
//! `schedbox kernel fetch --modules`); `SCHEDBOX_RELOADS` sets the reloads per row.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use schedbox::sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn built(rel: &str) -> PathBuf {
    let p = repo().join(rel);
    assert!(p.is_file(), "{} is missing: run `cargo xtask build-scenarios`", p.display());
    p
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn row(what: &str, v: Vec<f64>) {
    let runs: Vec<String> = v.iter().map(|x| format!("{x:.0}")).collect();
    println!("| {what} | **{:.0}** | {} |", median(v.clone()), runs.join(" / "));
}

/// `bytes` plus a custom section named `schedbox-bench` holding `n`: the same component,
/// new bytes (a new SHA-256, so a compile).
fn variant(bytes: &[u8], n: u64) -> Vec<u8> {
    let name = b"schedbox-bench";
    let payload = n.to_le_bytes();
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(&payload);
    let mut out = bytes.to_vec();
    out.push(0);
    let mut len = section.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        out.push(if len == 0 { byte } else { byte | 0x80 });
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(&section);
    out
}

fn load_table() {
    println!("\n### Component load (in-process, release)\n");
    println!("| what | median ms | runs ms |");
    println!("|---|---|---|");
    for rel in ["target/scenarios/fixtures/large-runtime.wasm", "target/scenarios/rust/freeze-resume.wasm"] {
        let path = built(rel);
        let mb = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let cache = tempfile::tempdir().unwrap();
        let config = || SandboxConfig { cache_root: Some(cache.path().to_owned()), ..SandboxConfig::default() };
        let mut cold = Vec::new();
        for _ in 0..3 {
            let _ = std::fs::remove_dir_all(cache.path());
            let sb = Sandbox::new(config()).unwrap();
            let t = Instant::now();
            let l = sb.load_file(&path).unwrap();
            cold.push(ms(t.elapsed()));
            assert!(!l.from_cache);
        }
        let mut disk = Vec::new();
        for _ in 0..5 {
            let sb = Sandbox::new(config()).unwrap();
            let t = Instant::now();
            let l = sb.load_file(&path).unwrap();
            disk.push(ms(t.elapsed()));
            assert!(l.from_cache);
        }
        let sb = Sandbox::new(config()).unwrap();
        sb.load_file(&path).unwrap();
        let memory: Vec<f64> = (0..5)
            .map(|_| {
                let t = Instant::now();
                sb.load_file(&path).unwrap();
                ms(t.elapsed())
            })
            .collect();
        row(&format!("{name} ({mb:.1} MB): uncached (compile + cache write)"), cold);
        row(&format!("{name}: on-disk cache hit (new process's first load)"), disk);
        row(&format!("{name}: in-memory hit (watch reload of seen bytes: read + SHA-256)"), memory);
    }
}

/// A `schedbox watch --events json` on one file, its events as (arrival, event).
struct Watch {
    child: Child,
    rx: Receiver<(Instant, Value)>,
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Watch {
    fn start(first: &[u8]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scenario.wasm");
        std::fs::write(&path, first).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_schedbox"))
            .arg("watch")
            .arg(&path)
            .args(["--events", "json", "--memory", "512M", "--cache-dir"])
            .arg(dir.path().join("cache"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send((Instant::now(), v)).is_err() {
                        return;
                    }
                }
            }
        });
        Self { child, rx, _dir: dir, path }
    }

    fn until(&self, want: impl Fn(&Value) -> bool) -> (Instant, Value) {
        loop {
            let (at, v) = self.rx.recv_timeout(Duration::from_secs(300)).expect("the watcher went quiet");
            if want(&v) {
                return (at, v);
            }
        }
    }

    /// Renames `bytes` into place; the time of the rename.
    fn save(&self, bytes: &[u8]) -> Instant {
        let tmp = self.path.with_file_name(".scenario.wasm.tmp");
        std::fs::write(&tmp, bytes).unwrap();
        let t = Instant::now();
        std::fs::rename(&tmp, &self.path).unwrap();
        t
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

fn first_action(v: &Value) -> bool {
    (v["event"] == "op" || v["event"] == "setup") && !v["since_change_ms"].is_null()
}

fn reload_table(n: usize) {
    println!("\n### Hot reload (`schedbox watch`, release, qemu TCG, 1n1l2c1t)\n");
    println!("File renamed into place → the new version's first guest action (Backdrop setup or op)");
    println!("acknowledged by the agent, timed by the bench reading the event stream. A rename");
    println!("settles at once (no debounce wait).\n");
    println!("| what | median ms | runs ms |");
    println!("|---|---|---|");
    let quick = std::fs::read(built("target/scenarios/fixtures/check-fails.wasm")).unwrap();
    let held = std::fs::read(built("target/scenarios/fixtures/watch-held.wasm")).unwrap();
    let w = Watch::start(&quick);
    w.until(|v| v["event"] == "reset" && v["verified"] == true);
    w.until(|v| v["event"] == "reset" && v["verified"] == true);

    // Idle guest, new bytes each time: compile + plan + begin + first op.
    let mut compiled = Vec::new();
    let mut resets = Vec::new();
    for i in 0..n {
        let t = w.save(&variant(&quick, i as u64 + 1));
        let (_, started) = w.until(|v| v["event"] == "run-started");
        assert_eq!(started["cache"], "compiled");
        let (at, _) = w.until(first_action);
        compiled.push(ms(at - t));
        let (_, r) = w.until(|v| v["event"] == "reset");
        resets.push(r["ms"].as_f64().unwrap());
    }
    // Idle guest, bytes seen before (an undo, a rebuild with no change): no compile.
    let mut seen = Vec::new();
    for i in 0..n {
        let t = w.save(&variant(&quick, i as u64 + 1));
        let (_, started) = w.until(|v| v["event"] == "run-started");
        assert_eq!(started["cache"], "memory");
        let (at, _) = w.until(first_action);
        seen.push(ms(at - t));
        let (_, r) = w.until(|v| v["event"] == "reset");
        resets.push(r["ms"].as_f64().unwrap());
    }
    // Saved while the previous version still runs (watch-held: workers, a frozen cgroup,
    // the fixture scheduler): cancel + reset that cleans all of it + the new version.
    let mut busy = Vec::new();
    let mut busy_resets = Vec::new();
    let mut guest_us = Vec::new();
    for i in 0..n {
        w.save(&variant(&held, i as u64));
        w.until(|v| v["event"] == "run-started");
        w.until(|v| v["event"] == "step" && v["status"] == "holding");
        let t = w.save(&variant(&held, 1000 + i as u64));
        let (_, r) = w.until(|v| v["event"] == "reset");
        assert_eq!(r["verified"], true);
        busy_resets.push(r["ms"].as_f64().unwrap());
        guest_us.push(r["guest_us"].as_f64().unwrap() / 1e3);
        let (at, _) = w.until(first_action);
        busy.push(ms(at - t));
    }
    row("idle guest, changed bytes (compile, check-fails 2.5 MB)", compiled);
    row("idle guest, bytes seen before (in-memory cache)", seen);
    row("previous version still running (cancel + cleaning reset + compile, watch-held)", busy);
    println!("\n| reset | median ms | runs ms |");
    println!("|---|---|---|");
    row("verified reset after a finished run (nothing left; host round trip)", resets);
    row("verified reset after an abandoned run (3 workers, frozen cgroup, scheduler; host)", busy_resets);
    row("… of which in the guest", guest_us);
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let n: usize = std::env::var("SCHEDBOX_RELOADS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    load_table();
    reload_table(n);
}
