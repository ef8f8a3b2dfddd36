//! Running a whole integration-test suite (a sibling test binary) on the kvm
//! backend, and judging its output: every listed test must pass, none may skip.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

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
