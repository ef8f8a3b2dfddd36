//! The C examples (`example-scenarios/c/`, built with `guest-sdk/c/schedbox.h`
//! to `target/scenarios/c/<name>.wasm`) emit, op for op, what the Rust
//! examples of the same name emit: `plan` of each C component, serialised as
//! `schedbox plan --json` does, equals `tests/golden/rust/<name>.json` byte
//! for byte. And the C SDK's `SB_EMIT` reports a rejected call in the Rust
//! SDK's words.
//!
//! Build the components first with `cargo xtask build-scenarios`.

use schedbox::op_model::OpKind;
use schedbox::sandbox::{SandboxError, SandboxLimits};
use schedbox_tests::{example, fixture, matches_rust_golden, test_limits, TestSandbox, CROSS_LANGUAGE_EXAMPLES};

/// The examples written in both languages.
const EXAMPLES: [&str; 3] = CROSS_LANGUAGE_EXAMPLES;

#[test]
fn c_examples_emit_the_rust_golden_streams() {
    let sandbox = TestSandbox::new(SandboxLimits::default());
    let mut mismatched = Vec::new();
    for name in EXAMPLES {
        let loaded = sandbox.load_file(&example("c", name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let plan = sandbox.plan(&loaded).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(plan.info.name, name, "the file name is the scenario name");
        if !matches_rust_golden("C", name, &plan.stream) {
            mismatched.push(name);
        }
    }
    assert!(mismatched.is_empty(), "C op streams differ from tests/golden/rust for {mismatched:?}");
}

#[test]
fn c_and_rust_examples_describe_themselves_alike() {
    let sandbox = TestSandbox::new(SandboxLimits::default());
    for name in EXAMPLES {
        let describe = |lang| {
            let loaded = sandbox.load_file(&example(lang, name)).unwrap_or_else(|e| panic!("{lang} {name}: {e}"));
            let info = sandbox.describe(&loaded).unwrap_or_else(|e| panic!("{lang} {name}: {e}"));
            format!("{info:?}")
        };
        assert_eq!(describe("c"), describe("rust"), "{name}: describe differs");
    }
}

/// `tests/fixtures/c/bad-disjoint`: step 0's first op asks for disjoint set 2
/// of 2. The host rejects it where it is called; the C SDK stops there and
/// `run` fails with the Rust SDK's message for the same mistake.
#[test]
fn a_rejected_c_op_fails_run_with_the_rust_sdk_message() {
    let path = fixture("c/bad-disjoint");
    let sandbox = TestSandbox::new(test_limits());
    let loaded = sandbox.load_file(&path).unwrap_or_else(|e| panic!("bad-disjoint: {e}"));
    let err = sandbox.plan(&loaded).expect_err("the set-cpuset is rejected");
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

/// Results to judge: none at all, everything as the scenarios hope (with
/// three steps and with two), and
/// failures of every kind they look for.
fn sample_results() -> Vec<schedbox::results::Results> {
    use schedbox::op_model::KernelValue;
    use schedbox::results::{CgroupProcs, KernelRead, Results, StepResult, StepStatus, WorkerMetrics};
    let step = |index, status, error: Option<&str>| StepResult {
        index,
        status,
        error: error.map(str::to_owned),
        duration_ms: 10,
    };
    let procs = |tag: &str, cgroup: &str, pids: &[u32]| CgroupProcs {
        tag: tag.into(),
        cgroup: cgroup.into(),
        pids: pids.to_vec(),
    };
    let metrics = |cgroup: &str, iterations, cpus: &[(u32, u64)]| WorkerMetrics {
        cgroup: cgroup.into(),
        workers: 2,
        iterations,
        cpu_time_ns: 1,
        run_delay_ns: 0,
        migrations: 0,
        cpus: cpus.to_vec(),
    };
    let read = |tag: &str, value| KernelRead { tag: tag.into(), value };
    let good = Results {
        steps: (0..3).map(|i| step(i, StepStatus::Passed, None)).collect(),
        cgroup_procs: vec![
            procs("left-procs", "left", &[10, 11]),
            procs("right-procs", "right", &[12, 13]),
            procs("frozen-procs", "workers", &[14, 15]),
        ],
        kernel_reads: vec![
            read("jiffies-before", KernelValue::U64(100)),
            read("jiffies-after", KernelValue::U64(150)),
            read("rq-clock-0", KernelValue::U32(7)),
        ],
        workers: vec![
            metrics("left", 5, &[(0, 3), (1, 2), (2, 0)]),
            metrics("right", 5, &[(2, 4), (3, 1)]),
            metrics("workers", 9, &[]),
        ],
        ..Results::default()
    };
    let bad = Results {
        steps: vec![
            step(0, StepStatus::Passed, None),
            step(1, StepStatus::Failed, Some("cgroup `left` vanished")),
            step(2, StepStatus::Skipped, None),
            step(3, StepStatus::Passed, None),
        ],
        cgroup_procs: vec![procs("left-procs", "left", &[10]), procs("frozen-procs", "workers", &[])],
        kernel_reads: vec![
            read("jiffies-before", KernelValue::U64(100)),
            read("jiffies-after", KernelValue::U64(100)),
            read("rq-clock-0", KernelValue::U64(0)),
        ],
        workers: vec![
            metrics("left", 0, &[(0, 3), (1, 2), (3, 1)]),
            metrics("right", 5, &[(0, 4), (1, 0), (3, 1)]),
            metrics("workers", 0, &[]),
        ],
        ..Results::default()
    };
    let missing = Results {
        steps: vec![step(0, StepStatus::Passed, None), step(1, StepStatus::Passed, None)],
        kernel_reads: vec![read("jiffies-after", KernelValue::U64(1)), read("rq-clock-0", KernelValue::Bytes(vec![1]))],
        workers: vec![metrics("left", 1, &[])],
        ..Results::default()
    };
    // cpuset-split wants exactly two steps.
    let good_two_steps = Results { steps: good.steps[..2].to_vec(), ..good.clone() };
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

/// `check` of each C example gives the Rust example's verdict, messages
/// included, for the same results.
#[test]
fn c_examples_judge_results_like_the_rust_ones() {
    let sandbox = TestSandbox::new(SandboxLimits::default());
    for name in EXAMPLES {
        let c = sandbox.load_file(&example("c", name)).unwrap();
        let rust = sandbox.load_file(&example("rust", name)).unwrap();
        for (i, results) in sample_results().into_iter().enumerate() {
            let judge = |sc| format!("{:?}", sandbox.check(sc, name, results.clone()).unwrap());
            assert_eq!(judge(&c), judge(&rust), "{name}: verdicts differ on sample results {i}");
        }
    }
}

/// `tests/fixtures/c/sdk-coverage` calls every op constructor of the C SDK;
/// it emits exactly what the Rust SDK's `sdk-coverage` fixture emits, which
/// holds every op kind of the contract (see `sdk_coverage.rs`).
#[test]
fn the_c_sdk_reaches_every_op_like_the_rust_one() {
    let sandbox = TestSandbox::new(SandboxLimits::default());
    let plan = |path: std::path::PathBuf| {
        let loaded = sandbox.load_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(loaded.imports.iter().all(|i| i.allowed), "{}: a refused import", path.display());
        let plan = sandbox.plan(&loaded).unwrap_or_else(|e| panic!("{e}"));
        (format!("{:?}", plan.info), serde_json::to_string_pretty(&plan.stream).unwrap())
    };
    let (c_info, c_stream) = plan(fixture("c/sdk-coverage"));
    let (rust_info, rust_stream) = plan(fixture("sdk-coverage"));
    assert_eq!(c_info, rust_info, "describe differs");
    assert!(c_stream == rust_stream, "the C stream differs from the Rust one:\n{c_stream}");
}
