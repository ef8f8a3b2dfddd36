//! Project automation: `cargo xtask <command>`.
//!
//! - `demo`: installs what is missing, builds, and runs the main job on an example scenario.
//! - `test`: everything CI runs (style, lints, unit, integration and golden tests).
//! - `build-scenarios`: builds the example scenarios and sandbox fixtures to `target/scenarios/`,
//!   and the static guest agent (`target/x86_64-unknown-linux-musl/release/schedbox-agent`).
//! - `setup`: only installs prerequisites (idempotent).
//! - `bench`: runs the criterion benchmarks.
//! - `install [--root DIR]`: `cargo install --path host` plus the guest agent and
//!   fixture scheduler in schedbox's data directory, where the installed binary finds them.

mod agent;
mod c_scenarios;
mod component;
mod fixtures;
mod go_scenarios;
mod prereqs;
mod scenarios;
mod scheduler;
mod script_scenarios;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let cmd = args.first().map(String::as_str).unwrap_or("help");
    match cmd {
        "setup" => prereqs::ensure(),
        "build-scenarios" => build_scenarios(&root).map(|_| ()),
        "demo" => demo(&root),
        "test" => test(&root),
        "bench" => bench(&root, &args[1..]),
        "install" => install(&root, &args[1..]),
        "help" | "--help" | "-h" => {
            println!("usage: cargo xtask <demo|test|build-scenarios|setup|bench|install [--root DIR]>");
            Ok(())
        }
        other => bail!("unknown xtask command {other:?}; try `cargo xtask help`"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Runs a command in `root`, echoing it; fails with its exit status.
pub fn run(root: &Path, program: &str, args: &[&str]) -> Result<()> {
    eprintln!("+ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root)
        .status()
        .with_context(|| format!("could not start {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

fn build_scenarios(root: &Path) -> Result<Vec<PathBuf>> {
    prereqs::ensure()?;
    let mut built = scenarios::build_rust_scenarios(root)?;
    built.extend(c_scenarios::build_c_scenarios(root)?);
    built.extend(go_scenarios::build_go_scenarios(root)?);
    built.extend(script_scenarios::build_script_scenarios(root)?);
    built.extend(fixtures::build_fixtures(root)?);
    built.push(agent::build_agent(root)?);
    built.push(scheduler::build_fixture_scheduler(root)?);
    Ok(built)
}

/// Builds the host CLI and makes sure the default guest kernel (and the
/// modules microvm needs) is cached; returns the CLI's path.
fn host_and_kernel(root: &Path) -> Result<PathBuf> {
    run(root, "cargo", &["build", "--quiet", "-p", "schedbox"])?;
    let bin = root.join("target/debug/schedbox");
    run(root, &bin.to_string_lossy(), &["kernel", "fetch", "--modules"])?;
    Ok(bin)
}

fn demo(root: &Path) -> Result<()> {
    build_scenarios(root)?;
    let bin = host_and_kernel(root)?;
    let scenario = root.join("target/scenarios/rust/cpuset-split.wasm");
    let (bin, scenario) = (bin.to_string_lossy(), scenario.to_string_lossy());
    run(root, &bin, &["inspect", &scenario])?;
    run(root, &bin, &["plan", &scenario])?;
    run(root, &bin, &["vm", "info", "--topology", "1n2l2c1t"])?;
    let report = root.join("target/demo-report.json");
    run(root, &bin, &["run", &scenario, "--report", &report.to_string_lossy()])?;
    eprintln!(
        "\nAbove: the scenario's validated op stream, the guest a real sched_ext kernel boots into, and the\n\
         scenario executed there with its verdict (JSON report: {}).",
        report.display()
    );
    Ok(())
}

fn test(root: &Path) -> Result<()> {
    let start = Instant::now();
    build_scenarios(root)?;
    host_and_kernel(root)?;
    run(root, "cargo", &["fmt", "--all", "--", "--check"])?;
    for manifest in ["guest-sdk/rust/Cargo.toml", "example-scenarios/Cargo.toml", "tests/fixtures/guests/Cargo.toml"] {
        run(root, "cargo", &["fmt", "--manifest-path", manifest, "--all", "--", "--check"])?;
    }
    go_scenarios::lint(root)?;
    run(root, "cargo", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    for manifest in ["example-scenarios/Cargo.toml", "tests/fixtures/guests/Cargo.toml"] {
        run(
            root,
            "cargo",
            &[
                "clippy",
                "--manifest-path",
                manifest,
                "--target",
                "wasm32-wasip2",
                "--target-dir",
                "target/wasm",
                "--workspace",
                "--",
                "-D",
                "warnings",
            ],
        )?;
    }
    run(root, "cargo", &["test", "--workspace"])?;
    run(root, "cargo", &["test", "--manifest-path", "guest-sdk/rust/Cargo.toml", "--target-dir", "target/sdk-host"])?;
    eprintln!("xtask test: all checks passed in {:.0} s", start.elapsed().as_secs_f64());
    Ok(())
}

/// `cargo install --path host` (with `--root` when given), then the static guest
/// binaries copied into the data directory the installed `schedbox` searches
/// (`SCHEDBOX_DATA_DIR`, else `$XDG_DATA_HOME/schedbox`).
fn install(root: &Path, extra: &[String]) -> Result<()> {
    let agent = agent::build_agent(root)?;
    let scheduler = scheduler::build_fixture_scheduler(root)?;
    let data = match std::env::var_os("SCHEDBOX_DATA_DIR") {
        Some(d) => PathBuf::from(d),
        None => directories::ProjectDirs::from("", "", "schedbox")
            .context("no user data directory (set XDG_DATA_HOME or SCHEDBOX_DATA_DIR)")?
            .data_dir()
            .to_path_buf(),
    };
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    for bin in [&agent, &scheduler] {
        let name = bin.file_name().context("a binary has a name")?;
        let dest = data.join(name);
        // Through a temporary name, so a running guest's copy is never half-written.
        let tmp = data.join(format!(".{}.tmp", name.to_string_lossy()));
        std::fs::copy(bin, &tmp).with_context(|| format!("copying {} to {}", bin.display(), tmp.display()))?;
        std::fs::rename(&tmp, &dest)?;
        eprintln!("installed {}", dest.display());
    }
    // The workspace's target directory: what a release build left there is reused.
    let mut args = vec!["install", "--locked", "--path", "host", "--target-dir", "target"];
    args.extend(extra.iter().map(String::as_str));
    run(root, "cargo", &args)?;
    eprintln!("schedbox is installed; it finds its agent and fixture scheduler in {}", data.display());
    Ok(())
}

fn bench(root: &Path, extra: &[String]) -> Result<()> {
    build_scenarios(root)?;
    let mut args = vec!["bench", "-p", "schedbox"];
    args.extend(extra.iter().map(String::as_str));
    run(root, "cargo", &args)
}
