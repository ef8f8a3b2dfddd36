//! `schedbox run` as a user runs it: exit codes, the verdict table and the
//! JSON report, against a real guest (qemu backend).

use std::process::Command;

mod common;

use common::{built, repo};

#[test]
fn a_failing_check_exits_1_with_its_messages_and_a_report() {
    let report = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_schedbox"))
        .arg("run")
        .arg(built("target/scenarios/fixtures/check-fails.wasm"))
        .arg("--report")
        .arg(report.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains("check-fails: failing on purpose after 1 step(s)"), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report.path()).unwrap()).unwrap();
    let s = &json["scenarios"][0];
    assert_eq!(s["name"], "check-fails");
    assert_eq!(s["verdict"], "fail");
    assert_eq!(s["steps"][0]["status"], "passed");
    assert_eq!(s["steps"][0]["index"], 0);
    // The capture the scenario asked for is in the report: an empty, existing cgroup.
    assert_eq!(s["results"]["cgroup_procs"][0]["tag"], "only-procs");
    assert_eq!(s["results"]["cgroup_procs"][0]["pids"], serde_json::json!([]));
}

#[test]
fn an_example_passes_and_exits_0() {
    let out = Command::new(env!("CARGO_BIN_EXE_schedbox"))
        .arg("run")
        .arg(built("target/scenarios/rust/move-tasks.wasm"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("PASS    move-tasks"), "{stdout}");
    assert!(stdout.contains("1 scenario(s): 1 passed, 0 failed"), "{stdout}");
}

#[test]
fn a_missing_payload_is_a_usage_error() {
    let stream = repo().join("tests/golden/rust/move-tasks.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stream).unwrap()).unwrap();
    json["scenario"]["payloads"] = serde_json::json!(["fio"]);
    let f = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    std::fs::write(f.path(), json.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_schedbox")).arg("run").arg(f.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("needs payload \"fio\": pass --payload fio=PATH"), "{stderr}");
}

/// Replays `tests/golden/rust/move-tasks.json` changed by `edit`: (exit code, stderr).
fn replay_edited(edit: impl FnOnce(&mut serde_json::Value)) -> (Option<i32>, String) {
    let stream = repo().join("tests/golden/rust/move-tasks.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&stream).unwrap()).unwrap();
    edit(&mut json);
    let f = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    std::fs::write(f.path(), json.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_schedbox")).arg("run").arg(f.path()).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_cgroup_named_like_a_controller_file_is_refused_before_boot() {
    let (code, stderr) = replay_edited(|j| j["steps"][0]["ops"][1]["name"] = "cpu.max".into());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("scenario \"move-tasks\", step 0, op 1 (add-cgroup): cgroup name \"cpu.max\" collides"),
        "{stderr}"
    );
    assert!(stderr.contains("does not start with \"cpu.\""), "{stderr}");
}

#[test]
fn an_over_ceiling_hold_is_refused_before_boot() {
    let (code, stderr) = replay_edited(|j| j["steps"][0]["hold"] = serde_json::json!({ "fixed-ms": u64::MAX }));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("scenario \"move-tasks\", step 0: hold: a fixed hold holds"), "{stderr}");
    assert!(stderr.contains("hold at most 3600000 ms per step"), "{stderr}");
}

#[test]
fn a_payload_name_with_a_slash_is_refused_by_validation_not_staging() {
    let (code, stderr) = replay_edited(|j| j["scenario"]["payloads"] = serde_json::json!(["bin/fio"]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("scenario \"move-tasks\", describe: payload name \"bin/fio\" is not a plain name"),
        "{stderr}"
    );
    assert!(stderr.contains("the NAME of --payload NAME=PATH"), "{stderr}");
    assert!(!stderr.contains("pass --payload bin/fio=PATH"), "no contradictory fix: {stderr}");
}

#[test]
fn replays_are_checked_like_planned_streams() {
    let (code, stderr) = replay_edited(|j| j["steps"][0]["ops"][0]["nmae"] = "x".into());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not an op stream") && stderr.contains("unknown field `nmae`"), "{stderr}");
    let (code, stderr) = replay_edited(|j| j["contract"] = "anything".into());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("the stream's contract \"anything\" is not this host's contract"), "{stderr}");
    let (code, stderr) = replay_edited(|j| j["steps"][0]["ops"][4]["tag"] = "t".repeat(1 << 20).into());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("step 0, op 4 (capture-cgroup-procs): the op's arguments have 1048579 bytes")
            && stderr.contains("the bound is 65536 bytes"),
        "{}",
        &stderr[..stderr.len().min(2000)]
    );
}
