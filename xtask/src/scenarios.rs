//! `build-scenarios`: build the Rust example scenarios as components.
//!
//! The example scenarios are a separate cargo workspace
//! (`example-scenarios/Cargo.toml`, members `rust/*`), one `cdylib` crate per
//! scenario, built for `wasm32-wasip2`, where a `cdylib` comes out directly as
//! a component. Each component is copied to
//! `target/scenarios/rust/<crate directory name>.wasm`.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

/// The guest target.
const TARGET: &str = "wasm32-wasip2";

/// The guest workspace, relative to the repository root.
const WORKSPACE: &str = "example-scenarios";

/// Where the guest crates are built, relative to the repository root (kept
/// apart from the host's `target/` builds).
const TARGET_DIR: &str = "target/wasm";

/// Where the components go, relative to the repository root.
const OUT_DIR: &str = "target/scenarios/rust";

/// The preamble of a component binary: magic, then version 0x0d and layer 1.
const COMPONENT_PREAMBLE: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// Build every crate under `example-scenarios/rust/` in release mode for
/// `wasm32-wasip2` and copy each component to
/// `target/scenarios/rust/<name>.wasm`, `<name>` being the crate's directory
/// name (which must also be its package name). Returns the copied paths,
/// sorted by name.
pub fn build_rust_scenarios(root: &Path) -> Result<Vec<PathBuf>> {
    let workspace = root.join(WORKSPACE);
    let manifest = workspace.join("Cargo.toml");
    ensure!(manifest.is_file(), "no guest workspace manifest at {}", manifest.display());
    let names = scenario_crates(&workspace.join("rust"))?;
    ensure!(!names.is_empty(), "no scenario crates under {}", workspace.join("rust").display());

    ensure_target_installed()?;

    let target_dir = root.join(TARGET_DIR);
    let status = Command::new(cargo())
        .current_dir(root)
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .context("running cargo build for the example scenarios")?;
    ensure!(status.success(), "cargo build of {} failed ({status})", manifest.display());

    let built = target_dir.join(TARGET).join("release");
    let out_dir = root.join(OUT_DIR);
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;

    let mut outputs = Vec::with_capacity(names.len());
    for name in &names {
        let from = built.join(cdylib_file_name(name));
        ensure!(
            from.is_file(),
            "{} was not built: is the package in {WORKSPACE}/rust/{name} named `{name}`, \
             with `crate-type = [\"cdylib\"]`?",
            from.display()
        );
        check_component(&from)?;
        let to = out_dir.join(format!("{name}.wasm"));
        fs::copy(&from, &to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        outputs.push(to);
    }
    Ok(outputs)
}

/// The names of the directories under `dir` that hold a `Cargo.toml`, sorted.
fn scenario_crates(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        if !entry.path().join("Cargo.toml").is_file() {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            bail!("scenario crate directory {:?} is not UTF-8", entry.path());
        };
        names.push(name.to_owned());
    }
    names.sort();
    Ok(names)
}

/// The file a `cdylib` named `name` builds to: dashes become underscores.
fn cdylib_file_name(name: &str) -> String {
    format!("{}.wasm", name.replace('-', "_"))
}

/// Fail unless `path` starts with the component preamble.
fn check_component(path: &Path) -> Result<()> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        is_component(&bytes),
        "{} is not a component (preamble {:02x?}); is it built for {TARGET}?",
        path.display(),
        &bytes[..bytes.len().min(8)]
    );
    Ok(())
}

/// Whether `bytes` start like a component (not a core module).
fn is_component(bytes: &[u8]) -> bool {
    bytes.starts_with(&COMPONENT_PREAMBLE)
}

/// The cargo that runs this xtask, or the one on `PATH`.
fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Make sure the toolchain has the `wasm32-wasip2` standard library:
/// `rustup target add` when rustup is there (a no-op when installed),
/// otherwise a look into the sysroot.
fn ensure_target_installed() -> Result<()> {
    match Command::new("rustup").args(["target", "list", "--installed"]).output() {
        Ok(out) if out.status.success() => {
            let installed = String::from_utf8_lossy(&out.stdout);
            if installed.lines().any(|l| l.trim() == TARGET) {
                return Ok(());
            }
            let status =
                Command::new("rustup").args(["target", "add", TARGET]).status().context("running rustup target add")?;
            ensure!(status.success(), "rustup target add {TARGET} failed ({status})");
            Ok(())
        }
        // No rustup (or it failed): the standard library has to be in the
        // sysroot already.
        _ => {
            let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
            let out =
                Command::new(rustc).args(["--print", "sysroot"]).output().context("running rustc --print sysroot")?;
            ensure!(out.status.success(), "rustc --print sysroot failed");
            let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            let lib = sysroot.join("lib/rustlib").join(TARGET);
            ensure!(
                lib.is_dir(),
                "the {TARGET} standard library is missing from {} and there is no rustup to \
                 add it",
                sysroot.display()
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdylib_names_use_underscores() {
        assert_eq!(cdylib_file_name("cpuset-split"), "cpuset_split.wasm");
        assert_eq!(cdylib_file_name("plain"), "plain.wasm");
    }

    #[test]
    fn tells_components_from_modules() {
        assert!(is_component(&[0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, 0x07]));
        assert!(!is_component(&[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]));
        assert!(!is_component(&[0x00, 0x61]));
    }
}
