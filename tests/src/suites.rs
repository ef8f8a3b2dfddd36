//! Running a whole integration-test suite (a sibling test binary) or the example
//! scenarios on the kvm backend, and judging the outcome: every listed test must
//! pass, none may skip; every example must pass and show its kernel effects.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use serde_json::Value;

use crate::repo_root;

/// The 12 example components (6 Rust, 3 C, 3 Go) as `cargo xtask build-scenarios` left them.
pub fn example_components() -> Vec<PathBuf> {
    let mut components = Vec::new();
    for lang in ["rust", "c", "go"] {
        let dir = repo_root().join("target/scenarios").join(lang);
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask build-scenarios`)", dir.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .collect();
        found.sort();
        components.extend(found);
    }
    assert_eq!(components.len(), 12, "6 Rust, 3 C and 3 Go examples: {components:?}");
    components
}

/// Asserts a `schedbox run --report` of [`example_components`] on the kvm backend:
/// every verdict `pass`, every step passed, and what the kernel showed —
/// cpuset-split's cgroups on disjoint CPUs, kernel-reads' reads of guest memory.
pub fn assert_examples_passed_on_kvm(report: &Value) {
    assert_eq!(report["backend"], "kvm");
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 12);
    for s in scenarios {
        assert_eq!(s["verdict"], "pass", "{}: {}", s["source"], s["messages"]);
        assert!(s["results"]["steps"].as_array().unwrap().iter().all(|st| st["status"] == "passed"));
    }
    for s in scenarios.iter().filter(|s| s["name"] == "cpuset-split") {
        let cpus = |cg: &str| -> Vec<u64> {
            let w = s["results"]["workers"].as_array().unwrap().iter().find(|w| w["cgroup"] == cg).unwrap();
            w["cpus"].as_array().unwrap().iter().map(|c| c[0].as_u64().unwrap()).collect()
        };
        let (left, right) = (cpus("left"), cpus("right"));
        assert!(!left.is_empty() && !right.is_empty() && left.iter().all(|c| !right.contains(c)), "{left:?} {right:?}");
    }
    for s in scenarios.iter().filter(|s| s["name"] == "kernel-reads") {
        let reads = s["results"]["kernel_reads"].as_array().unwrap();
        assert!(!reads.is_empty(), "{}", s["source"]);
    }
}

/// The newest build of the integration test binary `name` beside the running one.
pub fn suite_binary(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_owned();
    let is_it = |p: &Path| {
        let f = p.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        f.strip_prefix(name).and_then(|r| r.strip_prefix('-')).is_some_and(|h| h.len() == 16 && !h.contains('.'))
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&deps)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_it(p))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no {name} test binary in {}: build the tests", deps.display()))
}

/// The tests `bin` lists, but those of `excluded` (name, why it cannot pass
/// where the suite runs), whose reasons are printed.
pub fn suite_tests(name: &str, bin: &Path, excluded: &[(&str, &str)]) -> Vec<String> {
    let list = Command::new(bin).args(["--list", "--format", "terse"]).output().unwrap();
    let tests: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test").map(str::to_owned))
        .filter(|t| !excluded.iter().any(|(x, _)| x == t))
        .collect();
    for (x, why) in excluded {
        eprintln!("{name}: {x} is not run here: {why}");
    }
    assert!(!tests.is_empty(), "{} lists no tests", bin.display());
    tests
}

/// Asserts that the run of suite `name` (its exit `status` and everything it
/// printed, `log`) passed each of `tests`, skipped none and ran no other.
pub fn assert_suite_passed(name: &str, tests: &[String], status: ExitStatus, log: &str) {
    assert!(status.success(), "{name} on kvm failed ({status}):\n{log}");
    assert!(!log.lines().any(|l| l.starts_with("SKIP")), "{name}: a test skipped on kvm:\n{log}");
    for t in tests {
        assert!(log.contains(&format!("test {t} ... ok")), "{name}: {t} did not pass on kvm:\n{log}");
    }
    let summary = format!("test result: ok. {} passed; 0 failed", tests.len());
    assert!(log.contains(&summary), "{name}: expected {summary:?}:\n{log}");
}
