//! `schedbox kernel fetch`: the newest Debian sid kernel (sched_ext, BTF), resolved
//! through `linux-image-<flavour>`'s dependencies, downloaded with apt's ordinary
//! client into a private apt state and unpacked into the kernel cache.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::apt::{AptTools, PrivateApt};
use super::cache::{write_manifest, KernelCache, KernelEntry, Manifest, PackageRecord};
use super::sources::{find_debian_source, DebianSource};

/// Knobs for [`fetch_with`]; [`FetchOptions::default`] is what `fetch` uses.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// The system apt config dir whose sources name the Debian mirror (read only).
    pub etc_apt: PathBuf,
    /// Use this Debian mirror URI instead of the system's.
    pub mirror: Option<String>,
    pub suite: String,
    pub flavour: String,
    /// Re-download the package lists when they are older than this.
    pub max_lists_age: Duration,
    /// Re-download the package lists whatever their age.
    pub refresh: bool,
    pub tools: AptTools,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            etc_apt: "/etc/apt".into(),
            mirror: None,
            suite: "sid".into(),
            flavour: "amd64".into(),
            max_lists_age: Duration::from_secs(6 * 3600),
            refresh: false,
            tools: AptTools::default(),
        }
    }
}

/// What a fetch is doing, for a progress display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchEvent {
    UpdatingLists {
        mirror: String,
    },
    ListsFresh {
        age_secs: u64,
    },
    Resolved {
        release: String,
    },
    AlreadyCached {
        release: String,
    },
    Downloading {
        packages: Vec<PackageRecord>,
        bytes: u64,
    },
    /// `done` of the `Downloading` event's `bytes` have arrived.
    Downloaded {
        done: u64,
        total: u64,
    },
    Unpacking {
        package: String,
    },
    Installed {
        release: String,
    },
}

/// Fetch the newest sid kernel into `cache` (no download when it is already there).
pub fn fetch(cache: &KernelCache, progress: &mut dyn FnMut(FetchEvent)) -> Result<KernelEntry> {
    fetch_with(cache, &FetchOptions::default(), progress)
}

pub fn fetch_with(
    cache: &KernelCache,
    opts: &FetchOptions,
    progress: &mut dyn FnMut(FetchEvent),
) -> Result<KernelEntry> {
    let (apt, source) = open_apt(cache, opts)?;
    let age = apt.lists_age();
    match age {
        Some(age) if !opts.refresh && age <= opts.max_lists_age => {
            progress(FetchEvent::ListsFresh { age_secs: age.as_secs() })
        }
        _ => {
            progress(FetchEvent::UpdatingLists { mirror: source.uri.clone() });
            if let Err(e) = apt.update() {
                if let Some(newest) = cache.newest()? {
                    tracing::warn!("{e:#}; using the newest cached kernel, {}", newest.release);
                    return Ok(newest);
                }
                return Err(e.context(format!(
                    "could not read the {} package lists from {} (offline? behind a proxy apt is not configured for?)",
                    opts.suite, source.uri
                )));
            }
        }
    }

    let release = resolve_release(&apt, &opts.flavour)?;
    progress(FetchEvent::Resolved { release: release.clone() });
    if let Some(entry) = cache.get(&release)? {
        progress(FetchEvent::AlreadyCached { release });
        return Ok(entry);
    }

    let image = format!("linux-image-{release}");
    let deps = apt.depends(&image)?;
    // Since 2026 Debian splits the image: vmlinuz in linux-binary-*, config in linux-base-*.
    // Older layouts keep both in linux-image-* itself, under /boot.
    let mut names: Vec<String> =
        ["linux-binary", "linux-base"].iter().map(|p| format!("{p}-{release}")).filter(|n| deps.contains(n)).collect();
    if names.is_empty() {
        names.push(image.clone());
    }
    let records = names.iter().map(|n| apt.show(n)).collect::<Result<Vec<_>>>()?;
    let entry = install(cache, &apt, &release, &records, progress)?;
    progress(FetchEvent::Installed { release });
    Ok(entry)
}

/// Fetch and unpack `linux-modules-<release>` (about 110 MB) into `entry`, for guests
/// that need loadable modules (nested KVM, virtio-mmio). No download when present.
pub fn fetch_modules(
    cache: &KernelCache,
    entry: &KernelEntry,
    opts: &FetchOptions,
    progress: &mut dyn FnMut(FetchEvent),
) -> Result<KernelEntry> {
    if entry.modules_dir().is_some() {
        return Ok(entry.clone());
    }
    let (apt, _) = open_apt(cache, opts)?;
    let name = format!("linux-modules-{}", entry.release);
    let record = apt.show(&name).with_context(|| {
        format!("the {} archive no longer has {name}; fetch the newest kernel and use that one", opts.suite)
    })?;
    if let Some(other) = entry.packages.first().filter(|p| p.version != record.version) {
        bail!(
            "{name} is at {} but the cached kernel is {} {}; fetch the newest kernel and use that one",
            record.version,
            other.name,
            other.version
        );
    }
    progress(FetchEvent::Downloading { packages: vec![record.clone()], bytes: record.size });
    clear_debs(&apt.debs_dir())?;
    let total = record.size;
    let debs = apt.download(&[&record], &mut |done| progress(FetchEvent::Downloaded { done, total }))?;
    let staging = entry.dir.join(".modules-staging");
    recreate(&staging)?;
    progress(FetchEvent::Unpacking { package: name.clone() });
    apt.extract(&debs[0], &staging)?;
    let found = ["usr/lib/modules", "lib/modules"]
        .iter()
        .map(|d| staging.join(d).join(&entry.release))
        .find(|p| p.is_dir())
        .with_context(|| format!("{name} holds no lib/modules/{} (inspect it with `dpkg-deb -c`)", entry.release))?;
    let dest = entry.dir.join("modules/lib/modules");
    fs::create_dir_all(&dest)?;
    fs::rename(&found, dest.join(&entry.release)).context("moving the modules into the cache")?;
    fs::remove_dir_all(&staging)?;
    clear_debs(&apt.debs_dir())?;
    let manifest = Manifest { release: entry.release.clone(), packages: entry.packages.clone(), modules: Some(record) };
    write_manifest(&entry.dir, &manifest)?;
    cache.get(&entry.release)?.context("the cache entry vanished while adding modules")
}

fn open_apt(cache: &KernelCache, opts: &FetchOptions) -> Result<(PrivateApt, DebianSource)> {
    let source = match &opts.mirror {
        Some(uri) => DebianSource { uri: uri.clone(), signed_by: None, file: PathBuf::new() },
        None => find_debian_source(&opts.etc_apt)?,
    };
    let apt = PrivateApt::new(cache.apt_dir(), opts.tools.clone());
    apt.prepare(&source, &opts.suite)?;
    Ok((apt, source))
}

/// `linux-image-<flavour>` → `linux-image-<release>` → `<release>`.
fn resolve_release(apt: &PrivateApt, flavour: &str) -> Result<String> {
    let meta = format!("linux-image-{flavour}");
    let deps = apt.depends(&meta)?;
    deps.iter()
        .filter_map(|d| d.strip_prefix("linux-image-"))
        .find(|r| r.ends_with(&format!("-{flavour}")) && r.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_owned)
        .with_context(|| format!("{meta} depends on no versioned linux-image-*-{flavour} (its dependencies: {deps:?})"))
}

fn install(
    cache: &KernelCache,
    apt: &PrivateApt,
    release: &str,
    records: &[PackageRecord],
    progress: &mut dyn FnMut(FetchEvent),
) -> Result<KernelEntry> {
    let bytes = records.iter().map(|r| r.size).sum();
    progress(FetchEvent::Downloading { packages: records.to_vec(), bytes });
    clear_debs(&apt.debs_dir())?;
    let debs = apt.download(&records.iter().collect::<Vec<_>>(), &mut |done| {
        progress(FetchEvent::Downloaded { done, total: bytes })
    })?;
    let staging = cache.staging_dir(release)?;
    let root = staging.join("root");
    for (deb, rec) in debs.iter().zip(records) {
        progress(FetchEvent::Unpacking { package: rec.name.clone() });
        apt.extract(deb, &root)?;
    }
    let names = || records.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ");
    for (name, required) in [("vmlinuz", true), ("config", true), ("System.map", false)] {
        match locate(&root, release, name) {
            Some(found) if name != "System.map" || is_real_system_map(&found) => {
                fs::rename(&found, staging.join(name)).with_context(|| format!("moving {}", found.display()))?
            }
            _ if required => bail!(
                "none of {} holds {name} for {release} (looked in boot/ and usr/lib/modules/{release}/); \
                 Debian may have moved it again: list the packages with `dpkg-deb -c`",
                names()
            ),
            _ => tracing::debug!("no usable System.map in {}; symbols come from the guest's kallsyms", names()),
        }
    }
    fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    clear_debs(&apt.debs_dir())?;
    let manifest = Manifest { release: release.to_owned(), packages: records.to_vec(), modules: None };
    cache.commit(&staging, &manifest)
}

/// Where a kernel package keeps `name` (`vmlinuz`, `config`, `System.map`).
fn locate(root: &Path, release: &str, name: &str) -> Option<PathBuf> {
    [
        root.join("boot").join(format!("{name}-{release}")),
        root.join("usr/lib/modules").join(release).join(name),
        root.join("lib/modules").join(release).join(name),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// Debian ships a one-line placeholder pointing at the -dbg package.
fn is_real_system_map(path: &Path) -> bool {
    fs::metadata(path).map(|m| m.len() > 4096).unwrap_or(false)
}

fn clear_debs(dir: &Path) -> Result<()> {
    for e in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "deb") {
            fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    Ok(())
}

fn recreate(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
