//! The scenario matrix: every built scenario × its declared topology × every
//! scheduler as one libtest test, so `cargo nextest run --partition hash:M/N`
//! splits it across machines and nextest writes JUnit (see the README, "Scaling
//! out").
//!
//! Scenarios: every `.wasm` under `target/scenarios/` except the sandbox
//! fixtures (`target/scenarios/fixtures/`, which misbehave on purpose), plus
//! every `.wasm` under `$SCHEDBOX_SCENARIO_DIR` when set.
//!
//! Schedulers (the gauntlet): `kernel` (no sched_ext scheduler: the kernel's own
//! fair class), `fixture` (always) and every scheduler `schedbox scheduler
//! install` put in the user cache; `$SCHEDBOX_MATRIX_SCHEDULERS` (comma-separated
//! names) replaces that list. A scenario that attaches no scheduler itself is a
//! test per scheduler, named `<dir>/<file stem>::<topology>::<scheduler>`
//! (`rust/cpuset-split::1n1l2c1t::bpfland`), and runs `schedbox run <component>
//! --boot-scheduler <scheduler>`: the scheduler is attached before the scenario
//! starts and a scheduler ejected or dead during a step fails that step. A
//! scenario that attaches its own schedulers keeps one test,
//! `<dir>/<file stem>::<topology>::own`. Each passes when the scenario does.
//!
//! Matrix tests boot VMs, so they are ignored unless asked for (`--ignored`, or
//! nextest's `--run-ignored only`); `cargo test --workspace` only lists them and
//! runs the self-check that every example scenario is in the list.
//! `SCHEDBOX_MATRIX_ARGS` adds arguments to every `schedbox run` (e.g.
//! `--kernel /path/to/bzImage`).

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};
use schedbox::machine::BUILT_IN_SCHEDULERS;
use schedbox::sandbox::{ComponentCache, Sandbox, SandboxConfig};

/// One scenario of the matrix under one scheduler.
struct Entry {
    /// `<dir>/<stem>::<topology>::<scheduler>`.
    name: String,
    path: PathBuf,
    /// The run's boot scheduler (`None`: the kernel's own, or the scenario's).
    scheduler: Option<String>,
    /// Why its topology is unknown (it cannot be described); the test fails with it.
    broken: Option<String>,
}

/// The matrix's scheduler axis for scenarios that attach none themselves.
const KERNEL: &str = "kernel";
/// The name of the single test of a scenario that attaches its own schedulers.
const OWN: &str = "own";

/// `kernel`, `fixture` and the installed schedulers, or `$SCHEDBOX_MATRIX_SCHEDULERS`.
fn schedulers() -> Vec<String> {
    if let Ok(list) = std::env::var("SCHEDBOX_MATRIX_SCHEDULERS") {
        return list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    }
    let mut names = vec![KERNEL.to_owned(), "fixture".to_owned()];
    let bin = ComponentCache::default_root().map(|c| c.join("schedulers/bin"));
    let mut installed: Vec<String> = bin
        .and_then(|b| std::fs::read_dir(b).ok())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        // `schedbox scheduler list`'s names: `scx_bpfland` is `bpfland`.
        .map(|n| n.strip_prefix("scx_").map(str::to_owned).unwrap_or(n))
        .collect();
    installed.sort();
    names.extend(installed);
    names
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
fn discover(only: Option<&str>, schedulers: &[String]) -> Vec<Entry> {
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
            match described {
                Ok(info) if !info.schedulers.is_empty() => {
                    let name = format!("{rel}::{}::{OWN}", info.topology);
                    out.push(Entry { name, path, scheduler: None, broken: None });
                }
                Ok(info) => {
                    for s in schedulers {
                        let name = format!("{rel}::{}::{s}", info.topology);
                        let scheduler = (s != KERNEL).then(|| s.clone());
                        out.push(Entry { name, path: path.clone(), scheduler, broken: None });
                    }
                }
                Err(e) => {
                    let name = format!("{rel}::unknown-topology");
                    out.push(Entry { name, path, scheduler: None, broken: Some(e) });
                }
            }
        }
    }
    out
}

fn run_scenario(path: &Path, scheduler: Option<&str>, broken: Option<&str>) -> Result<(), Failed> {
    if let Some(e) = broken {
        return Err(format!("{} cannot be described: {e}", path.display()).into());
    }
    let mut extra: Vec<String> = std::env::var("SCHEDBOX_MATRIX_ARGS")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    if let Some(s) = scheduler {
        // A built-in one needs no staging; an installed one is staged by name.
        if !BUILT_IN_SCHEDULERS.contains(&s) {
            extra.extend(["--scheduler".to_owned(), s.to_owned()]);
        }
        extra.extend(["--boot-scheduler".to_owned(), s.to_owned()]);
    }
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
            "schedbox run {} {} exited with {:?}\n{stdout}\n{}",
            path.display(),
            extra.join(" "),
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
    // A language is a directory beside Cargo.toml; `target` is a build's output.
    for lang in langs.flatten().filter(|l| l.path().is_dir() && l.file_name() != "target") {
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

/// Every scenario is either one `::own` test (it attaches its schedulers itself) or
/// one test per scheduler of the axis, in its order; both kinds are among the
/// examples (`sched-swap` attaches its own, `cpuset-split` none).
fn scheduler_axis(names: &[String], schedulers: &[String]) -> Result<(), Failed> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for n in names.iter().filter(|n| !n.ends_with("::unknown-topology")) {
        let (scenario, scheduler) = n.rsplit_once("::").ok_or_else(|| format!("{n}: no ::<scheduler> suffix"))?;
        match groups.last_mut() {
            Some((s, list)) if s == scenario => list.push(scheduler.to_owned()),
            _ => groups.push((scenario.to_owned(), vec![scheduler.to_owned()])),
        }
    }
    let (mut own, mut axis) = (0, 0);
    for (scenario, list) in &groups {
        if list == &[OWN] {
            own += 1;
        } else if list == schedulers {
            axis += 1;
        } else {
            return Err(format!("{scenario}: schedulers {list:?}, expected [{OWN:?}] or {schedulers:?}").into());
        }
    }
    if own == 0 || axis == 0 {
        return Err(format!(
            "expected scenarios of both kinds: {own} attach their own scheduler, {axis} run under each of \
             {schedulers:?}\nlisted: {names:#?}"
        )
        .into());
    }
    Ok(())
}

const SELF_CHECK: &str = "matrix::lists_every_example";
const AXIS_CHECK: &str = "matrix::scheduler_axis";

fn main() {
    let mut args = Arguments::from_args();
    // Each matrix test boots a guest whose vCPUs are host threads: one at a time
    // unless told otherwise (nextest runs one test per process anyway).
    args.test_threads.get_or_insert(1);
    let only = args.filter.as_deref().filter(|f| args.exact && *f != SELF_CHECK && *f != AXIS_CHECK);
    let axis = schedulers();
    let entries = discover(only, &axis);
    let names: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
    let names2 = names.clone();
    let mut trials = vec![
        Trial::test(SELF_CHECK, move || lists_every_example(&names)),
        Trial::test(AXIS_CHECK, move || scheduler_axis(&names2, &axis)),
    ];
    trials.extend(entries.into_iter().map(|e| {
        let Entry { name, path, scheduler, broken } = e;
        Trial::test(name, move || run_scenario(&path, scheduler.as_deref(), broken.as_deref())).with_ignored_flag(true)
    }));
    libtest_mimic::run(&args, trials).exit();
}
