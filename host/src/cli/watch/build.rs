//! `--build "<cmd>"`: the author's build command, run through `sh -c` in the working
//! directory before the first run and after source changes. A failure is shown (exit
//! status and the output's last lines) and the loop keeps going.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::events::Events;
use super::signals;

/// Lines of a failed build's output shown.
const TAIL: usize = 30;

/// Runs `cmd`; whether it succeeded. `ended` is called once the build has exited and
/// before its result is shown or emitted. A signal to the watcher stops the build too.
pub fn run(cmd: &str, events: &mut Events, ended: &mut dyn FnMut()) -> bool {
    let t0 = Instant::now();
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("building: {cmd}"));
    bar.enable_steady_tick(Duration::from_millis(100));
    let child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so stopping it stops what it started (cargo, rustc).
        .process_group(0)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            ended();
            bar.finish_and_clear();
            let message = format!("could not start the build command {cmd:?}: {e}");
            eprintln!("build failed: {message}");
            events.emit("build", json!({ "ok": false, "ms": 0, "code": null, "output": message }));
            return false;
        }
    };
    // Both pipes drain on threads so a chatty build never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if signals::received().is_some() => {
                stop(&mut child);
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                tracing::warn!("waiting for the build: {e}");
                stop(&mut child);
                break None;
            }
        }
    };
    let output = format!("{}{}", out.join().unwrap_or_default(), err.join().unwrap_or_default());
    // Before anyone hears of the result: changes after this point are not the build's.
    ended();
    bar.finish_and_clear();
    let ms = t0.elapsed().as_millis() as u64;
    let ok = status.is_some_and(|s| s.success());
    let lines: Vec<&str> = output.lines().collect();
    let tail = lines[lines.len().saturating_sub(TAIL)..].join("\n");
    if ok {
        eprintln!("build ok in {ms} ms");
    } else {
        let how = status.map(|s| s.to_string()).unwrap_or_else(|| "stopped".into());
        eprintln!("build failed ({how}) after {ms} ms; the last lines:\n{tail}\nfix the source and save again");
    }
    events.emit(
        "build",
        json!({ "ok": ok, "ms": ms, "code": status.and_then(|s| s.code()), "output": if ok { String::new() } else { tail } }),
    );
    ok
}

/// Kills the build's whole process group and reaps the shell.
fn stop(child: &mut Child) {
    // SAFETY: kill(2) touches no memory; the group id is our unreaped child's pid, which
    // leads the group it was started in (`process_group(0)`), so it cannot name another group.
    unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
    let _ = child.wait();
}
