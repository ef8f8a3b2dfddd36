//! [`build_cached`]: the initramfs for a given agent, modules and staged files, written
//! once to `<cache>/initramfs/<sha256>.cpio` and reused while the inputs are unchanged.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::image::{HashWriter, Initramfs};
use super::InitramfsError;

/// Where the agent finds the modules to load before it opens its channel.
pub const MODULES_DIR: &str = "/lib/modules/schedbox";
/// Where the agent finds the modules it loads only when an op needs them.
pub const ON_DEMAND_MODULES_DIR: &str = "/lib/modules/schedbox/on-demand";
/// Where the guest kernel's `.config` goes; the agent links `/boot/config-$(uname -r)`
/// to it at boot, where libbpf reads `__kconfig` externs from.
pub const KERNEL_CONFIG_GUEST: &str = "/boot/config";
/// Where staged payloads and schedulers live in the guest.
pub const STAGING_DIR: &str = "/staging";

const MODULE_SUFFIXES: &[&str] = &[".ko", ".ko.xz", ".ko.zst", ".ko.gz"];

/// What goes into a guest's initramfs beyond the base image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitramfsSpec {
    /// The agent binary (a static ELF), installed as `/init`.
    pub agent: PathBuf,
    /// Kernel modules (`.ko`, `.ko.xz`, `.ko.zst`, `.ko.gz`) in load order; placed under
    /// [`MODULES_DIR`] as `NN-<name>` so the agent's lexical order is this order.
    pub modules: Vec<PathBuf>,
    /// Kernel modules the agent loads only when an op needs them (null_blk for the block
    /// I/O work types); placed under [`ON_DEMAND_MODULES_DIR`] by their own names.
    pub on_demand_modules: Vec<PathBuf>,
    /// (guest path under [`STAGING_DIR`], host file), installed with mode 0755.
    pub staged: Vec<(String, PathBuf)>,
    /// The guest kernel's `.config`, installed as [`KERNEL_CONFIG_GUEST`] (mode 0644).
    pub kernel_config: Option<PathBuf>,
}

impl InitramfsSpec {
    /// The image this spec describes (nothing is read yet).
    pub fn image(&self) -> Result<Initramfs, InitramfsError> {
        let mut image = Initramfs::new(self.agent.as_path());
        image.dir(MODULES_DIR, 0o755)?;
        for (i, module) in self.modules.iter().enumerate() {
            let name = module_name(module)?;
            image.file(&format!("{MODULES_DIR}/{i:02}-{name}"), module.as_path(), 0o644)?;
        }
        if !self.on_demand_modules.is_empty() {
            image.dir(ON_DEMAND_MODULES_DIR, 0o755)?;
        }
        for module in &self.on_demand_modules {
            let name = module_name(module)?;
            image.file(&format!("{ON_DEMAND_MODULES_DIR}/{name}"), module.as_path(), 0o644)?;
        }
        if let Some(config) = &self.kernel_config {
            image.file(KERNEL_CONFIG_GUEST, config.as_path(), 0o644)?;
        }
        for (guest, host) in &self.staged {
            if !guest.strip_prefix(STAGING_DIR).is_some_and(|rest| rest.len() > 1 && rest.starts_with('/')) {
                return Err(InitramfsError::BadPath { path: guest.clone(), why: "staged files go under /staging/" });
            }
            image.file(guest, host.as_path(), 0o755)?;
            let libs = super::libs::shared_libraries(host).map_err(|source| InitramfsError::Read {
                host: host.clone(),
                guest: guest.clone(),
                source,
            })?;
            for lib in libs {
                let at = lib.to_string_lossy().into_owned();
                // Two payloads needing the same library share one copy.
                if !image.paths().any(|p| p == at) {
                    image.file(&at, lib.as_path(), 0o755)?;
                }
            }
        }
        Ok(image)
    }
}

/// The file name of a kernel module file, or why it is not one.
fn module_name(module: &Path) -> Result<&str, InitramfsError> {
    let name = module.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if !MODULE_SUFFIXES.iter().any(|s| name.len() > s.len() && name.ends_with(s)) {
        return Err(InitramfsError::NotAModule(module.to_path_buf()));
    }
    Ok(name)
}

/// The archive for `spec` under `<cache_dir>/initramfs/`, named by the SHA-256 of its
/// bytes. A cache hit reads the inputs once (to hash them) and writes nothing; a miss
/// writes a temporary file, checks that the inputs did not change meanwhile, and renames
/// it into place, so a reader never sees a partial archive.
pub fn build_cached(spec: &InitramfsSpec, cache_dir: &Path) -> Result<PathBuf> {
    let image = spec.image()?;
    let key = image.digest()?;
    let dir = cache_dir.join("initramfs");
    let path = dir.join(format!("{key}.cpio"));
    if path.is_file() {
        // The name is the SHA-256 of the bytes: an entry that does not hash to it (a
        // truncated write, a full disk, an edit) is rebuilt, never booted.
        match file_digest(&path) {
            Ok(found) if found == key => {
                tracing::debug!(path = %path.display(), "initramfs cache hit");
                super::prune::touch(&path);
                return Ok(path);
            }
            Ok(_) => tracing::warn!(path = %path.display(), "initramfs cache entry is corrupt; rebuilding it"),
            Err(e) => tracing::warn!(path = %path.display(), "initramfs cache entry unreadable ({e}); rebuilding it"),
        }
        let _ = fs::remove_file(&path);
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(".{key}.{}-{}.tmp", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    let result = write_checked(&image, &tmp, &key);
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &path).with_context(|| format!("moving {} into place", tmp.display()))?;
    tracing::debug!(path = %path.display(), "initramfs written");
    match super::prune::prune(&dir, ".cpio", super::prune::INITRAMFS_CACHE_MAX_BYTES) {
        Ok(p) if !p.removed.is_empty() => {
            tracing::info!("initramfs cache: removed {} least recently used entries", p.removed.len())
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("pruning the initramfs cache {}: {e}", dir.display()),
    }
    Ok(path)
}

/// SHA-256 of a file's bytes, hex.
fn file_digest(path: &Path) -> std::io::Result<String> {
    let mut hash = HashWriter(Sha256::new());
    std::io::copy(&mut File::open(path)?, &mut hash)?;
    Ok(hex::encode(hash.0.finalize()))
}

fn write_checked(image: &Initramfs, tmp: &Path, key: &str) -> Result<()> {
    let file = File::create(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut tee = Tee { file: BufWriter::new(file), hash: HashWriter(Sha256::new()) };
    image.write_to(&mut tee)?;
    let file = tee.file.into_inner().map_err(|e| e.into_error()).context("writing the initramfs")?;
    // A truncated archive under its final name would be a permanent, broken cache hit.
    file.sync_data().with_context(|| format!("syncing {}", tmp.display()))?;
    let written = hex::encode(tee.hash.0.finalize());
    if written != key {
        bail!("an input of the initramfs (the agent, a module or a staged file) changed while it was written; retry");
    }
    Ok(())
}

/// Writes to the file and the hash at once.
struct Tee {
    file: BufWriter<File>,
    hash: HashWriter,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hash.write_all(&buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}
