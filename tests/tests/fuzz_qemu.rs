//! `schedbox fuzz` end to end on the qemu backend (or `SCHEDBOX_TEST_BACKEND`): against
//! the built-in `fixture-error` scheduler, which the kernel ejects (`scx_bpf_error`) a
//! second after it attaches, a fixed seed's first stream fails the `scheduler-exit`
//! oracle with the kernel's reason, is minimised to a smaller valid stream that fails in
//! each of three re-runs (its holds lengthened when the cut left it at the edge of the
//! second it needs), and that stream replayed with `schedbox run` fails the same way.
//!
//! And the planted bug: `fixture-planted` exits through `scx_bpf_error` only when a
//! SCHED_EXT task's cpumask narrows while its cgroup is frozen. The fuzzer finds it from
//! a fixed seed within a budget of streams, minimises it to the freeze and the narrowing
//! (and what they need: the attach, the cgroup with a SCHED_EXT worker), and the minimal
//! stream replays to the same failure, while the same ops pass on the plain fixture and
//! pass in the other order (narrow, then freeze). `--ignored`: the same over several seeds.

use std::path::Path;
use std::process::Command;

use schedbox::op_model::{Op, OpStream};
use schedbox::validate::validate_stream;
use schedbox_tests::schedbox_bin;

#[test]
fn fuzz_finds_minimises_and_the_minimal_stream_replays() {
    let out = tempfile::tempdir().expect("tempdir");
    let backend = std::env::var("SCHEDBOX_TEST_BACKEND").unwrap_or_else(|_| "qemu".into());
    let run = Command::new(schedbox_bin())
        .args(["fuzz", "--scheduler", "fixture-error", "--seed", "1", "--runs", "1", "--minimise-runs", "12"])
        .args(["--repro", "3", "--topology", "1n1l2c1t", "--memory", "512M", "--backend", &backend])
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("running schedbox fuzz");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "a finding exits 1:\n{stderr}");
    // The finding's directory (beside summary.json).
    let dir = std::fs::read_dir(out.path())
        .expect("out dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.is_dir())
        .expect("a finding directory");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("summary.json")).expect("summary.json")).expect("JSON");
    assert_eq!(summary["streams"][0]["finding"], "scheduler-exit:scx_bpf_error", "{summary:#}");
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
    // The ejection needs a second under the scheduler: a minimal stream cut to the edge
    // of that fails only sometimes, and gets longer holds until it fails every re-run.
    assert_eq!(report["reproduced"]["runs"], 3, "{report:#}");
    assert_eq!(report["reproduced"]["failed"], 3, "{report:#}");

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

/// `schedbox fuzz --scheduler fixture-planted` with `args`; the finding's directory and
/// its report.
fn fuzz_planted(out: &Path, backend: &str, args: &[&str]) -> (std::path::PathBuf, serde_json::Value) {
    let run = Command::new(schedbox_bin())
        .args(["fuzz", "--scheduler", "fixture-planted", "--repro", "1", "--topology", "1n1l2c1t"])
        .args(["--memory", "512M", "--backend", backend])
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("running schedbox fuzz");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "the planted bug is found (a finding exits 1):\n{stderr}");
    let dir = std::fs::read_dir(out)
        .expect("out dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no finding directory:\n{stderr}"));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).expect("report.json")).expect("report JSON");
    (dir, report)
}

/// Index (in stream order) of a freeze of some cgroup followed by an op that narrows the
/// cpumask of that cgroup's tasks, if the stream has one.
fn freeze_then_narrow(s: &OpStream) -> Option<(usize, usize)> {
    let ops: Vec<&Op> = s.ops().map(|(_, _, op)| op).collect();
    ops.iter().enumerate().find_map(|(i, op)| {
        let Op::FreezeCgroup { cgroup } = op else { return None };
        let narrows = |o: &Op| match o {
            Op::SetCpuset { cgroup: c, .. } | Op::SetAffinity { cgroup: c, .. } => c == cgroup,
            Op::SwapCpusets { a, b } => a == cgroup || b == cgroup,
            Op::MoveAllTasks { to, .. } => to == cgroup,
            _ => false,
        };
        ops[i + 1..].iter().position(|o| narrows(o)).map(|j| (i, i + 1 + j))
    })
}

/// Checks a planted-bug finding: the oracle, the minimal stream's trigger and size.
fn check_planted_finding(dir: &Path, report: &serde_json::Value) -> OpStream {
    assert_eq!(report["oracle"], "scheduler-exit", "{report:#}");
    assert_eq!(report["signature"], "scheduler-exit:scx_bpf_error", "{report:#}");
    let detail = report["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("cpumask of frozen task"), "the scheduler's own words: {detail}");
    let original: OpStream = serde_json::from_value(report["original"].clone()).expect("original stream");
    let minimal: OpStream = serde_json::from_slice(&std::fs::read(dir.join("minimal.json")).expect("minimal.json"))
        .expect("minimal stream");
    validate_stream(&minimal).expect("the minimal stream is valid");
    assert!(freeze_then_narrow(&minimal).is_some(), "the minimal stream keeps the trigger: {minimal:#?}");
    assert!(minimal.ops().any(|(_, _, op)| op.kind().wit_name() == "attach-scheduler"), "{minimal:#?}");
    // The attach, the freeze, the narrowing (and at most one op the search could not drop).
    assert!(minimal.op_count() <= 4, "{} ops left: {minimal:#?}", minimal.op_count());
    assert!(minimal.op_count() < original.op_count(), "{report:#}");
    assert_eq!(report["reproduced"]["failed"], 1, "{report:#}");
    minimal
}

#[test]
fn fuzz_finds_and_minimises_the_planted_bug() {
    let out = tempfile::tempdir().expect("tempdir");
    let backend = std::env::var("SCHEDBOX_TEST_BACKEND").unwrap_or_else(|_| "qemu".into());
    // Seed 1 finds it in its first stream; the budget allows four.
    let (dir, report) = fuzz_planted(out.path(), &backend, &["--seed", "1", "--runs", "4", "--minimise-runs", "80"]);
    let minimal = check_planted_finding(&dir, &report);

    // Controls: the same ops on the plain fixture, and the narrowing before the freeze.
    let plain: OpStream = serde_json::from_str(
        &serde_json::to_string(&minimal).expect("JSON").replace("\"fixture-planted\"", "\"fixture\""),
    )
    .expect("stream");
    let mut reordered = minimal.clone();
    let (f, _) = freeze_then_narrow(&minimal).expect("trigger");
    let (section, index, _) = minimal.ops().nth(f).expect("the freeze");
    let freeze = match section {
        schedbox::op_model::Section::Step(s) => reordered.steps[s].ops.remove(index),
        schedbox::op_model::Section::Backdrop => reordered.backdrop.ops.remove(index),
    };
    reordered.steps.last_mut().expect("a step").ops.push(freeze);
    assert!(freeze_then_narrow(&reordered).is_none(), "{reordered:#?}");
    validate_stream(&reordered).expect("the reordered stream is valid");
    let mut files = Vec::new();
    for (name, s) in [("control-plain", plain), ("control-order", reordered)] {
        let mut s = s;
        s.scenario.name = name.into();
        let path = out.path().join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&s).expect("JSON")).expect("write");
        files.push(path);
    }

    let replay = Command::new(schedbox_bin())
        .arg("run")
        .arg(dir.join("minimal.json"))
        .args(&files)
        .args(["--backend", &backend, "--report"])
        .arg(out.path().join("replay.json"))
        .output()
        .expect("running schedbox run");
    let text = String::from_utf8_lossy(&replay.stdout).into_owned() + &String::from_utf8_lossy(&replay.stderr);
    assert_eq!(replay.status.code(), Some(1), "the minimal stream fails:\n{text}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("replay.json")).expect("replay report")).expect("JSON");
    let scenarios = r["scenarios"].as_array().expect("scenarios");
    assert_eq!(scenarios.len(), 3, "{r:#}");
    assert_eq!(scenarios[0]["verdict"], "fail", "{r:#}");
    let steps = scenarios[0]["steps"].to_string();
    assert!(
        steps.contains("is no longer attached")
            && steps.contains("scx_bpf_error")
            && steps.contains("cpumask of frozen task"),
        "{r:#}"
    );
    for c in &scenarios[1..] {
        assert_eq!(c["verdict"], "pass", "{}: {c:#}", c["name"]);
    }
}

/// Opt-in (`--ignored`; about 1 to 2 minutes a seed under TCG): seeds 2 to 6 each find
/// the planted bug within 60 streams (they do in 1 to 47) and minimise it to its trigger.
#[test]
#[ignore = "long: five fuzz campaigns against fixture-planted"]
fn fuzz_finds_the_planted_bug_from_several_seeds() {
    let backend = std::env::var("SCHEDBOX_TEST_BACKEND").unwrap_or_else(|_| "qemu".into());
    for seed in 2..=6 {
        let out = tempfile::tempdir().expect("tempdir");
        let seed = seed.to_string();
        let (dir, report) = fuzz_planted(out.path(), &backend, &["--seed", &seed, "--runs", "60"]);
        let minimal = check_planted_finding(&dir, &report);
        eprintln!(
            "seed {seed}: {} ({} ops) minimised to {} ops in {} runs, {} ms",
            dir.file_name().unwrap_or_default().to_string_lossy(),
            report["original_ops"],
            minimal.op_count(),
            report["minimise"]["runs"],
            report["minimise"]["ms"]
        );
    }
}
