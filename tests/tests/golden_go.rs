//! The Go examples (`example-scenarios/go/`, built with `guest-sdk/go` to
//! `target/scenarios/go/<name>.wasm`) emit, op for op, what the Rust examples
//! of the same name emit: `plan` of each Go component, serialised as
//! `schedbox plan --json` does, equals `tests/golden/rust/<name>.json` byte for
//! byte. They describe themselves and judge results like the Rust ones, the
//! Go SDK reaches every op, and its `Emit` reports a rejected call in the Rust
//! SDK's words.
//!
//! Build the components first with `cargo xtask build-scenarios`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use schedbox::op_model::{KernelValue, OpKind};
use schedbox::results::{CgroupProcs, KernelRead, Results, StepResult, StepStatus, WorkerMetrics};
use schedbox::sandbox::{LoadedScenario, Sandbox, SandboxConfig, SandboxError};
use schedbox_tests::{example, fixture, matches_rust_golden, CROSS_LANGUAGE_EXAMPLES};

/// The examples written in both languages.
const EXAMPLES: [&str; 3] = CROSS_LANGUAGE_EXAMPLES;

/// One sandbox for every test, with the user's compiled-component cache (the
/// one `schedbox` itself uses): a Go component carries the Go runtime, 1.7 MB
/// of wasm code that an unoptimised (debug) Cranelift takes about a minute to
/// compile, so each compiles once per machine rather than once per test.
fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| Sandbox::new(SandboxConfig::default()).expect("the sandbox sets up"))
}

/// The component at `path`. The sandbox keeps what it loaded; loading one at a time keeps
/// tests running in parallel from compiling the same component twice.
fn load(path: PathBuf) -> Arc<LoadedScenario> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    sandbox().load_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn go_examples_emit_the_rust_golden_streams() {
    let mut mismatched = Vec::new();
    for name in EXAMPLES {
        let plan = sandbox().plan(&load(example("go", name))).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(plan.info.name, name, "the file name is the scenario name");
        if !matches_rust_golden("Go", name, &plan.stream) {
            mismatched.push(name);
        }
    }
    assert!(mismatched.is_empty(), "Go op streams differ from tests/golden/rust for {mismatched:?}");
}

#[test]
fn go_and_rust_examples_describe_themselves_alike() {
    for name in EXAMPLES {
        let describe = |lang| {
            let info = sandbox().describe(&load(example(lang, name))).unwrap_or_else(|e| panic!("{lang} {name}: {e}"));
            format!("{info:?}")
        };
        assert_eq!(describe("go"), describe("rust"), "{name}: describe differs");
    }
}

/// `tests/fixtures/go/bad-disjoint`: step 0's first op asks for disjoint set 2
/// of 2. The host rejects it where it is called; the Go SDK's `Emit` stops
/// there and `run` fails with the Rust SDK's message for the same mistake.
#[test]
fn a_rejected_go_op_fails_run_with_the_rust_sdk_message() {
    let err = sandbox().plan(&load(fixture("go/bad-disjoint"))).expect_err("the set-cpuset is rejected");
    let display = err.to_string();
    let SandboxError::RunFailed { scenario, message, rejection } = err else {
        panic!("expected run() to fail, got {display}");
    };
    assert_eq!(scenario, "bad-disjoint");
    assert_eq!(message, "step 0, op 0 (set-cpuset): disjoint index 2 is not below of=2 — use an index in 0..2");
    let rejection = rejection.expect("the host recorded the rejected call");
    assert_eq!(rejection.op_index, Some(0));
    assert_eq!(rejection.op, Some(OpKind::SetCpuset));
}

/// Results to judge: none at all, everything as the examples hope (with three
/// steps and with two), failures of every kind they look for, and missing or
/// mistyped records.
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
    let reads = |list: Vec<(&str, KernelValue)>| -> Vec<KernelRead> {
        list.into_iter().map(|(tag, value)| KernelRead { tag: tag.into(), value }).collect()
    };
    // (cgroup, iterations, how often the workers were seen on each CPU)
    type Seen<'a> = (&'a str, u64, &'a [(u32, u64)]);
    let metrics = |list: &[Seen]| -> Vec<WorkerMetrics> {
        let m = |&(cgroup, iterations, cpus): &Seen| WorkerMetrics {
            cgroup: cgroup.into(),
            workers: 2,
            iterations,
            cpu_time_ns: 1,
            run_delay_ns: 0,
            migrations: 0,
            cpus: cpus.to_vec(),
        };
        list.iter().map(m).collect()
    };
    use StepStatus::{Failed, Passed, Skipped};
    let good = Results {
        steps: steps(&[(Passed, None); 3]),
        cgroup_procs: procs(&[
            ("left-procs", "left", &[10, 11]),
            ("right-procs", "right", &[12, 13]),
            ("frozen-procs", "workers", &[14, 15]),
        ]),
        kernel_reads: reads(vec![
            ("jiffies-before", KernelValue::U64(100)),
            ("jiffies-after", KernelValue::U64(150)),
            ("rq-clock-0", KernelValue::U32(7)),
        ]),
        workers: metrics(&[
            ("left", 5, &[(0, 3), (1, 2), (2, 0)]),
            ("right", 5, &[(2, 4), (3, 1)]),
            ("workers", 9, &[]),
        ]),
        ..Results::default()
    };
    let good_two_steps = Results { steps: steps(&[(Passed, None); 2]), ..good.clone() };
    let bad = Results {
        steps: steps(&[(Passed, None), (Failed, Some("cgroup `left` vanished")), (Skipped, None), (Passed, None)]),
        cgroup_procs: procs(&[("left-procs", "left", &[10]), ("frozen-procs", "workers", &[])]),
        kernel_reads: reads(vec![
            ("jiffies-before", KernelValue::U64(100)),
            ("jiffies-after", KernelValue::U64(100)),
            ("rq-clock-0", KernelValue::U64(0)),
        ]),
        workers: metrics(&[
            ("left", 0, &[(0, 3), (1, 2), (3, 1)]),
            ("right", 5, &[(0, 4), (1, 0), (3, 1)]),
            ("workers", 0, &[]),
        ]),
        ..Results::default()
    };
    let missing = Results {
        steps: steps(&[(Passed, None); 2]),
        kernel_reads: reads(vec![("jiffies-after", KernelValue::U64(1)), ("rq-clock-0", KernelValue::Bytes(vec![1]))]),
        workers: metrics(&[("left", 1, &[])]),
        ..Results::default()
    };
    // freeze-resume's four steps with the step metrics of a freeze that lasts into
    // step 2, and of one thawed at the end of step 1; and step metrics of too few steps.
    let four = |broken| Results {
        steps: (0..4u32).map(|index| StepResult { index, ..good.steps[0].clone() }).collect(),
        step_metrics: schedbox_tests::freeze_resume_step_metrics(broken),
        ..good.clone()
    };
    let (freeze_good, freeze_broken) = (four(false), four(true));
    let short = Results { step_metrics: freeze_good.step_metrics[..2].to_vec(), ..good.clone() };
    // cpuset-split's placement samples missing: its isolation check must not pass.
    let mut no_samples = good_two_steps.clone();
    for w in &mut no_samples.workers {
        w.cpus.clear();
    }
    vec![Results::default(), good, good_two_steps, bad, missing, freeze_good, freeze_broken, short, no_samples]
}

/// `check` of each Go example gives the Rust example's verdict, messages
/// included, for the same results.
#[test]
fn go_examples_judge_results_like_the_rust_ones() {
    for name in EXAMPLES {
        let (go, rust) = (load(example("go", name)), load(example("rust", name)));
        for (i, results) in sample_results().into_iter().enumerate() {
            let judge = |sc| format!("{:?}", sandbox().check(sc, name, results.clone()).unwrap());
            assert_eq!(judge(&go), judge(&rust), "{name}: verdicts differ on sample results {i}");
        }
    }
}

/// `tests/fixtures/go/sdk-coverage` calls every op constructor of the Go SDK;
/// it emits exactly what the Rust SDK's `sdk-coverage` fixture emits, which
/// holds every op kind of the contract (see `sdk_coverage.rs`). Every import
/// of the Go component passes the sandbox policy.
#[test]
fn the_go_sdk_reaches_every_op_like_the_rust_one() {
    let plan = |path: PathBuf| {
        let loaded = load(path.clone());
        let refused: Vec<_> = loaded.imports.iter().filter(|i| !i.allowed).collect();
        assert!(refused.is_empty(), "{}: refused imports {refused:?}", path.display());
        let plan = sandbox().plan(&loaded).unwrap_or_else(|e| panic!("{e}"));
        (format!("{:?}", plan.info), serde_json::to_string_pretty(&plan.stream).unwrap())
    };
    let (go_info, go_stream) = plan(fixture("go/sdk-coverage"));
    let (rust_info, rust_stream) = plan(fixture("sdk-coverage"));
    assert_eq!(go_info, rust_info, "describe differs");
    assert!(go_stream == rust_stream, "the Go stream differs from the Rust one:\n{go_stream}");
}
