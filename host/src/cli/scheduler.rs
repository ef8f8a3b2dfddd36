//! `schedbox scheduler install <crate>[@version]` and `schedbox scheduler list`: sched_ext
//! schedulers built from crates.io (the scx schedulers: `scx_bpfland`, `scx_lavd`, …) into
//! the user's cache with `cargo install --root <cache>/schedulers`, so `--scheduler NAME`
//! finds them without a path.
//!
//! The scx crates compile their BPF programs with `clang` and refuse a clang older than
//! [`MIN_CLANG`]: the install finds one (`clang`, `clang-19`, `clang-18`, … on PATH) and puts
//! it first on the build's PATH as `clang`; with `--install-clang` it installs Debian's
//! `clang-19` from the running release when none is found.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use schedbox::sandbox::ComponentCache;

use super::Failure;

/// The oldest clang the scx schedulers' build scripts accept.
pub const MIN_CLANG: u32 = 18;
/// The Debian package installed by `--install-clang`.
const CLANG_PACKAGE: &str = "clang-19";

#[derive(Args, Debug)]
pub struct SchedulerArgs {
    #[command(subcommand)]
    pub command: SchedulerCommand,
}

#[derive(Subcommand, Debug)]
pub enum SchedulerCommand {
    /// Build a scheduler crate from crates.io into the user's cache (`cargo install --root`).
    Install {
        /// The crate, optionally with a version: `scx_bpfland`, `scx_lavd@1.1.0`.
        #[arg(value_name = "CRATE[@VERSION]")]
        krate: String,
        /// Install Debian's clang-19 (apt-get, the running release) when no clang >= 18 is found.
        #[arg(long)]
        install_clang: bool,
    },
    /// List the installed schedulers (each usable as `--scheduler NAME`).
    List,
}

pub fn run(a: SchedulerArgs) -> Result<u8, Failure> {
    match a.command {
        SchedulerCommand::List => {
            let found = installed().map_err(Failure::usage)?;
            if found.is_empty() {
                println!("no schedulers installed (schedbox scheduler install scx_bpfland)");
            }
            for (name, path) in found {
                println!("{name:<20} {}", path.display());
            }
            Ok(0)
        }
        SchedulerCommand::Install { krate, install_clang } => {
            install(&krate, install_clang).map_err(|error| Failure { error, code: 1 })?;
            Ok(0)
        }
    }
}

/// `<cache>/schedulers`: the `cargo install --root` of installed schedulers.
pub fn root() -> Result<PathBuf> {
    let cache = ComponentCache::default_root().context("no user cache directory (set XDG_CACHE_HOME)")?;
    Ok(cache.join("schedulers"))
}

/// Installed schedulers: (name, binary), sorted. `scx_bpfland` is listed as `bpfland`
/// (both names find it).
pub fn installed() -> Result<Vec<(String, PathBuf)>> {
    let bin = root()?.join("bin");
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(&bin) else { return Ok(out) };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_file() && !name.starts_with('.') {
            out.push((name.strip_prefix("scx_").unwrap_or(&name).to_owned(), e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The installed binary for `name`: `bin/<name>`, else `bin/scx_<name>`.
pub fn find_installed(name: &str) -> Option<PathBuf> {
    let bin = root().ok()?.join("bin");
    [bin.join(name), bin.join(format!("scx_{name}"))].into_iter().find(|p| p.is_file())
}

/// `crate[@version]` → (crate, version).
fn parse_crate(spec: &str) -> Result<(&str, Option<&str>)> {
    let (name, version) = match spec.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (spec, None),
    };
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c));
    if !plain(name) || version.is_some_and(|v| !plain(v)) {
        bail!("{spec:?} is not CRATE or CRATE@VERSION (e.g. scx_bpfland or scx_bpfland@1.1.4)");
    }
    Ok((name, version))
}

/// The major version `clang --version` prints.
fn clang_major(clang: &Path) -> Option<u32> {
    let out = Command::new(clang).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rest = text.split("clang version ").nth(1)?;
    rest.split('.').next()?.trim().parse().ok()
}

/// Every `clang`/`clang-N` on PATH with its major version, newest first.
fn clangs() -> Vec<(u32, PathBuf)> {
    let mut found = Vec::new();
    let names: Vec<String> =
        std::iter::once("clang".to_owned()).chain((14..=30).rev().map(|v| format!("clang-{v}"))).collect();
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        for n in &names {
            let p = dir.join(n);
            if p.is_file() && !found.iter().any(|(_, f)| *f == p) {
                if let Some(v) = clang_major(&p) {
                    found.push((v, p));
                }
            }
        }
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    found
}

/// A clang >= [`MIN_CLANG`], installing [`CLANG_PACKAGE`] when asked to.
fn find_clang(install: bool) -> Result<PathBuf> {
    let all = clangs();
    if let Some((_, p)) = all.iter().find(|(v, _)| *v >= MIN_CLANG) {
        return Ok(p.clone());
    }
    let seen = if all.is_empty() {
        "no clang on PATH".to_owned()
    } else {
        all.iter().map(|(v, p)| format!("clang {v} at {}", p.display())).collect::<Vec<_>>().join(", ")
    };
    if !install {
        bail!(
            "the scx scheduler crates need clang >= {MIN_CLANG} to build their BPF programs ({seen}): install \
             {CLANG_PACKAGE} (`apt-get install {CLANG_PACKAGE}`), or pass --install-clang"
        );
    }
    eprintln!("installing {CLANG_PACKAGE} ({seen})");
    let status = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", CLANG_PACKAGE])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?;
    if !status.success() {
        bail!("apt-get install {CLANG_PACKAGE} failed ({status}); install it by hand and retry");
    }
    clangs()
        .into_iter()
        .find(|(v, _)| *v >= MIN_CLANG)
        .map(|(_, p)| p)
        .ok_or_else(|| anyhow!("{CLANG_PACKAGE} was installed but no clang >= {MIN_CLANG} is on PATH"))
}

/// Builds `spec` into [`root`] with `cargo install --locked`, a spinner showing the
/// crate being compiled; the build's last lines on failure.
fn install(spec: &str, install_clang: bool) -> Result<()> {
    let (name, version) = parse_crate(spec)?;
    let clang = find_clang(install_clang)?;
    let root = root()?;
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    // `clang` on the build's PATH is the one found (the build scripts call it by that name).
    let shim = tempfile::tempdir().context("creating a temporary directory")?;
    std::os::unix::fs::symlink(&clang, shim.path().join("clang")).context("linking clang")?;
    let path = std::env::join_paths(
        std::iter::once(shim.path().to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )?;
    let mut cmd = Command::new("cargo");
    cmd.args(["install", "--locked", "--root"]).arg(&root).arg(name);
    if let Some(v) = version {
        cmd.args(["--version", v]);
    }
    cmd.env("PATH", path).stdout(Stdio::null()).stderr(Stdio::piped());
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("a valid template"));
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message(format!("cargo install {spec} (clang: {})", clang.display()));
    let mut child = cmd.spawn().context("starting cargo (is it on PATH?)")?;
    let stderr = child.stderr.take().expect("piped stderr");
    let mut tail: Vec<String> = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
        let l = line.trim();
        if l.starts_with("Compiling") || l.starts_with("Downloaded") || l.starts_with("Installing") {
            bar.set_message(format!("{spec}: {l}"));
        }
        tail.push(line);
        if tail.len() > 40 {
            tail.remove(0);
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    bar.finish_and_clear();
    if !status.success() {
        bail!("cargo install {spec} failed ({status}); its last lines:\n{}", tail.join("\n"));
    }
    let short = name.strip_prefix("scx_").unwrap_or(name);
    match find_installed(short) {
        Some(p) => println!("installed {spec} as {} (use --scheduler {short})", p.display()),
        None => println!("installed {spec} under {}", root.join("bin").display()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_specs_parse() {
        assert_eq!(parse_crate("scx_bpfland").unwrap(), ("scx_bpfland", None));
        assert_eq!(parse_crate("scx_lavd@1.1.0").unwrap(), ("scx_lavd", Some("1.1.0")));
        for bad in ["", "@1", "a b", "x@", "../x", "x;rm"] {
            let e = parse_crate(bad).unwrap_err().to_string();
            assert!(e.contains("CRATE@VERSION"), "{bad}: {e}");
        }
    }
}
