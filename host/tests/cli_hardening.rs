//! The `schedbox` binary against hostile input and impatient users, without a
//! guest: closed pipes, exit codes, error wording, terminal output.

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn built(rel: &str) -> PathBuf {
    let p = repo().join(rel);
    assert!(p.is_file(), "{} is missing: run `cargo xtask build-scenarios`", p.display());
    p
}

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
