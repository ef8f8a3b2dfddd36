//! Sandbox benchmarks: what loading and calling a scenario component costs,
//! and what validating a large op stream costs.
//!
//! - `load/compile`: compile a component from bytes (no cache).
//! - `load/cached`: a new `Sandbox` over a populated cache directory, then
//!   `load_bytes` (a disk-cache hit: read, check, deserialise).
//! - `load/sandbox-new`, `load/digest`: the parts of `load/cached` that are
//!   not deserialising (engine and linker set-up; SHA-256 of the bytes).
//! - `call/describe`: the hot path on an already-loaded component (fresh
//!   store, instantiate, one export call).
//! - `call/plan-1000-ops`: `plan()` of the `thousand-ops` fixture (describe,
//!   then `run` emitting 1000 `add-cgroup` ops through the imports, each
//!   validated at the call site); per import ≈ (plan − describe) / 1000.
//! - `validate/stream-100000-ops`: `validate_stream` of a 10^5-op stream built
//!   in Rust.
//!
//! The component benchmarks need `target/scenarios/fixtures/thousand-ops.wasm`
//! (`cargo xtask build-scenarios`); without it they are skipped with a message.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use schedbox::op_model::{
    Backdrop, CgroupDef, CpusetSpec, HoldSpec, Op, OpStream, ScenarioInfo, SpawnPlacement, Step, Topology, WorkSpec,
    CONTRACT_VERSION,
};
use schedbox::sandbox::{digest, Sandbox, SandboxConfig, SandboxLimits};
use schedbox::validate::validate_stream;

/// The fixture the component benchmarks load.
const FIXTURE: &str = "thousand-ops";

/// Ops its `run` emits.
const FIXTURE_OPS: u64 = 1000;

/// Ops in the stream `validate_stream` is timed on.
const STREAM_OPS: usize = 100_000;

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ lives one level below the workspace root")
        .join("target/scenarios/fixtures")
        .join(format!("{name}.wasm"))
}

/// The fixture's bytes, or `None` after saying how to build it.
fn fixture_bytes(name: &str) -> Option<Vec<u8>> {
    let path = fixture_path(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            eprintln!(
                "skipping the component benchmarks: {} is missing ({e}); run `cargo xtask build-scenarios` first",
                path.display()
            );
            None
        }
    }
}

fn sandbox(cache_root: Option<&Path>) -> Sandbox {
    Sandbox::new(SandboxConfig {
        limits: SandboxLimits::default(),
        wasi: true,
        cache_root: cache_root.map(Path::to_owned),
        portable_code: false,
    })
    .expect("the sandbox sets up")
}

fn load_benches(c: &mut Criterion) {
    let Some(bytes) = fixture_bytes(FIXTURE) else { return };
    let mut g = c.benchmark_group("load");
    g.sample_size(10);

    // (a) Compile from bytes; a fresh sandbox per iteration (each memoises what it loaded).
    g.bench_function("compile", |b| {
        b.iter_batched(
            || sandbox(None),
            |sb| black_box(sb.load_bytes(FIXTURE, &bytes).expect("loads")),
            BatchSize::PerIteration,
        )
    });

    // (b) A new sandbox over a populated cache directory, then a disk-cache hit.
    let cache = tempfile::tempdir().expect("a temporary cache directory");
    let warm = sandbox(Some(cache.path())).load_bytes(FIXTURE, &bytes).expect("loads");
    assert!(!warm.from_cache);
    g.bench_function("cached", |b| {
        b.iter(|| {
            let sb = sandbox(Some(cache.path()));
            let loaded = sb.load_bytes(FIXTURE, &bytes).expect("loads");
            assert!(loaded.from_cache, "the cache entry was not used");
            black_box((sb, loaded))
        })
    });
    // The parts of a cache hit that are not deserialising: engine and linker
    // set-up, and the SHA-256 of the component bytes (the cache key).
    g.bench_function("sandbox-new", |b| b.iter(|| black_box(sandbox(Some(cache.path())))));
    g.bench_function("digest", |b| b.iter(|| black_box(digest(black_box(&bytes)))));
    g.finish();
}

fn call_benches(c: &mut Criterion) {
    let Some(bytes) = fixture_bytes(FIXTURE) else { return };
    let sb = sandbox(None);
    let loaded = sb.load_bytes(FIXTURE, &bytes).expect("loads");
    let mut g = c.benchmark_group("call");

    // (c) The hot path: fresh store, instantiate, one call.
    g.bench_function("describe", |b| b.iter(|| black_box(sb.describe(&loaded).expect("describes"))));

    // (d) 1000 import calls, each converted, validated and recorded.
    let plan = sb.plan(&loaded).expect("plans");
    assert_eq!(plan.stream.op_count() as u64, FIXTURE_OPS);
    g.throughput(Throughput::Elements(FIXTURE_OPS));
    g.bench_function("plan-1000-ops", |b| b.iter(|| black_box(sb.plan(&loaded).expect("plans"))));
    g.finish();
}

/// A valid stream of `ops` ops: steps of 1000 ops, each with two setup
/// cgroups and a mix of cgroup, worker and snapshot ops.
fn big_stream(ops: usize) -> OpStream {
    let scenario = ScenarioInfo {
        name: "bench-stream".into(),
        summary: "a large synthetic stream".into(),
        topology: Topology { numa_nodes: 2, llcs_per_node: 2, cores_per_llc: 4, threads_per_core: 2 },
        kernel_features: Vec::new(),
        payloads: Vec::new(),
        schedulers: Vec::new(),
        duration_ms: 60_000,
    };
    let per_step = 1000;
    let mut steps = Vec::new();
    let mut emitted = 0;
    while emitted < ops {
        let n = per_step.min(ops - emitted);
        let setup = vec![CgroupDef::named("a"), CgroupDef::named("b")];
        let mut step_ops = Vec::with_capacity(n);
        for i in 0..n {
            let k = i as u32;
            step_ops.push(match i % 8 {
                0 => Op::add_cgroup(format!("c{i}")),
                1 => Op::set_cpuset(format!("c{}", i - 1), CpusetSpec::disjoint(k % 4, 4)),
                2 => Op::set_cpuset("a", CpusetSpec::llc(k % 4)),
                3 => Op::swap_cpusets("a", "b"),
                4 => Op::spawn(SpawnPlacement::cgroup("b"), WorkSpec::default().workers(2)),
                5 => Op::freeze_cgroup("a"),
                6 => Op::unfreeze_cgroup("a"),
                _ => Op::capture_cgroup_procs(format!("t{i}"), "b"),
            });
        }
        steps.push(Step::with_defs(setup, step_ops, HoldSpec::fixed_ms(10)));
        emitted += n;
    }
    OpStream { contract: CONTRACT_VERSION.to_owned(), scenario, backdrop: Backdrop::new(), steps }
}

fn validate_benches(c: &mut Criterion) {
    // (e) Validating a 10^5-op stream.
    let stream = big_stream(STREAM_OPS);
    assert_eq!(stream.op_count(), STREAM_OPS);
    validate_stream(&stream).expect("the synthetic stream is valid");
    let mut g = c.benchmark_group("validate");
    g.sample_size(20);
    g.throughput(Throughput::Elements(STREAM_OPS as u64));
    g.bench_function("stream-100000-ops", |b| b.iter(|| validate_stream(black_box(&stream)).expect("valid")));
    g.finish();
}

criterion_group!(benches, load_benches, call_benches, validate_benches);
criterion_main!(benches);
