//! The fixture sched_ext scheduler (`host/fixture-scheduler`): its BPF program is
//! compiled by the crate's build.rs with clang-16, and its libbpf-rs loader is linked
//! static (glibc with `+crt-static`; libbpf vendored, libelf and zlib from the
//! system's static archives) so it runs from the guest's initramfs with no loader.
//! The host stages it into every guest it finds it for (see `find_fixture_scheduler`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub const TARGET: &str = "x86_64-unknown-linux-gnu";
const PACKAGE: &str = "schedbox-fixture-scheduler";

/// Debian packages the build needs: clang for the BPF target, libbpf's headers,
/// static libelf and zlib, pkg-config to find them, make for the vendored libbpf.
pub const APT_PACKAGES: &[&str] = &["clang-16", "libbpf-dev", "libelf-dev", "zlib1g-dev", "pkg-config", "make"];

/// Where `build_fixture_scheduler` leaves the loader.
pub fn fixture_scheduler_path(root: &Path) -> PathBuf {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(|d| root.join(d)).unwrap_or_else(|| root.join("target"));
    target_dir.join(TARGET).join("release").join(PACKAGE)
}

/// Builds the static fixture scheduler loader (release) and checks it is static.
pub fn build_fixture_scheduler(root: &Path) -> Result<PathBuf> {
    let libdir = Command::new("pkg-config")
        .args(["--variable=libdir", "libelf"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|d| !d.is_empty())
        .context("pkg-config does not know libelf: run `cargo xtask setup` (installs libelf-dev and pkg-config)")?;
    let args = ["build", "--release", "--quiet", "-p", PACKAGE, "--features", "static", "--target", TARGET];
    eprintln!("+ cargo {}", args.join(" "));
    let status = Command::new("cargo")
        .args(args)
        .current_dir(root)
        .env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS", "-C target-feature=+crt-static")
        .env("LIBBPF_SYS_LIBRARY_PATH", &libdir)
        .status()
        .context("could not start cargo")?;
    if !status.success() {
        bail!("building {PACKAGE} failed with {status}");
    }
    let path = fixture_scheduler_path(root);
    let elf = std::fs::read(&path).with_context(|| format!("the {PACKAGE} build left no {}", path.display()))?;
    if crate::agent::has_interpreter(&elf).with_context(|| format!("{} is not an ELF64 executable", path.display()))? {
        bail!("{} is dynamically linked (it has a PT_INTERP); the guest has no loader", path.display());
    }
    Ok(path)
}
