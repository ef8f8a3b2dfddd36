//! The scenario matrix: every built scenario × its declared topology as one
//! libtest test, so `cargo nextest run --partition hash:M/N` splits it across
//! machines and nextest writes JUnit (see the README, "Scaling out").
//!
//! Scenarios: every `.wasm` under `target/scenarios/` except the sandbox
//! fixtures (`target/scenarios/fixtures/`, which misbehave on purpose), plus
//! every `.wasm` under `$SCHEDBOX_SCENARIO_DIR` when set. A test is named
//! `<dir>/<file stem>::<topology>` (`rust/cpuset-split::1n1l2c1t`) and runs
//! `schedbox run <component>` in a fresh guest; it passes when the scenario does.
//!
//! Matrix tests boot VMs, so they are ignored unless asked for (`--ignored`, or
//! nextest's `--run-ignored only`); `cargo test --workspace` only lists them and
//! runs the self-check that every example scenario is in the list.
//! `SCHEDBOX_MATRIX_ARGS` adds arguments to every `schedbox run` (e.g.
//! `--kernel /path/to/bzImage`).

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};
use schedbox::sandbox::{Sandbox, SandboxConfig};

/// One scenario of the matrix.
struct Entry {
    /// `<dir>/<stem>::<topology>`.
    name: String,
    path: PathBuf,
    /// Why its topology is unknown (it cannot be described); the test fails with it.
    broken: Option<String>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ lives below the root").to_owned()
}

fn wasm_files(dir: &Path, skip: Option<&Path>) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        if skip.is_some_and(|s| s == d) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                pending.push(p);
            } else if p.extension().is_some_and(|x| x == "wasm") {
                found.push(p);
            }
        }
    }
    found.sort();
    found
}

/// Every scenario of the matrix with its topology (from `describe`).
///
/// With an exact filter naming one matrix test (how nextest runs each test),
/// only the component it names is described.
fn discover(only: Option<&str>) -> Vec<Entry> {
    let built = repo().join("target/scenarios");
    let mut roots = vec![(built.clone(), Some(built.join("fixtures")))];
    if let Some(dir) = std::env::var_os("SCHEDBOX_SCENARIO_DIR") {
        roots.push((PathBuf::from(dir), None));
    }
    let sandbox = Sandbox::new(SandboxConfig::default());
    let mut out = Vec::new();
    for (root, skip) in roots {
        for path in wasm_files(&root, skip.as_deref()) {
            let rel = path.strip_prefix(&root).unwrap_or(&path).with_extension("");
            let rel = rel.to_string_lossy().replace('\\', "/");
            if only.is_some_and(|name| !name.starts_with(&format!("{rel}::"))) {
                continue;
            }
            let described = match &sandbox {
                Ok(sb) => sb.load_file(&path).and_then(|l| sb.describe(&l)).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            out.push(match described {
                Ok(info) => Entry { name: format!("{rel}::{}", info.topology), path, broken: None },
                Err(e) => Entry { name: format!("{rel}::unknown-topology"), path, broken: Some(e) },
            });
        }
    }
    out
}

fn run_scenario(path: &Path, broken: Option<&str>) -> Result<(), Failed> {
    if let Some(e) = broken {
        return Err(format!("{} cannot be described: {e}", path.display()).into());
    }
    let extra: Vec<String> = std::env::var("SCHEDBOX_MATRIX_ARGS")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let out = Command::new(env!("CARGO_BIN_EXE_schedbox"))
        .arg("run")
        .arg(path)
        .args(&extra)
        .output()
        .map_err(|e| format!("cannot start schedbox: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "schedbox run {} exited with {:?}\n{stdout}\n{}",
            path.display(),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into())
    }
}

/// Every example scenario (a directory `example-scenarios/<lang>/<name>/`) is in
/// the list as `<lang>/<name>::<topology>`, described successfully.
fn lists_every_example(names: &[String]) -> Result<(), Failed> {
    let mut missing = Vec::new();
    let mut seen = 0;
    let root = repo().join("example-scenarios");
    let langs = std::fs::read_dir(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let built = repo().join("target/scenarios");
    for lang in langs.flatten().filter(|l| l.path().is_dir()) {
        let lang_name = lang.file_name().to_string_lossy().into_owned();
        // A language whose toolchain could not be installed (`build-scenarios` says why).
        if built.join(&lang_name).join("UNAVAILABLE").is_file() {
            continue;
        }
        let Ok(dirs) = std::fs::read_dir(lang.path()) else { continue };
        for d in dirs.flatten().filter(|d| d.path().is_dir()) {
            let name = d.file_name().to_string_lossy().into_owned();
            // A variant that fails on purpose, built with the fixtures (`cpuset-split-bad`).
            if name == "__pycache__" || built.join("fixtures").join(&lang_name).join(format!("{name}.wasm")).is_file() {
                continue;
            }
            seen += 1;
            let prefix = format!("{}/{}::", lang.file_name().to_string_lossy(), d.file_name().to_string_lossy());
            if !names.iter().any(|n| n.starts_with(&prefix) && !n.ends_with("::unknown-topology")) {
                missing.push(prefix);
            }
        }
    }
    if seen == 0 {
        return Err("no example scenarios found under example-scenarios/".into());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("not in the matrix (run `cargo xtask build-scenarios`): {missing:?}\nlisted: {names:#?}").into())
    }
}

const SELF_CHECK: &str = "matrix::lists_every_example";

fn main() {
    let mut args = Arguments::from_args();
    // Each matrix test boots a guest whose vCPUs are host threads: one at a time
    // unless told otherwise (nextest runs one test per process anyway).
    args.test_threads.get_or_insert(1);
    let only = args.filter.as_deref().filter(|f| args.exact && *f != SELF_CHECK);
    let entries = discover(only);
    let names: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
    let mut trials = vec![Trial::test(SELF_CHECK, move || lists_every_example(&names))];
    trials.extend(entries.into_iter().map(|e| {
        let Entry { name, path, broken } = e;
        Trial::test(name, move || run_scenario(&path, broken.as_deref())).with_ignored_flag(true)
    }));
    libtest_mimic::run(&args, trials).exit();
}
