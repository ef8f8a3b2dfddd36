//! The kvm backend with the real kernel, directly, on a host with hardware KVM:
//! the 12 examples through `schedbox run --backend kvm` (report checked for
//! kernel effects), the guest-side op suite (`run_qemu`), the host-side op suite (`monitor_qemu`:
//! freezes, cold reads and writes, watchpoints, page walks, task fields) and the
//! sched_ext suite (`sched_qemu`) run with `SCHEDBOX_TEST_BACKEND=kvm`, each of
//! their tests must pass and none may skip.
//!
//! Where /dev/kvm is not hardware KVM (software PVM, none at all) each test here
//! prints `SKIP` with the reason and runs nothing: a stock kernel cannot boot
//! there, and `nested_kvm.rs` covers the backend through an outer guest instead.
//! Build the suites first (`cargo test --workspace --no-run`, as the test command does).

use std::process::Command;

use schedbox_tests::schedbox_bin;
use schedbox_tests::suites::{
    assert_examples_passed_on_kvm, assert_suite_passed, example_components, suite_binary, suite_tests,
};

/// Runs the whole suite `name` on the kvm backend in this host's /dev/kvm, or says why not.
fn suite_on_hardware_kvm(name: &str) {
    if let Err(why) = schedbox::machine::hardware_kvm() {
        eprintln!("SKIP {name} on the kvm backend: {why}");
        return;
    }
    let bin = suite_binary(name);
    let tests = suite_tests(name, &bin, &[]);
    let out = Command::new(&bin)
        .env("SCHEDBOX_TEST_BACKEND", "kvm")
        .args(["--test-threads=1", "--exact", "--nocapture"])
        .args(&tests)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_suite_passed(name, &tests, out.status, &log);
}

#[test]
fn examples_in_every_language_pass_on_hardware_kvm() {
    if let Err(why) = schedbox::machine::hardware_kvm() {
        eprintln!("SKIP the examples on the kvm backend: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = Command::new(schedbox_bin())
        .args(["run", "--backend", "kvm"])
        .args(example_components())
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schedbox run --backend kvm failed ({}):\n{log}", out.status);
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_examples_passed_on_kvm(&r);
}

#[test]
fn guest_side_op_suite_passes_on_hardware_kvm() {
    suite_on_hardware_kvm("run_qemu");
}

#[test]
fn host_side_op_suite_passes_on_hardware_kvm() {
    suite_on_hardware_kvm("monitor_qemu");
}

#[test]
fn sched_ext_suite_passes_on_hardware_kvm() {
    suite_on_hardware_kvm("sched_qemu");
}
