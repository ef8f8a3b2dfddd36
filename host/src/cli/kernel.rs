//! `schedbox kernel fetch|list`: the default guest kernel and the kernel cache.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use schedbox::kernel::{self, FetchEvent, FetchOptions, KernelCache, KernelEntry, OptionState, Severity};
use serde::Serialize;

use super::Failure;

#[derive(Args, Debug)]
pub struct KernelArgs {
    #[command(subcommand)]
    pub command: KernelCommand,
}

#[derive(Subcommand, Debug)]
pub enum KernelCommand {
    /// Fetch the newest Debian sid kernel (sched_ext, BTF) into the cache and check
    /// its config; nothing is downloaded when it is already cached.
    Fetch {
        /// Also fetch its modules package (about 110 MB): needed for virtio on microvm.
        #[arg(long)]
        modules: bool,
        /// Re-read the package lists now, whatever their age.
        #[arg(long)]
        refresh: bool,
    },
    /// List the cached kernels; the last one is the default.
    List {
        /// One JSON array of the entries.
        #[arg(long)]
        json: bool,
    },
}

pub fn kernel_command(args: KernelArgs) -> Result<u8, Failure> {
    let cache = KernelCache::new().map_err(Failure::usage)?;
    match args.command {
        KernelCommand::Fetch { modules, refresh } => fetch(&cache, modules, refresh).map_err(Failure::usage),
        KernelCommand::List { json } => list(&cache, json).map_err(Failure::usage),
    }
}

fn spinner() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

fn describe(event: &FetchEvent) -> String {
    match event {
        FetchEvent::UpdatingLists { mirror } => format!("reading the sid package lists from {mirror}"),
        FetchEvent::ListsFresh { age_secs } => format!("package lists are {} min old", age_secs / 60),
        FetchEvent::Resolved { release } => format!("newest kernel: {release}"),
        FetchEvent::AlreadyCached { release } => format!("{release} is cached"),
        FetchEvent::Downloading { packages, bytes } => {
            let names: Vec<_> = packages.iter().map(|p| p.name.as_str()).collect();
            format!("downloading {} ({:.1} MB)", names.join(", "), *bytes as f64 / 1e6)
        }
        FetchEvent::Downloaded { done, total } => {
            format!("downloaded {:.1} of {:.1} MB", *done as f64 / 1e6, *total as f64 / 1e6)
        }
        FetchEvent::Unpacking { package } => format!("unpacking {package}"),
        FetchEvent::Installed { release } => format!("installed {release}"),
    }
}

fn fetch(cache: &KernelCache, modules: bool, refresh: bool) -> anyhow::Result<u8> {
    let opts = FetchOptions { refresh, ..FetchOptions::default() };
    let bar = spinner();
    let mut progress = |e: FetchEvent| {
        let line = describe(&e);
        match e {
            // The byte count goes on the bar, not into the log.
            FetchEvent::Downloaded { done, total } => {
                bar.set_length(total.max(done));
                bar.set_position(done);
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} {bar:30} {bytes}/{total_bytes} ({elapsed})")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                return;
            }
            FetchEvent::Unpacking { .. } => bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
            _ => {}
        }
        bar.suspend(|| tracing::info!("{line}"));
        bar.set_message(line);
    };
    let result = (|| {
        let mut entry = kernel::fetch_with(cache, &opts, &mut progress)?;
        if modules {
            entry = kernel::fetch_modules(cache, &entry, &opts, &mut progress)?;
        }
        bar.set_message(format!("extracting vmlinux from {}", entry.vmlinuz().display()));
        entry.vmlinux()?;
        anyhow::Ok(entry)
    })();
    bar.finish_and_clear();
    let entry = result?;
    print!("{}", report(&entry)?);
    Ok(0)
}

/// What `kernel fetch` prints: the release, its files and the config findings.
fn report(entry: &KernelEntry) -> anyhow::Result<String> {
    let mut out = String::new();
    let _ = writeln!(out, "kernel {}", entry.release);
    let vmlinux = entry.dir.join("vmlinux");
    let pvh = pvh_entry(&vmlinux)?;
    let _ = writeln!(out, "  vmlinuz  {}", entry.vmlinuz().display());
    let _ = writeln!(
        out,
        "  vmlinux  {} ({})",
        vmlinux.display(),
        pvh.map(|e| format!("PVH entry {e:#x}")).unwrap_or_else(|| "no PVH entry: boots on q35 only".into())
    );
    let _ = writeln!(out, "  config   {}", entry.config_path().display());
    let modules = match entry.modules_dir() {
        Some(dir) => dir.display().to_string(),
        None => "not fetched (`schedbox kernel fetch --modules` adds them)".to_owned(),
    };
    let _ = writeln!(out, "  modules  {modules}");
    let findings = kernel::check(&entry.config()?);
    let bad: Vec<_> = findings.iter().filter(|f| f.severity >= Severity::Warn).collect();
    let _ = writeln!(
        out,
        "config: {} of {} checked options as schedbox wants them",
        findings.len() - bad.len(),
        findings.len()
    );
    for f in bad {
        let line = match (f.severity, f.state) {
            (Severity::Error, _) => format!("error: {f}"),
            // With the modules package the VM puts the modules it needs (virtio_mmio) in the initramfs.
            (_, OptionState::Module) if entry.modules_dir().is_some() => {
                format!("note: CONFIG_{} is a module; the fetched modules package provides it", f.option)
            }
            _ => format!("warning: {f}"),
        };
        let _ = writeln!(out, "  {line}");
    }
    Ok(out)
}

fn pvh_entry(vmlinux: &Path) -> anyhow::Result<Option<u32>> {
    let elf = std::fs::read(vmlinux).with_context(|| format!("reading {}", vmlinux.display()))?;
    Ok(kernel::inspect_elf(&elf)?.pvh_entry)
}

#[derive(Serialize)]
struct Listed<'a> {
    release: &'a str,
    default: bool,
    dir: &'a Path,
    vmlinuz: std::path::PathBuf,
    /// Absent until first extracted.
    vmlinux: Option<std::path::PathBuf>,
    config: std::path::PathBuf,
    modules_dir: Option<std::path::PathBuf>,
    packages: &'a [kernel::PackageRecord],
    modules: Option<&'a kernel::PackageRecord>,
}

fn list(cache: &KernelCache, json: bool) -> anyhow::Result<u8> {
    let entries = cache.list()?;
    let newest = entries.last().map(|e| e.release.clone());
    let listed: Vec<Listed> = entries
        .iter()
        .map(|e| Listed {
            release: &e.release,
            default: Some(&e.release) == newest.as_ref(),
            dir: &e.dir,
            vmlinuz: e.vmlinuz(),
            vmlinux: Some(e.dir.join("vmlinux")).filter(|p| p.is_file()),
            config: e.config_path(),
            modules_dir: e.modules_dir(),
            packages: &e.packages,
            modules: e.modules.as_ref(),
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(0);
    }
    if listed.is_empty() {
        eprintln!("no kernels cached under {}; run `schedbox kernel fetch`", cache.kernels_dir().display());
        return Ok(0);
    }
    for l in &listed {
        let mark = if l.default { "*" } else { " " };
        let modules = if l.modules_dir.is_some() { "modules" } else { "no modules" };
        println!("{mark} {:<28} {modules:<10}  {}", l.release, l.dir.display());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_and_list_parse() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(subcommand)]
            k: KernelCommand,
        }
        let t = T::try_parse_from(["t", "fetch", "--modules"]).unwrap();
        assert!(matches!(t.k, KernelCommand::Fetch { modules: true, refresh: false }));
        let t = T::try_parse_from(["t", "list", "--json"]).unwrap();
        assert!(matches!(t.k, KernelCommand::List { json: true }));
    }
}
