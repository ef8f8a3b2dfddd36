//! The guest's initramfs, built on the fly: the agent as `/init`, the device nodes and
//! mount points it needs before devtmpfs is up, the kernel modules it loads first, and
//! staged payloads. Written as an uncompressed newc cpio (the kernel unpacks it as is;
//! decompressing under TCG would cost boot time) and cached by content hash.

mod cached;
mod image;
pub(crate) mod libs;
mod newc;
mod prune;

use std::path::PathBuf;

pub use cached::{build_cached, InitramfsSpec, KERNEL_CONFIG_GUEST, MODULES_DIR, ON_DEMAND_MODULES_DIR, STAGING_DIR};
pub use image::{FileSource, Initramfs};
pub use prune::{prune, touch, Pruned, INITRAMFS_CACHE_MAX_BYTES};

/// Why an initramfs could not be assembled or written.
#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    /// A guest path that is relative, has `.`/`..`/empty components or a NUL.
    #[error("initramfs path {path:?} is not usable: {why}")]
    BadPath { path: String, why: &'static str },
    /// Two entries at one path, or an entry below something that is not a directory.
    #[error("initramfs path {path} is already a {existing}; it cannot also be a {adding}")]
    Conflict { path: String, existing: &'static str, adding: &'static str },
    #[error("mode {mode:#o} for {path} has bits beyond 0o7777 (pass permission bits only)")]
    BadMode { path: String, mode: u32 },
    /// newc records sizes in 32 bits.
    #[error("{path} is {size} bytes; a newc archive holds files below 4 GiB")]
    TooLarge { path: String, size: u64 },
    #[error("{0} is not a kernel module (expected a .ko, .ko.xz, .ko.zst or .ko.gz file)")]
    NotAModule(PathBuf),
    /// A host file named by a [`FileSource::Host`] could not be read.
    #[error("reading {} for the guest's {guest}: {source}", host.display())]
    Read { host: PathBuf, guest: String, source: std::io::Error },
    #[error("writing the initramfs: {0}")]
    Write(#[from] std::io::Error),
}

#[cfg(test)]
mod tests;
