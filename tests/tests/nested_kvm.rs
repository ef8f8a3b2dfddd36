//! The `kvm` backend with the real kernel, on a host whose /dev/kvm cannot
//! boot one: `schedbox nested` runs schedbox (or a test binary) inside an
//! outer QEMU TCG guest whose CPU has SVM and nested paging, with kvm-amd
//! loaded, and brings reports and exit statuses back out.
//!
//! - the examples in every language run with `run --backend kvm` and their
//!   report comes back, showing kernel effects;
//! - `vm info --backend kvm` shows the requested CPU shape in sysfs;
//! - the guest-side op suite (`run_qemu`), the host-side op suite
//!   (`monitor_qemu`: freezes, cold reads and writes, page walks, task fields,
//!   BTF) and the sched_ext suite (`sched_qemu`) pass with
//!   `SCHEDBOX_TEST_BACKEND=kvm`, every listed test passing, none skipped; the
//!   few host-side tests that cannot pass nested are named with the reason.
//!
//! On a host with hardware KVM, the same suites run directly on the kvm backend
//! (`kvm_direct.rs`, part of the test command).
//!
//! `vm info` (one nested boot, about 25 s) runs in the test command. The rest
//! is ignored by default: nested under TCG each takes from half a minute to
//! several minutes, tens of inner boots in all. Two causes of stalled nested
//! boots were found and fixed (the outer guest runs a periodic timer, so TCG's
//! SVM cannot leave its timer interrupt pending forever while an inner vCPU
//! spins; inner guests skip the TSC clocksource watchdog, whose inter-CPU skew
//! check stalled 8 vCPUs on one CPU). Left: about one inner boot in 100 has
//! panicked (a general protection fault on interrupt entry, GS base wrong)
//! where the same kernel is steady on qemu. Run them with
//! `cargo test -p schedbox-tests --test nested_kvm -- --ignored --test-threads=1`
//! after `cargo test --workspace --no-run` (the suites' binaries must be built).

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;

use schedbox_tests::suites::{
    assert_examples_passed_on_kvm, assert_suite_passed, example_components, suite_binary, suite_tests,
};
use schedbox_tests::{repo_root, schedbox_bin};
use serde_json::Value;

static ONE_OUTER_GUEST: Mutex<()> = Mutex::new(());

/// Bound on one nested run of a suite or the examples (2–5 minutes each here).
const NESTED_TIMEOUT_S: &str = "600";

/// Runs `schedbox nested ARGS`, copying what it prints (the outer console) to
/// `target/nested-logs/<log>.log` as it arrives, so a slow run can be followed.
fn nested(log: &str, timeout_s: &str, args: &[&str]) -> (ExitStatus, String) {
    // One outer guest at a time: each keeps one host core busy, and a starved
    // outer vCPU stretches every timer of the inner guest.
    let _one = ONE_OUTER_GUEST.lock().unwrap_or_else(|p| p.into_inner());
    let dir = repo_root().join("target/nested-logs");
    std::fs::create_dir_all(&dir).unwrap();
    let mut file = std::fs::File::create(dir.join(format!("{log}.log"))).unwrap();
    let mut child = Command::new(schedbox_bin())
        .args(["nested", "--timeout", timeout_s])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("schedbox runs");
    let mut stdout = child.stdout.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let mut text = Vec::new();
    let mut buf = [0u8; 8192];
    let mut stderr = child.stderr.take().unwrap();
    while let Ok(n @ 1..) = stderr.read(&mut buf) {
        let _ = file.write_all(&buf[..n]);
        text.extend_from_slice(&buf[..n]);
    }
    let status = child.wait().unwrap();
    let mut text = String::from_utf8_lossy(&text).into_owned();
    text.push_str(&out.join().unwrap());
    (status, text)
}

fn nested_ok(log: &str, timeout_s: &str, args: &[&str]) -> String {
    let (status, text) = nested(log, timeout_s, args);
    assert!(status.success(), "schedbox nested {args:?} failed ({status}):\n{text}");
    text
}

#[test]
#[ignore = "nested kvm under TCG: minutes per test (tens of inner boots; about one inner boot in 100 has panicked under TCG's SVM); run with --ignored"]
fn examples_in_every_language_pass_on_the_kvm_backend_and_the_report_comes_back() {
    let components = example_components();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut args = vec!["--", "run", "--backend", "kvm"];
    let paths: Vec<String> = components.iter().map(|p| p.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    let report_arg = report.display().to_string();
    args.extend(["--report", &report_arg]);
    nested_ok("examples", NESTED_TIMEOUT_S, &args);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("the report came back")).unwrap();
    assert_examples_passed_on_kvm(&r);
}

/// In the test command: one nested boot, about 25 s in all.
#[test]
fn the_kvm_guest_shows_the_requested_cpu_shape() {
    // One inner boot (Ready in about 10 s): bounded tighter than the suites, but past
    // the inner boot watchdog (300 s nested), so a stalled inner boot reports its vCPUs.
    let args = ["--", "vm", "info", "--backend", "kvm", "--topology", "2n2l2c1t", "--json"];
    let err = nested_ok("vm-info", "420", &args);
    // The pretty-printed object: from a line `{` to the next line `}`.
    let start = err.find("\n{\n").unwrap_or_else(|| panic!("no JSON in:\n{err}"));
    let end = start + err[start..].find("\n}").unwrap_or_else(|| panic!("unterminated JSON in:\n{err}"));
    let info: Value = serde_json::from_str(&err[start..end + 2]).unwrap();
    assert_eq!(info["backend"], "kvm");
    assert_eq!(info["cpus_online"], serde_json::json!([0, 1, 2, 3, 4, 5, 6, 7]));
    assert_eq!(info["llc_groups"], serde_json::json!([[0, 1], [2, 3], [4, 5], [6, 7]]), "CPUID LLC sharing in sysfs");
    assert_eq!(info["numa_nodes"], serde_json::json!([[0, 1, 2, 3], [4, 5, 6, 7]]), "SRAT in sysfs");
}

/// Runs every test of the suite `name` on the kvm backend inside the outer guest,
/// but those of `excluded` (name, why it cannot pass there); each of the others must pass.
fn suite_on_kvm(name: &str, excluded: &[(&str, &str)]) {
    let bin = suite_binary(name);
    let tests = suite_tests(name, &bin, excluded);
    let scenarios = repo_root().join("target/scenarios");
    let stage: Vec<String> = ["rust", "c", "go"].iter().map(|l| scenarios.join(l).display().to_string()).collect();
    let payload = repo_root().join("target/x86_64-unknown-linux-musl/release/payload-exit");
    let cache = schedbox::sandbox::ComponentCache::default_root().expect("a user cache directory");
    let (bin_arg, payload_arg) = (bin.display().to_string(), payload.display().to_string());
    let cache_env = format!("{}={}", schedbox_tests::COMPONENT_CACHE_ENV, cache.display());
    let mut args = vec!["--exec", &bin_arg, "--env", "SCHEDBOX_TEST_BACKEND=kvm", "--env", &cache_env];
    for s in &stage {
        args.extend(["--stage", s]);
    }
    // Host programs the suites stage as payloads (their libraries come along).
    for p in [&payload_arg, "/bin/sleep", "/bin/sh", "/bin/false"] {
        args.extend(["--stage", p]);
    }
    args.extend(["--", "--test-threads=1", "--exact"]);
    args.extend(tests.iter().map(String::as_str));
    let (status, log) = nested(name, NESTED_TIMEOUT_S, &args);
    assert_suite_passed(name, &tests, status, &log);
}

#[test]
#[ignore = "nested kvm under TCG: minutes per test (tens of inner boots; about one inner boot in 100 has panicked under TCG's SVM); run with --ignored"]
fn guest_side_op_suite_passes_on_the_kvm_backend() {
    suite_on_kvm("run_qemu", &[]);
}

#[test]
#[ignore = "nested kvm under TCG: minutes per test (tens of inner boots; about one inner boot in 100 has panicked under TCG's SVM); run with --ignored"]
fn host_side_op_suite_passes_on_the_kvm_backend() {
    suite_on_kvm(
        "monitor_qemu",
        &[(
            "a_watchpoint_on_jiffies_64_fires_while_freezes_come_and_go",
            "QEMU's TCG does not deliver an armed DR7 data breakpoint of the inner guest as a #DB exit, \
             so no hit reaches the VMM (it does on hardware)",
        )],
    );
}

#[test]
#[ignore = "nested kvm under TCG: minutes per test (tens of inner boots; about one inner boot in 100 has panicked under TCG's SVM); run with --ignored"]
fn sched_ext_suite_passes_on_the_kvm_backend() {
    suite_on_kvm("sched_qemu", &[]);
}
