//! The kernel cache: `<cache dir>/kernels/<release>/` holding `vmlinuz`, `config`,
//! `vmlinux` (extracted on first use), `System.map` (only when the package ships a
//! real one) and `manifest.json`; the private apt state lives beside it in `apt/`.

use std::cmp::Ordering;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::config::KernelConfig;
use super::vmlinux;

const MANIFEST: &str = "manifest.json";

/// One Debian package that went into a cache entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageRecord {
    pub name: String,
    pub version: String,
    /// Size of the .deb, bytes (apt's `Size:` field).
    pub size: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub release: String,
    pub packages: Vec<PackageRecord>,
    #[serde(default)]
    pub modules: Option<PackageRecord>,
}

/// Where kernels are cached. Cheap to construct; touches the disk only when asked.
#[derive(Clone, Debug)]
pub struct KernelCache {
    root: PathBuf,
}

/// A complete cached kernel (its vmlinuz and config are present).
#[derive(Clone, Debug)]
pub struct KernelEntry {
    /// The kernel release, as `uname -r` prints it (e.g. `7.2.13+deb14-amd64`).
    pub release: String,
    pub dir: PathBuf,
    pub packages: Vec<PackageRecord>,
    /// The modules package, once `fetch_modules` has unpacked it.
    pub modules: Option<PackageRecord>,
}

impl KernelCache {
    /// The user's cache: `$XDG_CACHE_HOME/schedbox` (or the platform equivalent).
    pub fn new() -> Result<Self> {
        let dirs = directories::ProjectDirs::from("", "", "schedbox")
            .context("no home directory to put the kernel cache under; set HOME or XDG_CACHE_HOME")?;
        Ok(Self::at(dirs.cache_dir()))
    }

    /// A cache rooted at `root` (tests, or an operator-chosen location).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn kernels_dir(&self) -> PathBuf {
        self.root.join("kernels")
    }

    /// The private apt state (sources, lists, downloaded .debs).
    pub fn apt_dir(&self) -> PathBuf {
        self.root.join("apt")
    }

    /// The complete entry for `release`, if cached.
    pub fn get(&self, release: &str) -> Result<Option<KernelEntry>> {
        check_release(release)?;
        let dir = self.kernels_dir().join(release);
        if !dir.join("vmlinuz").is_file() || !dir.join("config").is_file() {
            return Ok(None);
        }
        let manifest = match fs::read(dir.join(MANIFEST)) {
            Ok(bytes) => serde_json::from_slice::<Manifest>(&bytes)
                .with_context(|| format!("{} is corrupt; delete {} and fetch again", MANIFEST, dir.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.join(MANIFEST).display())),
        };
        Ok(Some(KernelEntry {
            release: release.to_owned(),
            dir,
            packages: manifest.packages,
            modules: manifest.modules,
        }))
    }

    /// Every complete entry, oldest release first.
    pub fn list(&self) -> Result<Vec<KernelEntry>> {
        let dir = self.kernels_dir();
        let read = match fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        let mut out = Vec::new();
        for item in read {
            let name = item?.file_name();
            let Some(name) = name.to_str() else { continue };
            if check_release(name).is_err() {
                continue; // staging dirs (`.staging-*`) and strays
            }
            if let Some(entry) = self.get(name)? {
                out.push(entry);
            }
        }
        out.sort_by(|a, b| natural_cmp(&a.release, &b.release));
        Ok(out)
    }

    /// The newest complete entry, if any.
    pub fn newest(&self) -> Result<Option<KernelEntry>> {
        Ok(self.list()?.pop())
    }

    /// A fresh staging dir inside the cache (same filesystem, so `commit` is a rename).
    pub(crate) fn staging_dir(&self, release: &str) -> Result<PathBuf> {
        check_release(release)?;
        let dir = self.kernels_dir().join(format!(".staging-{release}-{}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    /// Write the manifest into `staging` and move it to `kernels/<release>`.
    pub(crate) fn commit(&self, staging: &Path, manifest: &Manifest) -> Result<KernelEntry> {
        write_manifest(staging, manifest)?;
        let dest = self.kernels_dir().join(&manifest.release);
        if dest.exists() {
            fs::remove_dir_all(&dest).with_context(|| format!("replacing incomplete {}", dest.display()))?;
        }
        fs::rename(staging, &dest).with_context(|| format!("moving {} to {}", staging.display(), dest.display()))?;
        self.get(&manifest.release)?.with_context(|| format!("{} is incomplete after install", dest.display()))
    }
}

pub(crate) fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<()> {
    let path = dir.join(MANIFEST);
    let json = serde_json::to_vec_pretty(manifest)?;
    fs::write(&path, json).with_context(|| format!("writing {}", path.display()))
}

impl KernelEntry {
    /// The compressed kernel (bzImage) as the package shipped it.
    pub fn vmlinuz(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config")
    }

    /// `System.map`, when the package shipped a real one (Debian ships a placeholder).
    pub fn system_map(&self) -> Option<PathBuf> {
        Some(self.dir.join("System.map")).filter(|p| p.is_file())
    }

    /// `modules/lib/modules/<release>`, once `fetch_modules` has run.
    pub fn modules_dir(&self) -> Option<PathBuf> {
        Some(self.dir.join("modules/lib/modules").join(&self.release)).filter(|p| p.is_dir())
    }

    pub fn config(&self) -> Result<KernelConfig> {
        let path = self.config_path();
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(KernelConfig::parse(&text))
    }

    /// The uncompressed ELF kernel, extracted from `vmlinuz` on first use.
    pub fn vmlinux(&self) -> Result<PathBuf> {
        let path = self.dir.join("vmlinux");
        if path.is_file() {
            return Ok(path);
        }
        let image = fs::read(self.vmlinuz()).with_context(|| format!("reading {}", self.vmlinuz().display()))?;
        let elf =
            vmlinux::extract_vmlinux(&image).with_context(|| format!("extracting {}", self.vmlinuz().display()))?;
        let tmp = self.dir.join(format!(".vmlinux-{}", std::process::id()));
        fs::write(&tmp, &elf).with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        tracing::debug!(path = %path.display(), bytes = elf.len(), "extracted vmlinux");
        Ok(path)
    }
}

/// A release names a directory: refuse anything that could escape `kernels/`.
pub(crate) fn check_release(release: &str) -> Result<()> {
    if release.is_empty()
        || release.starts_with('.')
        || release.contains(['/', '\\', '\0'])
        || !release.chars().all(|c| c.is_ascii_graphic())
    {
        bail!("{release:?} is not a kernel release name (expected something like `7.2.13+deb14-amd64`)");
    }
    Ok(())
}

/// Orders `6.9` before `6.10`: runs of digits compare as numbers.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (trim_zeros(&a[..na]), trim_zeros(&b[..nb]));
                let ord = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
                if ord != Ordering::Equal {
                    return ord;
                }
                (a, b) = (&a[na..], &b[nb..]);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|&&c| c == b'0').count();
    &d[n.min(d.len().saturating_sub(1))..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_entry(cache: &KernelCache, release: &str) {
        let dir = cache.kernels_dir().join(release);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("vmlinuz"), b"x").unwrap();
        fs::write(dir.join("config"), b"CONFIG_SCHED_CLASS_EXT=y\n").unwrap();
    }

    #[test]
    fn list_returns_complete_entries_in_version_order() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = KernelCache::at(tmp.path());
        assert!(cache.list().unwrap().is_empty());
        fake_entry(&cache, "6.10.1-amd64");
        fake_entry(&cache, "6.9.3-amd64");
        fs::create_dir_all(cache.kernels_dir().join("7.0-incomplete")).unwrap();
        fs::create_dir_all(cache.kernels_dir().join(".staging-7.1-1")).unwrap();
        let names: Vec<_> = cache.list().unwrap().into_iter().map(|e| e.release).collect();
        assert_eq!(names, ["6.9.3-amd64", "6.10.1-amd64"]);
        assert_eq!(cache.newest().unwrap().unwrap().release, "6.10.1-amd64");
        let entry = cache.get("6.9.3-amd64").unwrap().unwrap();
        assert!(entry.config().unwrap().get("CONFIG_SCHED_CLASS_EXT").is_some());
        assert!(entry.system_map().is_none());
    }

    #[test]
    fn commit_moves_staging_and_records_manifest() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = KernelCache::at(tmp.path());
        let staging = cache.staging_dir("7.2.13+deb14-amd64").unwrap();
        fs::write(staging.join("vmlinuz"), b"x").unwrap();
        fs::write(staging.join("config"), b"").unwrap();
        let pkg = PackageRecord { name: "linux-binary-7.2.13+deb14-amd64".into(), version: "7.2.13-1".into(), size: 1 };
        let manifest = Manifest { release: "7.2.13+deb14-amd64".into(), packages: vec![pkg.clone()], modules: None };
        let entry = cache.commit(&staging, &manifest).unwrap();
        assert!(!staging.exists());
        assert_eq!(entry.packages, vec![pkg]);
        assert_eq!(cache.get("7.2.13+deb14-amd64").unwrap().unwrap().dir, entry.dir);
    }

    #[test]
    fn release_names_cannot_escape_the_cache() {
        for bad in ["", "..", "../x", "a/b", ".hidden", "a b"] {
            assert!(check_release(bad).is_err(), "{bad:?}");
        }
        check_release("7.2.13+deb14-amd64").unwrap();
    }

    #[test]
    fn natural_order() {
        assert_eq!(natural_cmp("6.9", "6.10"), Ordering::Less);
        assert_eq!(natural_cmp("7.2.13+deb14", "7.2.9+deb14"), Ordering::Greater);
        assert_eq!(natural_cmp("6.01", "6.1"), Ordering::Equal);
        assert_eq!(natural_cmp("6.1", "6.1-rc"), Ordering::Less);
    }
}
