//! The `schedbox` binary against hostile input and impatient users, without a
//! guest: closed pipes, exit codes, error wording, terminal output.

use std::process::{Command, Stdio};

mod common;

use common::built;

#[test]
fn a_closed_stdout_ends_plan_quietly() {
    // thousand-ops' JSON plan is larger than a pipe's buffer, so the write meets
    // the closed pipe however the two processes are scheduled.
    let mut child = Command::new(env!("CARGO_BIN_EXE_schedbox"))
        .args(["plan", "--json"])
        .arg(built("target/scenarios/fixtures/thousand-ops.wasm"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}

#[test]
fn component_text_reaches_the_terminal_escaped() {
    // A report whose check messages and step error carry terminal controls (a
    // hostile component's verdict): `schedbox report` prints them inert.
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let json = serde_json::json!({
        "scenarios": [{
            "name": "hostile",
            "verdict": "fail",
            "messages": ["\u{1b}[2J\u{1b}]0;owned\u{7} cleared", "right\u{202E}left"],
        }]
    });
    std::fs::write(&report, json.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_schedbox")).arg("report").arg(&report).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!out.stdout.contains(&0x1b) && !out.stdout.contains(&0x07), "{stdout:?}");
    assert!(!stdout.contains('\u{202E}'), "{stdout:?}");
    assert!(stdout.contains("\\u{1b}[2J\\u{1b}]0;owned\\u{7} cleared"), "{stdout}");
    assert!(stdout.contains("right\\u{202e}left"), "{stdout}");
}

#[test]
fn exit_codes_follow_the_documented_table() {
    let help = Command::new(env!("CARGO_BIN_EXE_schedbox")).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Exit status:") && text.contains("  3        guest or host environment failure"), "{text}");

    // Bad usage: 2.
    let out = Command::new(env!("CARGO_BIN_EXE_schedbox")).args(["run", "--no-such-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    // A guest that cannot boot (no usable kernel) is the environment's failure, not
    // the scenario's and not bad usage: 3, with the scenario reported as an error.
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_schedbox"))
        .arg("run")
        .arg(built("target/scenarios/rust/move-tasks.wasm"))
        .arg("--kernel")
        .arg(dir.path().join("no-such-vmlinux"))
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ERROR   move-tasks") && stdout.contains("booting a"), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["scenarios"][0]["verdict"], "error", "{json:#}");
}

#[test]
fn an_error_names_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.wasm");
    let missing = missing.to_str().unwrap();
    let scenario = built("target/scenarios/rust/move-tasks.wasm");
    let scenario = scenario.to_str().unwrap();
    let report = dir.path().join("no-such-dir").join("r.json");
    let cases: [&[&str]; 5] = [
        &["run", missing],
        &["plan", missing],
        &["inspect", missing],
        &["plan", "--policy", missing, scenario],
        &["run", "--kernel", missing, "--report", report.to_str().unwrap(), scenario],
    ];
    for args in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_schedbox")).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("{args:?}: {stderr}"));
        assert_eq!(line.matches("os error 2").count(), 1, "{args:?}: {line}");
        assert!(line.contains("missing.wasm") || line.contains("no-such-dir"), "{args:?}: {line}");
    }
}

/// Runs `schedbox ARGS` with stderr a pipe (never a terminal): (exit code, stderr bytes).
fn stderr_of(args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> (Option<i32>, Vec<u8>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_schedbox"));
    cmd.args(args).env_remove("RUST_LOG").env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.code(), out.stderr)
}

#[test]
fn the_backend_warning_is_logged_once_per_process() {
    // `run` picks the backend for the report, then again for each guest it boots:
    // where /dev/kvm is software PVM or missing, that used to warn each time.
    let dir = tempfile::tempdir().unwrap();
    let scenario = built("target/scenarios/rust/move-tasks.wasm");
    let kernel = dir.path().join("no-such-vmlinux");
    let (code, stderr) =
        stderr_of(&["run".as_ref(), scenario.as_os_str(), "--kernel".as_ref(), kernel.as_os_str()], &[]);
    let stderr = String::from_utf8_lossy(&stderr);
    assert_eq!(code, Some(3), "{stderr}");
    let warnings = stderr.lines().filter(|l| l.contains("WARN") && l.contains("/dev/kvm")).count();
    assert!(warnings <= 1, "{stderr}");
}

#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    // The backend warning (where /dev/kvm is PVM or missing) and the boot error's
    // log lines; on any host, -v adds schedbox's own info lines.
    let dir = tempfile::tempdir().unwrap();
    let scenario = built("target/scenarios/rust/move-tasks.wasm");
    let kernel = dir.path().join("no-such-vmlinux");
    let args = ["-v".as_ref(), "run".as_ref(), scenario.as_os_str(), "--kernel".as_ref(), kernel.as_os_str()];
    let (_, stderr) = stderr_of(&args, &[]);
    assert!(!stderr.contains(&0x1b), "{}", String::from_utf8_lossy(&stderr));
    let (_, stderr) = stderr_of(&args, &[("NO_COLOR", "1")]);
    assert!(!stderr.contains(&0x1b), "{}", String::from_utf8_lossy(&stderr));
}

#[test]
fn verbose_logging_is_schedbox_s_own() {
    // Compiling a component (no cache) makes wasmtime and cranelift log thousands
    // of debug lines; -vv shows schedbox's debug lines and none of theirs.
    let scenario = built("target/scenarios/rust/move-tasks.wasm");
    let args = ["-vv".as_ref(), "plan".as_ref(), "--no-cache".as_ref(), scenario.as_os_str()];
    let (code, stderr) = stderr_of(&args, &[]);
    let stderr = String::from_utf8_lossy(&stderr);
    assert_eq!(code, Some(0), "{stderr}");
    let level_and_target = |l: &str| -> Option<(String, String)> {
        let mut words = l.split_whitespace().skip(1);
        Some((words.next()?.to_owned(), words.next()?.trim_end_matches(':').to_owned()))
    };
    let lines: Vec<(String, String)> = stderr.lines().filter_map(level_and_target).collect();
    let foreign: Vec<&(String, String)> =
        lines.iter().filter(|(lvl, t)| (lvl == "DEBUG" || lvl == "INFO") && !t.starts_with("schedbox")).collect();
    assert!(foreign.is_empty(), "{} foreign lines, e.g. {:?}", foreign.len(), foreign.first());
    // RUST_LOG still overrides: it can ask for them.
    let (_, stderr) = stderr_of(&args, &[("RUST_LOG", "debug")]);
    assert!(String::from_utf8_lossy(&stderr).lines().count() > 100, "RUST_LOG=debug shows every crate");
}
