//! Shared helpers of the schedbox integration tests: where the built
//! components live, and sandboxes with a private compiled-component cache.
//!
//! Components are built by `cargo xtask build-scenarios`: the sandbox fixtures
//! (`tests/fixtures/guests/`) to `target/scenarios/fixtures/<name>.wasm`, the
//! example scenarios to `target/scenarios/<lang>/<name>.wasm`.

pub mod guest;
pub mod suites;

use std::ops::Deref;
use std::path::{Path, PathBuf};

use schedbox::machine::BackendKind;
use schedbox::op_model::OpStream;
use schedbox::sandbox::{Sandbox, SandboxConfig, SandboxLimits};
use tempfile::TempDir;

/// A smaller CPU budget than the default, for tests that only need to see the
/// CPU bound hit (about a tenth of the default, so a tenth of the time).
pub const TEST_FUEL: u64 = 200_000_000;

/// The repository root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate lives one level below the root").to_owned()
}

/// The examples written in Rust, C and Go alike, op for op.
pub const CROSS_LANGUAGE_EXAMPLES: [&str; 3] = ["cpuset-split", "freeze-resume", "kernel-reads"];

/// Whether `stream`, serialised as `schedbox plan --json` does, equals the Rust
/// golden stream of `name` (`tests/golden/rust/<name>.json`) byte for byte; on a
/// difference, prints the stream (labelled `lang`) and returns `false`.
pub fn matches_rust_golden(lang: &str, name: &str, stream: &OpStream) -> bool {
    let json = serde_json::to_string_pretty(stream).expect("an op stream serialises") + "\n";
    let golden = repo_root().join("tests/golden/rust").join(format!("{name}.json"));
    let want = std::fs::read_to_string(&golden).unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
    if want != json {
        eprintln!("--- {name}: {lang} stream\n{json}");
    }
    want == json
}

/// The `schedbox` executable (`SCHEDBOX_BIN`, else `target/debug/schedbox`).
///
/// Panics, saying how to build it, when it is missing.
pub fn schedbox_bin() -> PathBuf {
    let bin = std::env::var_os("SCHEDBOX_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/debug/schedbox"));
    assert!(bin.is_file(), "{} is missing: run `cargo build -p schedbox` first", bin.display());
    bin
}

/// The built sandbox fixture `name` (`target/scenarios/fixtures/<name>.wasm`).
///
/// Panics, saying how to build it, when it is missing.
pub fn fixture(name: &str) -> PathBuf {
    built(repo_root().join("target/scenarios/fixtures").join(format!("{name}.wasm")))
}

/// The built example scenario `name` written in `lang` (`target/scenarios/<lang>/<name>.wasm`).
///
/// Panics, saying how to build it, when it is missing.
pub fn example(lang: &str, name: &str) -> PathBuf {
    built(repo_root().join("target/scenarios").join(lang).join(format!("{name}.wasm")))
}

/// A WAT fixture (`tests/fixtures/wat/<name>.wat`); these need no build.
pub fn wat(name: &str) -> PathBuf {
    let path = repo_root().join("tests/fixtures/wat").join(format!("{name}.wat"));
    assert!(path.is_file(), "WAT fixture {} is missing", path.display());
    path
}

fn built(path: PathBuf) -> PathBuf {
    if !path.is_file() {
        panic!("{} is missing: run `cargo xtask build-scenarios` first", path.display());
    }
    path
}

/// The default limits with the test CPU budget ([`TEST_FUEL`]).
pub fn test_limits() -> SandboxLimits {
    SandboxLimits { fuel: TEST_FUEL, ..SandboxLimits::default() }
}

/// A sandbox (WASI linked, no authority) whose compiled-component cache is
/// under `cache_root`.
pub fn sandbox_in(cache_root: &Path, limits: SandboxLimits) -> Sandbox {
    Sandbox::new(SandboxConfig { limits, wasi: true, cache_root: Some(cache_root.to_owned()), portable_code: false })
        .expect("the sandbox sets up")
}

/// Where [`TestSandbox::new`] finds compiled components instead of a fresh
/// directory, when set: a nested run precompiles them on the host.
pub const COMPONENT_CACHE_ENV: &str = "SCHEDBOX_TEST_COMPONENT_CACHE";

/// Which backend the VM tests boot: `SCHEDBOX_TEST_BACKEND` (`qemu`, `kvm`), qemu by default.
pub fn test_backend() -> BackendKind {
    match std::env::var("SCHEDBOX_TEST_BACKEND").as_deref() {
        Ok("kvm") => BackendKind::Kvm,
        Ok("qemu") | Err(_) => BackendKind::Qemu,
        Ok(other) => panic!("SCHEDBOX_TEST_BACKEND={other:?}: expected qemu or kvm"),
    }
}

/// A sandbox with its own temporary cache directory, removed when dropped.
pub struct TestSandbox {
    sandbox: Sandbox,
    root: PathBuf,
    _cache: Option<TempDir>,
}

impl TestSandbox {
    /// A sandbox with `limits` and a fresh, empty cache directory (or the
    /// shared one named by [`COMPONENT_CACHE_ENV`]).
    pub fn new(limits: SandboxLimits) -> Self {
        if let Some(root) = std::env::var_os(COMPONENT_CACHE_ENV) {
            let root = PathBuf::from(root);
            return Self { sandbox: sandbox_in(&root, limits), root, _cache: None };
        }
        let cache = tempfile::tempdir().expect("a temporary cache directory");
        Self { sandbox: sandbox_in(cache.path(), limits), root: cache.path().to_owned(), _cache: Some(cache) }
    }

    /// The cache directory.
    pub fn cache_root(&self) -> &Path {
        &self.root
    }
}

impl Deref for TestSandbox {
    type Target = Sandbox;

    fn deref(&self) -> &Sandbox {
        &self.sandbox
    }
}

/// Every file under `dir` (recursively) whose name ends in `.{ext}`, sorted.
pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == ext) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Step metrics of a freeze-resume run (four steps, cgroup `workers`): as the kernel
/// shows a freeze that lasts from step 1 into step 2, or (`broken`) one that the end
/// of step 1 thawed, so that `workers` runs in step 2.
pub fn freeze_resume_step_metrics(broken: bool) -> Vec<schedbox::results::StepMetrics> {
    use schedbox::results::{CgroupState, StepMetrics, WorkerMetrics};
    // (frozen, usage_usec, iterations) at the end of each step.
    let mut at = [(false, 1000, 50), (true, 1200, 60), (true, 1200, 60), (false, 2000, 90)];
    if broken {
        at[2] = (false, 1700, 75);
    }
    at.iter()
        .enumerate()
        .map(|(i, &(frozen, usage_usec, iterations))| StepMetrics {
            step: i as u32,
            cgroups: vec![CgroupState {
                name: "workers".into(),
                backdrop: true,
                cpus_effective: vec![0, 1],
                frozen,
                usage_usec,
                procs: 2,
                metrics: WorkerMetrics { cgroup: "workers".into(), workers: 2, iterations, ..WorkerMetrics::default() },
            }],
            sched_ext_state: "disabled".into(),
            ..StepMetrics::default()
        })
        .collect()
}
