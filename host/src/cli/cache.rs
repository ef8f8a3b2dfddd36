//! `schedbox cache`: what the on-disk caches hold, and `gc` to bound them.
//!
//! The caches live under the user's cache directory: `initramfs/` (guest images, keyed by
//! content), `components-*/` (compiled components, one directory per engine
//! configuration), `kernels/` (fetched kernels; `schedbox kernel list`), `toolchains/`.
//! `gc` removes least recently used initramfs images and compiled components, and whole
//! component directories of other engine configurations; kernels stay.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::{Args, Subcommand};
use schedbox::initramfs::{prune, INITRAMFS_CACHE_MAX_BYTES};
use schedbox::sandbox::ComponentCache;

use super::Failure;

#[derive(Args, Debug)]
pub struct CacheArgs {
    /// The cache root (default: the user's cache directory).
    #[arg(long, value_name = "DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<CacheCommand>,
}

#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// Show each cache, its entries and size (the default).
    List,
    /// Remove the least recently used initramfs images and compiled components until
    /// each cache fits in --max-mib.
    Gc {
        /// The bound of each cache, MiB [1024].
        #[arg(long, value_name = "MIB")]
        max_mib: Option<u64>,
    },
}

pub fn run(a: CacheArgs) -> Result<u8, Failure> {
    let root = match a.cache_dir.or_else(ComponentCache::default_root) {
        Some(r) => r,
        None => return Err(Failure::usage(anyhow!("no user cache directory: set XDG_CACHE_HOME or pass --cache-dir"))),
    };
    match a.command.unwrap_or(CacheCommand::List) {
        CacheCommand::List => {
            println!("cache {}", root.display());
            for (dir, suffix) in caches(&root) {
                let (n, bytes) = usage(&dir, suffix);
                println!("  {:<40} {n:>6} entries  {:>8.1} MiB", relative(&root, &dir), bytes as f64 / 1048576.0);
            }
            Ok(0)
        }
        CacheCommand::Gc { max_mib } => {
            let max = max_mib.map_or(INITRAMFS_CACHE_MAX_BYTES, |m| m.saturating_mul(1 << 20));
            for (dir, suffix) in caches(&root) {
                let p =
                    prune(&dir, suffix, max).map_err(|e| Failure::usage(anyhow!("pruning {}: {e}", dir.display())))?;
                println!(
                    "  {:<40} removed {} ({:.1} MiB), kept {} ({:.1} MiB)",
                    relative(&root, &dir),
                    p.removed.len(),
                    p.freed_bytes as f64 / 1048576.0,
                    p.kept,
                    p.kept_bytes as f64 / 1048576.0
                );
            }
            Ok(0)
        }
    }
}

/// The prunable caches under `root`: the initramfs images and each compiled-component directory.
fn caches(root: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut out = vec![(root.join("initramfs"), ".cpio")];
    if let Ok(entries) = std::fs::read_dir(root) {
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("components-"))
            .map(|e| e.path())
            .collect();
        dirs.sort();
        out.extend(dirs.into_iter().map(|d| (d, ".cwasm")));
    }
    out
}

fn usage(dir: &Path, suffix: &str) -> (usize, u64) {
    let mut n = 0;
    let mut bytes = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().ends_with(suffix) {
            n += 1;
            bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    (n, bytes)
}

fn relative(root: &Path, dir: &Path) -> String {
    dir.strip_prefix(root).unwrap_or(dir).display().to_string()
}
