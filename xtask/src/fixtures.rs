//! `build-scenarios`, second half: build the sandbox test fixtures.
//!
//! The fixtures are scenario components that misbehave on purpose (spin,
//! allocate, recurse, flood the op stream, ...), one `cdylib` crate per
//! fixture in their own cargo workspace `tests/fixtures/guests/`. Each is built
//! for `wasm32-wasip2` and copied to
//! `target/scenarios/fixtures/<crate directory name>.wasm`, where
//! `tests/tests/sandbox.rs` and the host benchmarks look for them.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

/// The guest target.
const TARGET: &str = "wasm32-wasip2";

/// The fixtures' cargo workspace, relative to the repository root.
const WORKSPACE: &str = "tests/fixtures/guests";

/// Where guest crates are built, relative to the repository root.
const TARGET_DIR: &str = "target/wasm";

/// Where the fixture components go, relative to the repository root.
const OUT_DIR: &str = "target/scenarios/fixtures";

/// The preamble of a component binary: magic, then version 0x0d and layer 1.
const COMPONENT_PREAMBLE: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

/// Builds every fixture crate of `tests/fixtures/guests/` in release mode for
/// `wasm32-wasip2` and copies each component to
/// `target/scenarios/fixtures/<crate directory name>.wasm`. Returns the copied
/// paths, sorted by name.
pub fn build_fixtures(root: &Path) -> Result<Vec<PathBuf>> {
    let workspace = root.join(WORKSPACE);
    let manifest = workspace.join("Cargo.toml");
    ensure!(manifest.is_file(), "no fixture workspace manifest at {}", manifest.display());
    let crates = fixture_crates(&workspace)?;
    ensure!(!crates.is_empty(), "no fixture crates under {}", workspace.display());

    let target_dir = root.join(TARGET_DIR);
    eprintln!("building the sandbox fixtures of {WORKSPACE} for {TARGET}");
    let status = Command::new(cargo())
        .current_dir(root)
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .context("running cargo build for the sandbox fixtures")?;
    ensure!(status.success(), "cargo build of {} failed ({status})", manifest.display());

    let built = target_dir.join(TARGET).join("release");
    let out_dir = root.join(OUT_DIR);
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;

    let mut outputs = Vec::with_capacity(crates.len());
    for krate in &crates {
        let from = built.join(format!("{}.wasm", krate.package.replace('-', "_")));
        ensure!(
            from.is_file(),
            "{} was not built: does {WORKSPACE}/{}/Cargo.toml have `crate-type = [\"cdylib\"]`?",
            from.display(),
            krate.dir
        );
        let bytes = fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
        ensure!(
            bytes.starts_with(&COMPONENT_PREAMBLE),
            "{} is not a component (preamble {:02x?}); was it built for {TARGET}?",
            from.display(),
            &bytes[..bytes.len().min(8)]
        );
        let to = out_dir.join(format!("{}.wasm", krate.dir));
        fs::write(&to, &bytes).with_context(|| format!("writing {}", to.display()))?;
        outputs.push(to);
    }
    Ok(outputs)
}

/// One fixture crate: its directory name (the output name) and package name.
#[derive(Debug, PartialEq, Eq)]
struct FixtureCrate {
    dir: String,
    package: String,
}

/// The fixture crates: directories under `workspace` holding a `Cargo.toml`, sorted.
fn fixture_crates(workspace: &Path) -> Result<Vec<FixtureCrate>> {
    let mut crates = Vec::new();
    for entry in fs::read_dir(workspace).with_context(|| format!("listing {}", workspace.display()))? {
        let entry = entry.with_context(|| format!("listing {}", workspace.display()))?;
        let manifest = entry.path().join("Cargo.toml");
        if !manifest.is_file() {
            continue;
        }
        let Some(dir) = entry.file_name().to_str().map(str::to_owned) else {
            bail!("fixture crate directory {:?} is not UTF-8", entry.path());
        };
        let text = fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
        let package = package_name(&text)
            .with_context(|| format!("{} has no `name = \"...\"` in its [package] table", manifest.display()))?;
        crates.push(FixtureCrate { dir, package });
    }
    crates.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(crates)
}

/// The `name` of the `[package]` table of a manifest (a plain line scan; the
/// fixture manifests are simple).
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
            continue;
        }
        if !in_package {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            if key.trim() == "name" {
                return Some(value.trim().trim_matches('"').to_owned());
            }
        }
    }
    None
}

/// The cargo that runs this xtask, or the one on `PATH`.
fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_package_name() {
        let manifest = "[package]\nname = \"fixture-spin-forever\"\nversion.workspace = true\n\n[lib]\nname = \"x\"\n";
        assert_eq!(package_name(manifest).as_deref(), Some("fixture-spin-forever"));
        assert_eq!(package_name("[lib]\nname = \"x\"\n"), None);
    }

    #[test]
    fn finds_every_fixture_crate() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
        let crates = fixture_crates(&root.join(WORKSPACE)).expect("fixture workspace");
        let dirs: Vec<&str> = crates.iter().map(|c| c.dir.as_str()).collect();
        for want in ["spin-forever", "memory-bomb", "million-ops", "thousand-ops", "trap-in-check"] {
            assert!(dirs.contains(&want), "{want} missing from {dirs:?}");
        }
        assert!(crates.iter().all(|c| c.package == format!("fixture-{}", c.dir)), "{crates:?}");
    }
}
