//! The Python and JavaScript scenarios, built with the real toolchains
//! (componentize-py, componentize-js) and their default flags by `cargo xtask
//! build-scenarios`: `cpuset-split` emits, op for op, what the Rust example
//! emits (`tests/golden/rust/cpuset-split.json`, byte for byte), describes
//! itself and judges results like it; the failing-placement variant fails
//! `run` with the Rust SDK's message; a raw component that does not handle an
//! op-error traps with the rejected call and its own stderr in the error; and
//! the network interfaces those toolchains import grant nothing.
//!
//! Where `build-scenarios` could not install a toolchain (no package
//! registry), it wrote the reason to `target/scenarios/<lang>/UNAVAILABLE` and
//! these tests print `SKIP` with it; otherwise a missing component fails them.

#[path = "common/assertion_samples.rs"]
mod assertion_samples;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use schedbox::op_model::OpKind;
use schedbox::results::{CgroupProcs, Results, StepResult, StepStatus, WorkerMetrics};
use schedbox::sandbox::{LoadedScenario, Sandbox, SandboxConfig, SandboxError};
use schedbox_tests::{matches_rust_golden, repo_root, schedbox_bin};

const LANGS: [&str; 2] = ["python", "js"];

/// One sandbox with the user's compiled-component cache: these components carry
/// a language runtime (18 MB for Python, 13 MB for JavaScript) that takes tens of
/// seconds to compile, so each compiles once per machine.
fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| Sandbox::new(SandboxConfig::default()).expect("the sandbox sets up"))
}

/// The built component `rel` (under `target/scenarios/`) of `lang`, or `None`
/// after printing SKIP when the toolchain could not be installed.
fn built(lang: &str, rel: &str) -> Option<PathBuf> {
    let path = repo_root().join("target/scenarios").join(rel);
    if path.is_file() {
        return Some(path);
    }
    let marker = repo_root().join("target/scenarios").join(lang).join("UNAVAILABLE");
    match std::fs::read_to_string(&marker) {
        Ok(reason) => {
            eprintln!("SKIP {rel}: {reason}");
            None
        }
        Err(_) => panic!("{} is missing: run `cargo xtask build-scenarios` first", path.display()),
    }
}

/// Loads one component at a time, so parallel tests do not compile the same one twice.
fn load(path: PathBuf) -> Arc<LoadedScenario> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    sandbox().load_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rust_example() -> PathBuf {
    let path = repo_root().join("target/scenarios/rust/cpuset-split.wasm");
    assert!(path.is_file(), "{} is missing: run `cargo xtask build-scenarios` first", path.display());
    path
}

/// Default toolchain output is accepted: every import passes, and the
/// network interfaces say they grant nothing.
#[test]
fn default_toolchain_output_is_accepted_and_granted_nothing() {
    for lang in LANGS {
        let Some(path) = built(lang, &format!("{lang}/cpuset-split.wasm")) else { continue };
        let loaded = load(path);
        let refused: Vec<_> = loaded.imports.iter().filter(|i| !i.allowed).collect();
        assert!(refused.is_empty(), "{lang}: refused imports {refused:?}");
        let network: Vec<_> = loaded
            .imports
            .iter()
            .filter(|i| i.name.starts_with("wasi:sockets/") || i.name.starts_with("wasi:http/"))
            .collect();
        assert!(!network.is_empty(), "{lang}: the toolchain's default output imports sockets or HTTP");
        for i in network {
            assert!(i.grants.starts_with("linked, grants nothing"), "{lang}: {} grants {:?}", i.name, i.grants);
        }
    }
}

#[test]
fn python_and_js_cpuset_split_emit_the_rust_golden_stream() {
    let mut mismatched = Vec::new();
    for lang in LANGS {
        let Some(path) = built(lang, &format!("{lang}/cpuset-split.wasm")) else { continue };
        let plan = sandbox().plan(&load(path)).unwrap_or_else(|e| panic!("{lang}: {e}"));
        assert_eq!(plan.info.name, "cpuset-split");
        if !matches_rust_golden(lang, "cpuset-split", &plan.stream) {
            mismatched.push(lang);
        }
    }
    assert!(mismatched.is_empty(), "op streams differ from tests/golden/rust/cpuset-split.json for {mismatched:?}");
}

#[test]
fn python_and_js_cpuset_split_describe_themselves_like_rust() {
    let rust = format!("{:?}", sandbox().describe(&load(rust_example())).unwrap());
    for lang in LANGS {
        let Some(path) = built(lang, &format!("{lang}/cpuset-split.wasm")) else { continue };
        let info = sandbox().describe(&load(path)).unwrap_or_else(|e| panic!("{lang}: {e}"));
        assert_eq!(format!("{info:?}"), rust, "{lang}: describe differs");
    }
}

/// Results to judge: none, all as hoped, and failures of each kind the check looks for.
fn sample_results() -> Vec<Results> {
    let steps = |statuses: &[(StepStatus, Option<&str>)]| -> Vec<StepResult> {
        statuses
            .iter()
            .zip(0..)
            .map(|(&(status, error), index)| StepResult {
                index,
                status,
                error: error.map(Into::into),
                duration_ms: 10,
            })
            .collect()
    };
    let procs = |list: &[(&str, &str, &[u32])]| -> Vec<CgroupProcs> {
        list.iter()
            .map(|(tag, cgroup, pids)| CgroupProcs {
                tag: (*tag).into(),
                cgroup: (*cgroup).into(),
                pids: pids.to_vec(),
            })
            .collect()
    };
    type Seen<'a> = (&'a str, u64, &'a [(u32, u64)]);
    let metrics = |list: &[Seen]| -> Vec<WorkerMetrics> {
        list.iter()
            .map(|&(cgroup, iterations, cpus)| WorkerMetrics {
                cgroup: cgroup.into(),
                workers: 2,
                iterations,
                cpu_time_ns: 1,
                run_delay_ns: 0,
                migrations: 0,
                cpus: cpus.to_vec(),
            })
            .collect()
    };
    use StepStatus::{Failed, Passed, Skipped};
    let good = Results {
        steps: steps(&[(Passed, None); 2]),
        cgroup_procs: procs(&[("left-procs", "left", &[10, 11]), ("right-procs", "right", &[12, 13])]),
        workers: metrics(&[("left", 5, &[(0, 3), (1, 2), (2, 0)]), ("right", 5, &[(2, 4), (3, 1)])]),
        ..Results::default()
    };
    let bad = Results {
        steps: steps(&[(Passed, None), (Failed, Some("cgroup `left` vanished")), (Skipped, None)]),
        cgroup_procs: procs(&[("left-procs", "left", &[10])]),
        workers: metrics(&[("left", 0, &[(0, 3), (1, 2), (3, 1)]), ("right", 5, &[(0, 4), (1, 0), (3, 1)])]),
        ..Results::default()
    };
    let missing =
        Results { steps: steps(&[(Passed, None); 2]), workers: metrics(&[("left", 1, &[])]), ..Results::default() };
    vec![Results::default(), good, bad, missing]
}

/// `check` gives the Rust example's verdict, messages included, for the same results.
#[test]
fn python_and_js_cpuset_split_judge_results_like_rust() {
    let rust = load(rust_example());
    for lang in LANGS {
        let Some(path) = built(lang, &format!("{lang}/cpuset-split.wasm")) else { continue };
        let other = load(path);
        for (i, results) in sample_results().into_iter().enumerate() {
            let judge = |sc| format!("{:?}", sandbox().check(sc, "cpuset-split", results.clone()).unwrap());
            assert_eq!(judge(&other), judge(&rust), "{lang}: verdicts differ on sample results {i}");
        }
    }
}

/// The failing-placement variant: the host rejects disjoint set 2 of 2 where
/// it is asked for, and `run` fails with the Rust SDK's message.
#[test]
fn a_rejected_placement_fails_run_with_the_rust_sdk_message() {
    for lang in LANGS {
        let Some(path) = built(lang, &format!("fixtures/{lang}/cpuset-split-bad.wasm")) else { continue };
        let err = sandbox().plan(&load(path)).expect_err("the set-cpuset is rejected");
        let display = err.to_string();
        let SandboxError::RunFailed { scenario, message, rejection } = err else {
            panic!("{lang}: expected run() to fail, got {display}");
        };
        assert_eq!(scenario, "cpuset-split-bad");
        assert_eq!(
            message, "step 0, op 0 (set-cpuset): disjoint index 2 is not below of=2 — use an index in 0..2",
            "{lang}"
        );
        let rejection = rejection.expect("the host recorded the rejected call");
        assert_eq!((rejection.op_index, rejection.op), (Some(0), Some(OpKind::SetCpuset)), "{lang}");
    }
}

/// Raw bindings, an op-error nobody handles: each toolchain traps in its own
/// way (componentize-py cannot return the op-error as `run`'s string error;
/// jco cannot lower the thrown object), and the trap keeps the guest's error:
/// the call the host rejected and the guest's own stderr.
#[test]
fn an_unhandled_op_error_traps_with_the_rejected_call_and_guest_stderr() {
    for lang in LANGS {
        let Some(path) = built(lang, &format!("fixtures/{lang}/uncaught-op-error.wasm")) else { continue };
        let err = sandbox().plan(&load(path)).expect_err("the op-error is not handled");
        let display = err.to_string();
        eprintln!("{display}");
        assert!(matches!(err, SandboxError::Trap { export: "run", .. }), "{lang}: {display}");
        assert!(
            display.contains(
                "last op call the host rejected (the guest got this op-error back): scenario \"uncaught-op-error\", \
                 step 0, op 0 (set-cpuset): disjoint index 2 is not below of=2"
            ),
            "{lang}: {display}"
        );
        assert!(
            display.contains("guest stderr (last lines):\n  about to ask for disjoint set 2 of 2"),
            "{lang}: {display}"
        );
        let toolchain_says =
            if lang == "python" { "'OpError' object is not an instance of 'str'" } else { "expected a string" };
        assert!(display.contains(toolchain_says), "{lang}: {display}");
    }
}

/// componentize-py's sockets: a TCP connect and a name lookup are refused
/// inside the guest (Python sees the errors; nothing is connected).
#[test]
fn python_sockets_grant_nothing() {
    let Some(path) = built("python", "fixtures/python/network.wasm") else { return };
    let err = sandbox().plan(&load(path)).expect_err("run reports what it saw");
    let SandboxError::RunFailed { message, .. } = &err else { panic!("expected run() to fail, got {err}") };
    assert!(message.starts_with("connect: PermissionError"), "{message}");
    assert!(message.contains("; lookup: gaierror"), "{message}");
    assert!(!message.contains("connected") && !message.contains("resolved"), "{message}");
}

/// componentize-js's HTTP: `fetch` traps at its first HTTP call, and the
/// error names the call and why.
#[test]
fn js_http_traps_naming_the_call() {
    let Some(path) = built("js", "fixtures/js/fetch.wasm") else { return };
    let err = sandbox().plan(&load(path)).expect_err("fetch traps");
    let display = err.to_string();
    assert!(matches!(err, SandboxError::Trap { export: "run", .. }), "{display}");
    assert!(display.contains("the scenario called `wasi:http/types@"), "{display}");
    assert!(display.contains("linked without authority"), "{display}");
}

/// What a failing guest printed is shown without `-v`: `schedbox plan` logs the
/// guest's stdout at `warn` when the call fails (its stderr tail is in the error).
#[test]
fn a_failing_guest_output_is_shown_without_verbose() {
    let Some(path) = built("python", "fixtures/python/uncaught-op-error.wasm") else { return };
    let out = std::process::Command::new(schedbox_bin())
        .arg("plan")
        .arg(&path)
        .env_remove("RUST_LOG")
        .output()
        .expect("schedbox runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("planning uncaught-op-error"), "the guest's stdout is not shown: {stderr}");
    assert!(stderr.contains("about to ask for disjoint set 2 of 2"), "the guest's stderr is not shown: {stderr}");
}

/// The Python and JavaScript assertion helpers give the Rust SDK's verdicts, messages
/// included, on every sample of `common/assertion_samples.rs` (the fixtures
/// `tests/fixtures/{python,js}/assertions` twin `tests/fixtures/guests/assertions`).
#[test]
fn python_and_js_assertions_judge_step_metrics_like_the_rust_ones() {
    let rust = load(schedbox_tests::fixture("assertions"));
    for lang in LANGS {
        let Some(path) = built(lang, &format!("fixtures/{lang}/assertions.wasm")) else { continue };
        let script = load(path);
        for (i, metrics) in assertion_samples::samples().into_iter().enumerate() {
            let results = Results { step_metrics: metrics, ..Results::default() };
            let want = sandbox().check(&rust, "assertions", results.clone()).unwrap();
            let got = sandbox().check(&script, "assertions", results).unwrap();
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "{lang} differs from Rust on sample {i}");
        }
        let results = Results { step_metrics: assertion_samples::sample(), ..Results::default() };
        let v = sandbox().check(&script, "assertions", results).unwrap();
        assert_eq!(v.messages, assertion_samples::SAMPLE_MESSAGES, "{lang}");
    }
}
