//! Every WIT op is reachable from the Rust SDK: a component built with the SDK
//! that calls each SDK constructor yields a stream holding every op kind the
//! host knows (and `host/tests/contract.rs` ties the host's kinds to the WIT).

use std::collections::BTreeSet;

use schedbox::op_model::OpKind;
use schedbox::sandbox::SandboxLimits;
use schedbox_tests::{fixture, TestSandbox};
use strum::IntoEnumIterator;

#[test]
fn the_sdk_reaches_every_op_of_the_contract() {
    let sb = TestSandbox::new(SandboxLimits::default());
    let loaded = sb.load_file(&fixture("sdk-coverage")).unwrap_or_else(|e| panic!("{e}"));
    let plan = sb.plan(&loaded).unwrap_or_else(|e| panic!("{e}"));
    let emitted: BTreeSet<&str> = plan.stream.ops().map(|(_, _, op)| op.kind().wit_name()).collect();
    let all: BTreeSet<&str> = OpKind::iter().map(OpKind::wit_name).collect();
    let missing: Vec<_> = all.difference(&emitted).collect();
    assert!(missing.is_empty(), "the SDK coverage scenario emits no {missing:?}: add them to the SDK and the fixture");
    // The component imports the ops interface and nothing the policy refuses.
    assert!(loaded.imports.iter().any(|i| i.name.starts_with("schedbox:scenario/ops@0.1.")));
    assert!(loaded.imports.iter().all(|i| i.allowed));
}

/// `spawn-work` (the work types and policies added within 0.1) reaches the host's model:
/// every added work type and SCHED_DEADLINE arrive as `spawn` ops, validated.
#[test]
fn spawn_work_reaches_every_added_work_type() {
    use schedbox::op_model::{Op, SchedPolicy, WorkType};
    let sb = TestSandbox::new(SandboxLimits::default());
    let loaded = sb.load_file(&fixture("spawn-work")).unwrap_or_else(|e| panic!("{e}"));
    let plan = sb.plan(&loaded).unwrap_or_else(|e| panic!("{e}"));
    let specs: Vec<_> = plan
        .stream
        .ops()
        .filter_map(|(_, _, op)| match op {
            Op::Spawn { work, .. } => Some(work.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(specs.len(), 31, "{specs:?}");
    assert!(specs.iter().all(|s| s.comm.as_deref() == Some("new-work") || s.comm.is_none()));
    let names: BTreeSet<String> = specs[..29]
        .iter()
        .map(|s| match serde_json::to_value(&s.work).unwrap() {
            serde_json::Value::String(n) => n,
            serde_json::Value::Object(m) => m.keys().next().unwrap().clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(names.len(), 29, "each added work type once: {names:?}");
    assert!(specs.iter().any(|s| s.work == WorkType::IoConvoy { readers: 3, write_kib: 256 }));
    assert!(specs.iter().any(|s| s.work == WorkType::WakeChain { depth: 3, pipe: true, work_iters: 500 }));
    assert!(specs.iter().any(|s| s.work == WorkType::Schbench { workers: 2, request_us: 200, sleep_us: 1000 }));
    assert_eq!(specs[29].policy, SchedPolicy::Deadline { runtime_us: 2000, deadline_us: 10_000, period_us: 10_000 });
    assert_eq!(specs[29].work, WorkType::SpinWait);
    // spawn-threads: the same spec, its workers threads.
    assert_eq!((&specs[30].work, specs[30].mode), (&WorkType::AluHot, schedbox::op_model::WorkerMode::Thread));
    assert!(specs[..30].iter().all(|s| s.mode == schedbox::op_model::WorkerMode::Process));
    assert!(loaded.imports.iter().any(|i| i.name.starts_with("schedbox:scenario/ops@0.1.")));
}

/// The C and Go SDKs reach spawn-work too: their `spawn-work` fixtures plan to the Rust
/// fixture's stream, op for op.
#[test]
fn c_and_go_spawn_work_fixtures_plan_like_the_rust_one() {
    let sb = TestSandbox::new(SandboxLimits::default());
    let plan = |name: &str| {
        let loaded = sb.load_file(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        sb.plan(&loaded).unwrap_or_else(|e| panic!("{name}: {e}")).stream
    };
    let rust = serde_json::to_string_pretty(&plan("spawn-work")).unwrap();
    for lang in ["c", "go"] {
        let other = serde_json::to_string_pretty(&plan(&format!("{lang}/spawn-work"))).unwrap();
        assert!(other == rust, "{lang} spawn-work stream differs from Rust's:\n{other}\n--- rust:\n{rust}");
    }
}

/// The NUMA work types reach the host's model from all three SDKs: the Rust `numa-work`
/// fixture (2-node topology) plans both as validated `spawn` ops, and the C and Go twins
/// plan to the same stream.
#[test]
fn numa_work_types_reach_the_host_from_every_sdk() {
    use schedbox::op_model::{Op, WorkType};
    let sb = TestSandbox::new(SandboxLimits::default());
    let plan = |name: &str| {
        let loaded = sb.load_file(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        sb.plan(&loaded).unwrap_or_else(|e| panic!("{name}: {e}")).stream
    };
    let rust = plan("numa-work");
    let works: Vec<WorkType> = rust
        .ops()
        .filter_map(|(_, _, op)| match op {
            Op::Spawn { work, .. } => Some(work.work.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        works,
        [
            WorkType::NumaMigrationChurn { period_ms: 20, size_kib: 256 },
            WorkType::NumaWorkingSetSweep { size_kib: 1024, passes: 4 }
        ]
    );
    let rust = serde_json::to_string_pretty(&rust).unwrap();
    for lang in ["c", "go"] {
        let other = serde_json::to_string_pretty(&plan(&format!("{lang}/numa-work"))).unwrap();
        assert!(other == rust, "{lang} numa-work stream differs from Rust's:\n{other}\n--- rust:\n{rust}");
    }
}
