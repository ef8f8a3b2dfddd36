//! Golden op streams: `schedbox plan --json` of every example scenario is
//! pinned in `tests/golden/<lang>/<name>.json`. A change to an example, the
//! SDK, the contract or the host's op model that alters a stream fails here.
//! After an intended change, regenerate with `SCHEDBOX_BLESS=1 cargo test
//! -p schedbox-tests --test golden` and review the diff.

use schedbox::op_model::OpStream;
use schedbox::sandbox::SandboxLimits;
use schedbox::validate::validate_stream;
use schedbox_tests::{example, repo_root, TestSandbox};

/// The Rust examples every other part of the project relies on by name.
const EXAMPLES: [&str; 6] =
    ["cpuset-split", "dynamic-add", "freeze-resume", "move-tasks", "kernel-reads", "sched-swap"];

fn plan_json(sandbox: &TestSandbox, lang: &str, name: &str) -> (OpStream, String) {
    let loaded = sandbox.load_file(&example(lang, name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let plan = sandbox.plan(&loaded).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(plan.info.name, name, "the file name is the scenario name");
    let json = serde_json::to_string_pretty(&plan.stream).unwrap() + "\n";
    (plan.stream, json)
}

#[test]
fn rust_examples_match_their_golden_streams() {
    let sandbox = TestSandbox::new(SandboxLimits::default());
    let bless = std::env::var_os("SCHEDBOX_BLESS").is_some();
    let mut mismatched = Vec::new();
    for name in EXAMPLES {
        let (stream, json) = plan_json(&sandbox, "rust", name);
        let golden = repo_root().join("tests/golden/rust").join(format!("{name}.json"));
        if bless {
            std::fs::write(&golden, &json).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e}; create it with SCHEDBOX_BLESS=1", golden.display()));
        if want != json {
            mismatched.push(name);
        }
        // The golden file is itself a valid, replayable stream.
        let parsed: OpStream = serde_json::from_str(&want).unwrap();
        assert_eq!(parsed, stream, "{name}: the golden JSON parses back to the same stream");
        validate_stream(&parsed).unwrap_or_else(|e| panic!("{name}: golden stream does not validate: {e}"));
    }
    assert!(
        mismatched.is_empty(),
        "op streams differ from tests/golden/rust for {mismatched:?}; review, then re-bless"
    );
}

#[test]
fn each_example_emits_what_its_name_promises() {
    use schedbox::op_model::OpKind;
    let sandbox = TestSandbox::new(SandboxLimits::default());
    let kinds =
        |name: &str| -> Vec<OpKind> { plan_json(&sandbox, "rust", name).0.ops().map(|(_, _, op)| op.kind()).collect() };
    assert!(kinds("freeze-resume").contains(&OpKind::FreezeCgroup));
    assert!(kinds("freeze-resume").contains(&OpKind::UnfreezeCgroup));
    assert!(kinds("move-tasks").contains(&OpKind::MoveAllTasks));
    assert!(kinds("dynamic-add").contains(&OpKind::AddCgroupDef));
    assert!(kinds("kernel-reads").iter().filter(|k| **k == OpKind::ReadKernelCold).count() >= 3);
    let swap = kinds("sched-swap");
    for k in [OpKind::AttachScheduler, OpKind::ReplaceScheduler, OpKind::DetachScheduler] {
        assert!(swap.contains(&k), "sched-swap lacks {k:?}");
    }
}

/// freeze-resume's check judges the step metrics, and none of its checks passes on
/// missing data: it passes a freeze that lasts into step 2, and fails one that the end
/// of step 1 thawed (the step-teardown thaw this project had before) and results
/// without step metrics or worker metrics.
#[test]
fn freeze_resume_notices_a_thawed_freeze_and_missing_data() {
    use schedbox::results::{CgroupProcs, Outcome, Results, StepResult, StepStatus, WorkerMetrics};
    let sandbox = TestSandbox::new(SandboxLimits::default());
    let loaded = sandbox.load_file(&example("rust", "freeze-resume")).unwrap();
    let results = |broken| Results {
        steps: (0..4)
            .map(|index| StepResult { index, status: StepStatus::Passed, error: None, duration_ms: 10 })
            .collect(),
        cgroup_procs: vec![CgroupProcs { tag: "frozen-procs".into(), cgroup: "workers".into(), pids: vec![7, 8] }],
        workers: vec![WorkerMetrics { cgroup: "workers".into(), workers: 2, iterations: 90, ..Default::default() }],
        step_metrics: schedbox_tests::freeze_resume_step_metrics(broken),
        ..Results::default()
    };
    let judge = |r: Results| sandbox.check(&loaded, "freeze-resume", r).unwrap();
    let ok = judge(results(false));
    assert_eq!(ok.outcome, Outcome::Pass, "{:?}", ok.messages);
    let thawed = judge(results(true));
    assert_eq!(thawed.outcome, Outcome::Fail);
    assert_eq!(
        thawed.messages,
        [
            "step 2: `workers` was thawed before unfreeze-cgroup",
            "step 2: the frozen cgroup used CPU: usage_usec 1200 -> 1700",
            "step 2: the frozen workers made progress: 60 -> 75 iterations",
        ]
    );
    let no_steps = judge(Results { step_metrics: vec![], ..results(false) });
    assert_eq!(
        (no_steps.outcome, no_steps.messages.as_slice()),
        (Outcome::Fail, &["step metrics: 0 steps, want 4".to_owned()][..])
    );
    let no_workers = judge(Results { workers: vec![], ..results(false) });
    assert_eq!(no_workers.messages, ["no worker metrics for cgroup `workers`"]);
}

/// cpuset-split's isolation check does not pass without placement samples.
#[test]
fn cpuset_split_fails_without_placement_samples() {
    use schedbox::results::{CgroupProcs, Outcome, Results, StepResult, StepStatus, WorkerMetrics};
    let sandbox = TestSandbox::new(SandboxLimits::default());
    let loaded = sandbox.load_file(&example("rust", "cpuset-split")).unwrap();
    let results = |cpus: Vec<(u32, u64)>| Results {
        steps: (0..2)
            .map(|index| StepResult { index, status: StepStatus::Passed, error: None, duration_ms: 10 })
            .collect(),
        cgroup_procs: ["left", "right"]
            .map(|c| CgroupProcs { tag: format!("{c}-procs"), cgroup: c.into(), pids: vec![1, 2] })
            .to_vec(),
        workers: ["left", "right"]
            .map(|c| WorkerMetrics {
                cgroup: c.into(),
                workers: 2,
                iterations: 9,
                cpus: cpus.clone(),
                ..Default::default()
            })
            .to_vec(),
        ..Results::default()
    };
    let judge = |r: Results| sandbox.check(&loaded, "cpuset-split", r).unwrap();
    let none = judge(results(vec![]));
    assert_eq!(none.outcome, Outcome::Fail);
    assert_eq!(
        none.messages,
        ["no placement samples for the workers of `left`", "no placement samples for the workers of `right`"]
    );
    let shared = judge(results(vec![(1, 3)]));
    assert_eq!(shared.messages, ["left and right workers both ran on CPUs [1]"]);
}
