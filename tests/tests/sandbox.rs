//! The sandbox against components that misbehave on purpose: every bound is
//! hit with the right error, every error names the scenario and says what to
//! do, and none of it panics the host.
//!
//! The Rust fixtures are built by `cargo xtask build-scenarios`
//! (`tests/fixtures/guests/` → `target/scenarios/fixtures/`); the WAT fixtures
//! are compiled from text at load time.

use std::fs;

use schedbox::op_model::{Op, Section};
use schedbox::results::Results;
use schedbox::sandbox::{digest, Bound, SandboxError, SandboxLimits};
use schedbox_tests::{files_with_extension, fixture, sandbox_in, test_limits, wat, TestSandbox};

/// Asserts that `err` is a `Bound` error of `bound` in `export` of `scenario`
/// and returns its message and Display text.
fn expect_bound(err: SandboxError, scenario: &str, export: &str, bound: Bound) -> (String, String) {
    let display = err.to_string();
    eprintln!("{display}");
    match err {
        SandboxError::Bound { scenario: s, export: e, bound: b, message } => {
            assert_eq!(s, scenario, "{display}");
            assert_eq!(e, export, "{display}");
            assert_eq!(b, bound, "{display}");
            assert!(display.contains(&format!("scenario {scenario:?}")), "does not name the scenario: {display}");
            let bound_name: &str = bound.into();
            assert!(display.contains(&format!("the {bound_name} bound")), "does not name the bound: {display}");
            (message, display)
        }
        other => panic!("expected the {bound:?} bound in `{export}` of {scenario}, got {other:?}\n{other}"),
    }
}

/// Loads a fixture and checks that `describe` works: every fixture is a full
/// scenario and misbehaves only where intended.
fn load(sb: &TestSandbox, name: &str) -> std::sync::Arc<schedbox::sandbox::LoadedScenario> {
    let loaded = sb.load_file(&fixture(name)).unwrap_or_else(|e| panic!("{name} loads: {e}"));
    assert!(!loaded.from_cache, "a fresh cache directory cannot hold {name}");
    let info = sb.describe(&loaded).unwrap_or_else(|e| panic!("{name}: describe works: {e}"));
    assert_eq!(info.name, name);
    loaded
}

/// The sandbox is still usable after a scenario hit a bound or trapped.
fn still_usable(sb: &TestSandbox) {
    let ok = load(sb, "thousand-ops");
    let plan = sb.plan(&ok).expect("a well-behaved scenario plans after a misbehaving one");
    assert_eq!(plan.stream.op_count(), 1000);
}

#[test]
fn spin_forever_is_stopped_by_the_cpu_bound() {
    let sb = TestSandbox::new(test_limits());
    let loaded = load(&sb, "spin-forever");
    let err = sb.plan(&loaded).expect_err("spin-forever never returns");
    let (_, display) = expect_bound(err, "spin-forever", "run", Bound::Cpu);
    assert!(display.contains("raise it with --fuel"), "no advice: {display}");
    still_usable(&sb);
}

#[test]
fn spin_forever_is_stopped_by_the_default_cpu_bound() {
    let limits = SandboxLimits::default();
    assert_eq!(limits.fuel, 2_000_000_000, "the default CPU budget changed; update this test's name and docs");
    let sb = TestSandbox::new(limits);
    let loaded = load(&sb, "spin-forever");
    let err = sb.plan(&loaded).expect_err("spin-forever never returns");
    let (_, display) = expect_bound(err, "spin-forever", "run", Bound::Cpu);
    assert!(display.contains("--fuel"), "no advice: {display}");
}

#[test]
fn memory_bomb_is_stopped_by_the_memory_bound() {
    let limits = SandboxLimits::default();
    let bound = limits.memory_bytes;
    let sb = TestSandbox::new(limits);
    let loaded = load(&sb, "memory-bomb");
    let err = sb.plan(&loaded).expect_err("memory-bomb wants 1 GiB");
    let (message, display) = expect_bound(err, "memory-bomb", "run", Bound::Memory);
    assert!(message.contains(&format!("the bound is {bound} bytes")), "{display}");
    assert!(display.contains("raise it with --wasm-memory"), "no advice: {display}");
    still_usable(&sb);
}

#[test]
fn million_ops_is_stopped_by_the_op_stream_bound() {
    let limits = SandboxLimits::default();
    assert_eq!(limits.max_ops, 100_000);
    let sb = TestSandbox::new(limits);
    let loaded = load(&sb, "million-ops");
    let err = sb.plan(&loaded).expect_err("a million ops is over the bound");
    let (message, display) = expect_bound(err, "million-ops", "run", Bound::OpStream);
    assert!(message.contains("exceeded 100000 ops (op 100001 rejected)"), "{display}");
    assert!(display.contains("raise the bound with --max-ops or emit fewer ops"), "no advice: {display}");
}

#[test]
fn huge_string_is_stopped_by_the_argument_size_bound() {
    let sb = TestSandbox::new(test_limits());
    let loaded = load(&sb, "huge-string");
    let err = sb.plan(&loaded).expect_err("a 1 MiB name is over the bound");
    let (message, display) = expect_bound(err, "huge-string", "run", Bound::ArgumentSize);
    assert!(message.contains("add-cgroup"), "does not name the import: {display}");
    assert!(message.contains(&format!("{} bytes", 1 << 20)), "does not give the size: {display}");
    assert!(display.contains("pass shorter values"), "no advice: {display}");
}

#[test]
fn deep_recursion_is_stopped_by_the_stack_bound() {
    let sb = TestSandbox::new(test_limits());
    let loaded = load(&sb, "deep-recursion");
    let err = sb.plan(&loaded).expect_err("deep-recursion never returns");
    let (message, display) = expect_bound(err, "deep-recursion", "run", Bound::Stack);
    assert!(message.contains("stack overflowed"), "{display}");
    assert!(display.contains("recursion"), "no hint at the cause: {display}");
    still_usable(&sb);
}

#[test]
fn trap_in_check_is_a_trap_with_a_guest_backtrace() {
    let sb = TestSandbox::new(test_limits());
    let loaded = load(&sb, "trap-in-check");
    let plan = sb.plan(&loaded).expect("trap-in-check emits a valid stream");
    assert_eq!(plan.stream.op_count(), 1);
    assert_eq!(plan.stream.steps[0].ops, vec![Op::add_cgroup("only")]);

    let err = sb.check(&loaded, &plan.info.name, Results::default()).expect_err("check panics");
    let display = err.to_string();
    eprintln!("{display}");
    let SandboxError::Trap { scenario, export, message } = err else {
        panic!("expected a trap in `check`, got {err:?}\n{display}");
    };
    assert_eq!(scenario, "trap-in-check");
    assert_eq!(export, "check");
    assert!(display.starts_with("scenario \"trap-in-check\": `check` trapped"), "{display}");
    assert!(message.contains("unreachable"), "a Rust panic aborts with `unreachable`: {display}");
    assert!(message.contains("guest backtrace:"), "no guest backtrace: {display}");
    assert!(
        message.contains("judge_results_then_panic"),
        "the backtrace does not name the fixture's panicking function: {display}"
    );
    assert!(
        message.contains("guest stderr (last lines):") && message.contains("check panics on purpose"),
        "the guest's panic message is not in the error: {display}"
    );
    still_usable(&sb);
}

#[test]
fn an_ignored_op_error_invalidates_the_stream() {
    let sb = TestSandbox::new(test_limits());
    let loaded = load(&sb, "ignores-op-error");
    let err = sb.plan(&loaded).expect_err("the scenario ignored an op-error");
    let display = err.to_string();
    eprintln!("{display}");
    let SandboxError::Invalid(v) = err else {
        panic!("expected an invalid stream, got {err:?}\n{display}");
    };
    assert_eq!(v.scenario, "ignores-op-error");
    assert_eq!(v.section, Some(Section::Step(0)));
    // Op 0 is the add-cgroup; the rejected set-cpuset would have been op 1.
    assert_eq!(v.op_index, Some(1));
    assert_eq!(v.op.map(|k| k.wit_name()), Some("set-cpuset"));
    assert!(v.message.contains("disjoint"), "{display}");
    assert!(
        display.starts_with("scenario \"ignores-op-error\", step 0, op 1 (set-cpuset): "),
        "does not locate the op: {display}"
    );
    assert!(display.contains(" — fix: "), "no fix: {display}");
    assert!(!v.fix.is_empty());
}

#[test]
fn reading_a_host_file_fails_inside_the_sandbox() {
    let sb = TestSandbox::new(test_limits());
    let loaded = load(&sb, "reads-host-file");
    let err = sb.plan(&loaded).expect_err("run returns an error either way");
    let display = err.to_string();
    eprintln!("{display}");
    let SandboxError::RunFailed { scenario, message, rejection } = err else {
        panic!("expected run() to fail, got {err:?}\n{display}");
    };
    assert_eq!(scenario, "reads-host-file");
    assert!(rejection.is_none(), "no op was emitted, so none was rejected: {display}");
    assert!(message.starts_with("could not read /etc/passwd"), "the read succeeded: {display}");
    assert!(!message.contains("root:"), "passwd contents leaked into the sandbox: {display}");
    assert!(display.starts_with("scenario \"reads-host-file\": run() failed: could not read"), "{display}");
}

#[test]
fn forbidden_imports_are_refused_before_instantiation() {
    let sb = TestSandbox::new(test_limits());
    let path = wat("forbidden-import");
    let err = match sb.load_file(&path) {
        Ok(_) => panic!("a component importing wasi:keyvalue and acme:evil/api was accepted"),
        Err(e) => e,
    };
    let display = err.to_string();
    eprintln!("{display}");
    let SandboxError::ForbiddenImports { label, refused } = err else {
        panic!("expected forbidden imports, got {err:?}\n{display}");
    };
    assert_eq!(label, path.display().to_string());
    let names: Vec<&str> = refused.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["wasi:keyvalue/store@0.2.0", "acme:evil/api"]);
    assert!(refused.iter().all(|v| !v.allowed && !v.reason.is_empty()));
    assert!(display.contains("forbidden-import.wat"), "does not name the file: {display}");
    assert!(display.contains("refused before instantiation"), "{display}");
    assert!(display.contains("  - wasi:keyvalue/store@0.2.0: "), "{display}");
    assert!(display.contains("  - acme:evil/api: not part of the schedbox contract"), "{display}");

    // judge_imports reports the same verdicts without refusing.
    let bytes = fs::read(&path).unwrap();
    let verdicts = sb.judge_imports("forbidden-import.wat", &bytes).expect("judging reads the import section");
    assert_eq!(verdicts, refused);
}

/// Imports are judged from the import section before the component is
/// compiled: a component whose code cannot compile is refused for its imports
/// (not for its code), and without the import the compile error shows.
#[test]
fn imports_are_judged_before_compiling() {
    let sb = TestSandbox::new(test_limits());
    let body = r#"
        (core module $m (func (export "f") (result i32)))
        (core instance $i (instantiate $m))
        (func (export "describe") (result u32) (canon lift (core func $i "f")))"#;
    let forbidden = format!(r#"(component (import "acme:evil/api" (instance)) {body})"#);
    let err = sb.load_bytes("uncompilable.wat", forbidden.as_bytes()).err().expect("refused");
    assert!(matches!(err, SandboxError::ForbiddenImports { .. }), "judged after compiling: {err}");
    let verdicts = sb.judge_imports("uncompilable.wat", forbidden.as_bytes()).expect("nothing is compiled");
    assert_eq!(verdicts.len(), 1);
    assert!(!verdicts[0].allowed);
    let clean = format!("(component {body})");
    let err = sb.load_bytes("uncompilable.wat", clean.as_bytes()).err().expect("its code does not compile");
    assert!(matches!(err, SandboxError::Compile { .. }), "{err}");
}

#[test]
fn a_core_module_is_refused_with_advice() {
    let sb = TestSandbox::new(test_limits());
    let path = wat("core-module");
    let err = sb.load_file(&path).err().expect("a core module is not a scenario");
    let display = err.to_string();
    eprintln!("{display}");
    assert!(matches!(err, SandboxError::CoreModule { ref label } if *label == path.display().to_string()), "{err:?}");
    assert!(display.contains("core-module.wat"), "{display}");
    assert!(display.contains("not a component"), "{display}");
    assert!(display.contains("--target wasm32-wasip2"), "no advice: {display}");

    // The same module as a binary is caught by its header.
    let binary = [b"\0asm".as_slice(), &[1, 0, 0, 0]].concat();
    let err = sb.load_bytes("core.wasm", &binary).err().expect("a core module is not a scenario");
    assert!(matches!(err, SandboxError::CoreModule { ref label } if label == "core.wasm"), "{err:?}");
}

#[test]
fn malformed_bytes_are_refused() {
    let sb = TestSandbox::new(test_limits());
    let dir = tempfile::tempdir().unwrap();

    // Random bytes (a fixed xorshift sequence), written to a file like a download gone wrong.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8 | 0x80 // never ASCII, so never mistaken for WAT text
        })
        .collect();
    let malformed = dir.path().join("malformed.wasm");
    fs::write(&malformed, &noise).unwrap();
    let err = sb.load_file(&malformed).err().expect("noise is not wasm");
    let display = err.to_string();
    eprintln!("{display}");
    assert!(matches!(err, SandboxError::NotWasm { .. }), "{err:?}");
    assert!(display.contains("malformed.wasm"), "{display}");
    assert!(display.contains("not a WebAssembly binary"), "{display}");
    assert!(display.contains("wasm32-wasip2"), "no advice: {display}");

    // A truncated header.
    let err = sb.load_bytes("truncated.wasm", b"\0as").err().expect("three bytes are not wasm");
    assert!(matches!(err, SandboxError::NotWasm { ref label } if label == "truncated.wasm"), "{err:?}");

    // A component header followed by garbage, and a real component cut short.
    let garbage = [b"\0asm".as_slice(), &[0x0d, 0, 1, 0], &noise[..64]].concat();
    let err = sb.load_bytes("garbage.wasm", &garbage).err().expect("garbage after the header");
    assert!(matches!(err, SandboxError::Compile { ref label, .. } if label == "garbage.wasm"), "{err:?}");
    assert!(err.to_string().starts_with("garbage.wasm: not a valid component: "), "{err}");

    let real = fs::read(fixture("thousand-ops")).unwrap();
    let cut = &real[..real.len() / 2];
    let err = sb.load_bytes("cut.wasm", cut).err().expect("half a component");
    assert!(matches!(err, SandboxError::Compile { ref label, .. } if label == "cut.wasm"), "{err:?}");
}

#[test]
fn fixtures_export_the_scenario_world_and_only_allowed_imports() {
    let sb = TestSandbox::new(test_limits());
    let bytes = fs::read(fixture("thousand-ops")).unwrap();
    let mut exports = sb.export_names("thousand-ops", &bytes).unwrap();
    exports.sort();
    assert_eq!(exports, ["check", "describe", "run"]);
    let verdicts = sb.judge_imports("thousand-ops", &bytes).unwrap();
    assert!(verdicts.iter().any(|v| v.name.starts_with("schedbox:scenario/ops@0.1.")), "{verdicts:?}");
    assert!(verdicts.iter().all(|v| v.allowed), "{verdicts:?}");
}

#[test]
fn the_compiled_component_cache_survives_restarts_and_corruption() {
    let cache = tempfile::tempdir().unwrap();
    let path = fixture("thousand-ops");
    let bytes = fs::read(&path).unwrap();

    // Cold: compiled, then written to the cache.
    let first = sandbox_in(cache.path(), test_limits());
    let cold = first.load_file(&path).expect("loads");
    assert!(!cold.from_cache, "the cache directory was empty");
    let reference = first.plan(&cold).expect("plans").stream;
    assert_eq!(reference.op_count(), 1000);
    // Same sandbox, same bytes: the memoised component.
    assert!(std::sync::Arc::ptr_eq(&cold, &first.load_file(&path).unwrap()));

    let entries = files_with_extension(cache.path(), "cwasm");
    assert_eq!(entries.len(), 1, "one component, one cache entry: {entries:?}");
    let entry = &entries[0];
    let name = entry.file_stem().unwrap().to_str().unwrap();
    assert_eq!(name, digest(&bytes).iter().map(|b| format!("{b:02x}")).collect::<String>());

    // Warm: a new sandbox (as a new process would) deserialises the entry.
    let second = sandbox_in(cache.path(), test_limits());
    let warm = second.load_file(&path).expect("loads from the cache");
    assert!(warm.from_cache, "the entry {} was not used", entry.display());
    assert_eq!(second.plan(&warm).expect("plans").stream, reference);

    // Corrupt: one flipped byte in the compiled code; a new sandbox recompiles.
    let mut compiled = fs::read(entry).unwrap();
    let at = compiled.len() / 2;
    compiled[at] ^= 0xff;
    fs::write(entry, &compiled).unwrap();
    let third = sandbox_in(cache.path(), test_limits());
    let recompiled = third.load_file(&path).expect("a corrupt entry is a miss, not a failure");
    assert!(!recompiled.from_cache, "a corrupt cache entry was used");
    assert_eq!(third.plan(&recompiled).expect("plans").stream, reference);

    // The recompile rewrote the entry.
    assert_ne!(fs::read(entry).unwrap(), compiled, "the corrupt entry was not replaced");
    let fourth = sandbox_in(cache.path(), test_limits());
    assert!(fourth.load_file(&path).unwrap().from_cache);

    // A truncated entry is a miss too.
    fs::write(entry, &compiled[..10]).unwrap();
    let fifth = sandbox_in(cache.path(), test_limits());
    let reloaded = fifth.load_file(&path).expect("a truncated entry is a miss");
    assert!(!reloaded.from_cache);
    assert_eq!(fifth.plan(&reloaded).expect("plans").stream, reference);
}

#[test]
fn a_component_of_tens_of_mb_loads_runs_and_is_cached() {
    let path = fixture("large-runtime");
    assert!(std::fs::metadata(&path).unwrap().len() > 20 << 20, "the fixture must be tens of MB");
    let sb = TestSandbox::new(SandboxLimits::default());
    let loaded = load(&sb, "large-runtime");
    let plan = sb.plan(&loaded).unwrap_or_else(|e| panic!("{e}"));
    // The op name carries bytes read from both ends of the embedded table.
    assert_eq!(plan.stream.steps[0].ops, vec![Op::add_cgroup(format!("large-{}", (TABLE_END + TABLE_MID)))]);
    let again = sandbox_in(sb.cache_root(), SandboxLimits::default());
    let cached = again.load_file(&path).unwrap();
    assert!(cached.from_cache, "the second process loads the compiled code from the cache");
    assert_eq!(again.plan(&cached).unwrap().stream, plan.stream);
}

/// `(i % 251)` at the last byte and the middle of the 24 MiB table.
const TABLE_END: usize = ((24 << 20) - 1) % 251;
const TABLE_MID: usize = (12 << 20) % 251;

#[test]
fn sleep_forever_does_not_hang_and_is_stopped_by_the_cpu_bound() {
    // Sleeps take no time in the sandbox: the loop spends fuel and hits the CPU bound.
    let sb = TestSandbox::new(SandboxLimits { wall_ms: 3_600_000, ..test_limits() });
    let loaded = load(&sb, "sleep-forever");
    let err = sb.plan(&loaded).expect_err("sleep-forever never returns");
    let (_, display) = expect_bound(err, "sleep-forever", "run", Bound::Cpu);
    assert!(display.contains("--fuel"), "no advice: {display}");
    still_usable(&sb);
}

#[test]
fn spin_forever_without_a_cpu_bound_is_stopped_by_the_wall_clock_bound() {
    let limits = SandboxLimits { fuel: u64::MAX, wall_ms: 500, ..SandboxLimits::default() };
    let sb = TestSandbox::new(limits);
    for name in ["spin-forever", "sleep-forever"] {
        let loaded = load(&sb, name);
        let err = sb.plan(&loaded).expect_err("it never returns");
        let (message, display) = expect_bound(err, name, "run", Bound::WallClock);
        assert!(message.contains("raise it with --wall-ms"), "no advice: {display}");
    }
    still_usable(&sb);
}

#[test]
fn the_default_wall_clock_bound_is_thirty_seconds() {
    assert_eq!(SandboxLimits::default().wall_ms, 30_000, "the default changed; update the README and --help");
}
