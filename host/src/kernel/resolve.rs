//! Which kernel a VM boots: an explicit `--kernel PATH` wins (a bzImage, whose vmlinux is
//! extracted once into the cache under the image's hash, or a vmlinux ELF used as is);
//! otherwise the newest kernel `schedbox kernel fetch` cached.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::cache::{KernelCache, KernelEntry};
use super::vmlinux;

/// Everything a machine backend needs to boot a kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedKernel {
    /// The uncompressed ELF kernel (QEMU microvm boots it through its PVH note; the
    /// monitor reads its symbols).
    pub vmlinux: PathBuf,
    /// The bzImage it came from, when there is one (q35 boots this).
    pub bzimage: Option<PathBuf>,
    /// The kernel's `.config`, when known.
    pub config: Option<PathBuf>,
    /// `lib/modules/<release>` of the modules package, when fetched.
    pub modules_dir: Option<PathBuf>,
    /// The release (`uname -r`), when known: cached kernels and bzImages record it.
    pub release: Option<String>,
}

/// Resolve against the user's kernel cache; see [`resolve_kernel_in`].
pub fn resolve_kernel(explicit: Option<&Path>) -> Result<ResolvedKernel> {
    resolve_kernel_in(&KernelCache::new()?, explicit)
}

/// `explicit` (a bzImage or a vmlinux) if given, else the newest kernel in `cache`.
pub fn resolve_kernel_in(cache: &KernelCache, explicit: Option<&Path>) -> Result<ResolvedKernel> {
    match explicit {
        Some(path) => resolve_path(cache, path),
        None => match cache.newest()? {
            Some(entry) => from_entry(&entry),
            None => bail!(
                "no kernel to boot: none is cached under {}; run `schedbox kernel fetch` \
                 (a Debian kernel with sched_ext and BTF) or pass `--kernel PATH` (a bzImage or vmlinux)",
                cache.kernels_dir().display()
            ),
        },
    }
}

fn from_entry(entry: &KernelEntry) -> Result<ResolvedKernel> {
    Ok(ResolvedKernel {
        vmlinux: entry.vmlinux()?,
        bzimage: Some(entry.vmlinuz()),
        config: Some(entry.config_path()),
        modules_dir: entry.modules_dir(),
        release: Some(entry.release.clone()),
    })
}

fn resolve_path(cache: &KernelCache, path: &Path) -> Result<ResolvedKernel> {
    let canonical = fs::canonicalize(path)
        .with_context(|| format!("--kernel {}: no such file (pass a bzImage or a vmlinux ELF)", path.display()))?;
    // A path into the cache (e.g. copied from `schedbox kernel list`) keeps its modules.
    for entry in cache.list()? {
        let own = [entry.vmlinuz(), entry.dir.join("vmlinux")];
        if own.iter().any(|p| fs::canonicalize(p).is_ok_and(|p| p == canonical)) {
            return from_entry(&entry);
        }
    }
    let mut magic = [0u8; 4];
    fs::File::open(&canonical)
        .and_then(|mut f| f.read_exact(&mut magic))
        .with_context(|| format!("reading {}", path.display()))?;
    if magic == *b"\x7fELF" {
        let elf = fs::read(&canonical).with_context(|| format!("reading {}", path.display()))?;
        vmlinux::inspect_elf(&elf).with_context(|| format!("--kernel {}", path.display()))?;
        return Ok(ResolvedKernel {
            vmlinux: canonical.clone(),
            bzimage: None,
            config: find_config(&canonical, None),
            modules_dir: None,
            release: None,
        });
    }
    let image = fs::read(&canonical).with_context(|| format!("reading {}", path.display()))?;
    let release = bzimage_release(&image);
    let dir = cache.root().join("custom-kernels").join(hex::encode(&Sha256::digest(&image)[..16]));
    let (copy, elf) = (dir.join("bzImage"), dir.join("vmlinux"));
    if !elf.is_file() {
        let extracted = vmlinux::extract_vmlinux(&image).with_context(|| format!("--kernel {}", path.display()))?;
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        write_atomic(&copy, &image)?;
        write_atomic(&elf, &extracted)?;
        tracing::debug!(image = %path.display(), vmlinux = %elf.display(), "extracted vmlinux from a custom kernel");
    }
    Ok(ResolvedKernel {
        vmlinux: elf,
        bzimage: Some(copy),
        config: find_config(&canonical, release.as_deref()),
        modules_dir: None,
        release,
    })
}

/// The release from a bzImage's `kernel_version` string (boot protocol 2.00+).
fn bzimage_release(image: &[u8]) -> Option<String> {
    if image.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let at = u16::from_le_bytes(image.get(0x20e..0x210)?.try_into().ok()?) as usize;
    if at == 0 {
        return None;
    }
    let text = image.get(0x200 + at..)?;
    let text = &text[..text.iter().take(256).position(|&b| b == 0)?];
    let release = std::str::from_utf8(text).ok()?.split_whitespace().next()?;
    Some(release.to_owned()).filter(|r| r.chars().all(|c| c.is_ascii_graphic()))
}

/// A kernel build tree keeps `.config` up to three levels above the image
/// (`arch/x86/boot/bzImage`); `/boot` keeps `config-<release>` beside `vmlinuz-<release>`.
fn find_config(image: &Path, release: Option<&str>) -> Option<PathBuf> {
    let dir = image.parent()?;
    if let Some(r) = release {
        let beside = dir.join(format!("config-{r}"));
        if beside.is_file() {
            return Some(beside);
        }
    }
    dir.ancestors().take(4).map(|d| d.join(".config")).find(|p| p.is_file())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 x86-64 header with no program headers.
    fn tiny_elf() -> Vec<u8> {
        let mut e = vec![0u8; 64];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 2;
        e[5] = 1;
        e[18] = 62;
        e
    }

    fn fake_entry(cache: &KernelCache, release: &str) -> PathBuf {
        let dir = cache.kernels_dir().join(release);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("vmlinuz"), b"x").unwrap();
        fs::write(dir.join("config"), b"CONFIG_SCHED_CLASS_EXT=y\n").unwrap();
        fs::write(dir.join("vmlinux"), tiny_elf()).unwrap();
        dir
    }

    #[test]
    fn empty_cache_tells_the_user_to_fetch() {
        let tmp = tempfile::tempdir().unwrap();
        let err = resolve_kernel_in(&KernelCache::at(tmp.path()), None).unwrap_err();
        assert!(err.to_string().contains("schedbox kernel fetch"), "{err}");
    }

    #[test]
    fn newest_cached_kernel_by_default() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = KernelCache::at(tmp.path().join("cache"));
        fake_entry(&cache, "6.9.1-amd64");
        let dir = fake_entry(&cache, "6.10.2-amd64");
        let k = resolve_kernel_in(&cache, None).unwrap();
        assert_eq!(k.release.as_deref(), Some("6.10.2-amd64"));
        assert_eq!(k.vmlinux, dir.join("vmlinux"));
        assert_eq!(k.bzimage, Some(dir.join("vmlinuz")));
        assert_eq!(k.config, Some(dir.join("config")));
        assert_eq!(k.modules_dir, None);
        // The same kernel named explicitly by its cache path resolves the same way.
        assert_eq!(resolve_kernel_in(&cache, Some(&dir.join("vmlinuz"))).unwrap(), k);
    }

    #[test]
    fn explicit_vmlinux_is_used_as_is_with_its_build_tree_config() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = KernelCache::at(tmp.path().join("cache"));
        fake_entry(&cache, "6.10.2-amd64");
        let tree = tmp.path().join("linux");
        fs::create_dir_all(&tree).unwrap();
        fs::write(tree.join("vmlinux"), tiny_elf()).unwrap();
        fs::write(tree.join(".config"), b"CONFIG_PVH=y\n").unwrap();
        let k = resolve_kernel_in(&cache, Some(&tree.join("vmlinux"))).unwrap();
        assert_eq!(k.vmlinux, fs::canonicalize(tree.join("vmlinux")).unwrap());
        assert_eq!(k.config, Some(fs::canonicalize(&tree).unwrap().join(".config")));
        assert_eq!((k.bzimage, k.release), (None, None));
    }

    #[test]
    fn explicit_garbage_and_missing_paths_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = KernelCache::at(tmp.path().join("cache"));
        let junk = tmp.path().join("junk");
        fs::write(&junk, vec![7u8; 4096]).unwrap();
        assert!(resolve_kernel_in(&cache, Some(&junk)).is_err());
        let err = resolve_kernel_in(&cache, Some(&tmp.path().join("nope"))).unwrap_err();
        assert!(err.to_string().contains("no such file"), "{err}");
    }

    #[test]
    fn release_from_the_boot_header() {
        let mut image = vec![0u8; 0x600];
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x20e..0x210].copy_from_slice(&0x300u16.to_le_bytes());
        let version = b"7.2.13+deb14-amd64 (debian-kernel@lists.debian.org) #1 SMP\0";
        image[0x500..0x500 + version.len()].copy_from_slice(version);
        assert_eq!(bzimage_release(&image).as_deref(), Some("7.2.13+deb14-amd64"));
        image[0x20e..0x210].copy_from_slice(&0u16.to_le_bytes());
        assert_eq!(bzimage_release(&image), None);
    }
}
