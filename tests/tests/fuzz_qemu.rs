//! `schedbox fuzz` end to end on the qemu backend (or `SCHEDBOX_TEST_BACKEND`): against
//! the built-in `fixture-error` scheduler, which the kernel ejects (`scx_bpf_error`) a
//! second after it attaches, a fixed seed's first stream fails the `scheduler-exit`
//! oracle with the kernel's reason, is minimised to a smaller valid stream, and that
//! stream replayed with `schedbox run` fails the same way.

use std::process::Command;

use schedbox::op_model::OpStream;
use schedbox::validate::validate_stream;
use schedbox_tests::schedbox_bin;

#[test]
fn fuzz_finds_minimises_and_the_minimal_stream_replays() {
    let out = tempfile::tempdir().expect("tempdir");
    let backend = std::env::var("SCHEDBOX_TEST_BACKEND").unwrap_or_else(|_| "qemu".into());
    let run = Command::new(schedbox_bin())
        .args(["fuzz", "--scheduler", "fixture-error", "--seed", "1", "--runs", "1", "--minimise-runs", "12"])
        .args(["--repro", "1", "--topology", "1n1l2c1t", "--memory", "512M", "--backend", &backend])
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("running schedbox fuzz");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "a finding exits 1:\n{stderr}");
    let dir =
        std::fs::read_dir(out.path()).expect("out dir").next().expect("a finding directory").expect("entry").path();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).expect("report.json")).expect("report JSON");
    assert_eq!(report["oracle"], "scheduler-exit", "{report:#}");
    // The kernel's reason for the ejection, from its sched_ext log line.
    assert_eq!(report["signature"], "scheduler-exit:scx_bpf_error", "{report:#}");
    let original: OpStream = serde_json::from_value(report["original"].clone()).expect("original stream");
    let minimal: OpStream = serde_json::from_slice(&std::fs::read(dir.join("minimal.json")).expect("minimal.json"))
        .expect("minimal stream");
    validate_stream(&minimal).expect("the minimal stream is valid");
    assert!(minimal.op_count() <= original.op_count(), "{report:#}");
    assert!(minimal.ops().any(|(_, _, op)| op.kind().wit_name() == "attach-scheduler"), "{minimal:#?}");

    let replay = Command::new(schedbox_bin())
        .arg("run")
        .arg(dir.join("minimal.json"))
        .args(["--backend", &backend, "--report"])
        .arg(out.path().join("replay.json"))
        .output()
        .expect("running schedbox run");
    let text = String::from_utf8_lossy(&replay.stdout).into_owned() + &String::from_utf8_lossy(&replay.stderr);
    assert_eq!(replay.status.code(), Some(1), "the replay fails:\n{text}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("replay.json")).expect("replay report")).expect("JSON");
    let steps = r["scenarios"][0]["steps"].to_string();
    assert!(steps.contains("is no longer attached") && steps.contains("scx_bpf_error"), "{r:#}");
}
