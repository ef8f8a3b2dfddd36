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
