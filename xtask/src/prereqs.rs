//! Installs what the build needs, idempotently. Never touches the system's
//! apt sources: only packages of the running Debian release are installed.

use std::process::Command;

use anyhow::{bail, Context, Result};

/// Rust targets the guest builds need.
const RUST_TARGETS: &[&str] = &["wasm32-wasip2"];

/// Makes sure every prerequisite is present; installs what is missing.
pub fn ensure() -> Result<()> {
    rust_targets()
}

fn rust_targets() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("rustup is needed to add the wasm32-wasip2 target")?;
    let installed = String::from_utf8_lossy(&out.stdout);
    for target in RUST_TARGETS {
        if !installed.lines().any(|l| l.trim() == *target) {
            eprintln!("installing Rust target {target}");
            let status = Command::new("rustup").args(["target", "add", target]).status()?;
            if !status.success() {
                bail!("`rustup target add {target}` failed");
            }
        }
    }
    Ok(())
}

/// Installs Debian packages that are not installed yet (`apt-get install`
/// from the system's own sources).
#[allow(dead_code)]
pub fn apt_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing Debian packages: {}", missing.join(" "));
    let status = Command::new("apt-get").arg("update").status()?;
    if !status.success() {
        bail!("apt-get update failed");
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if !status.success() {
        bail!("apt-get install {} failed; install them by hand and retry", missing.join(" "));
    }
    Ok(())
}
