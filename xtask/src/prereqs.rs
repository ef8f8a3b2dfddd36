//! Installs what the build needs, idempotently. Never touches the system's
//! apt sources: only packages of the running Debian release are installed.
//! When everything is present this costs one `rustup` and one `dpkg-query` run.
//! The Go toolchain is the exception: it goes to the user's cache dir, from
//! trixie-backports through a private apt state (`go_scenarios/toolchain.rs`).

use std::process::Command;

use anyhow::{bail, Context, Result};

/// Rust targets the guest builds need: scenarios (wasm) and the static guest agent (musl).
const RUST_TARGETS: &[&str] = &["wasm32-wasip2", crate::agent::TARGET];

/// Debian packages: QEMU runs the guest where there is no KVM (and as a cross-check).
const APT_PACKAGES: &[&str] = &["qemu-system-x86"];

/// Makes sure every prerequisite is present; installs what is missing.
pub fn ensure() -> Result<()> {
    rust_targets(RUST_TARGETS)?;
    apt_packages(&[APT_PACKAGES, crate::scheduler::APT_PACKAGES].concat())?;
    // Go 1.25 for the Go scenarios, in the user's cache dir (not installed system-wide).
    crate::go_scenarios::goroot().map(drop)
}

/// Adds one Rust target if it is missing.
pub fn rust_target(target: &str) -> Result<()> {
    rust_targets(&[target])
}

fn rust_targets(targets: &[&str]) -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .with_context(|| format!("rustup is needed to add the Rust targets {}", targets.join(", ")))?;
    let installed = String::from_utf8_lossy(&out.stdout);
    for target in targets {
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
/// from the system's own sources); one `dpkg-query` call when all are present.
pub fn apt_packages(packages: &[&str]) -> Result<()> {
    let mut query = Command::new("dpkg-query");
    query.args(["-W", "-f=${Package} ${Status}\n"]).args(packages);
    // dpkg-query exits 1 when a package is unknown; its stdout still lists the known ones.
    let listed = query.output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !listed.lines().any(|l| l.starts_with(&format!("{p} ")) && l.ends_with("install ok installed")))
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
