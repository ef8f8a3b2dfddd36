//! The on-disk cache of compiled components.
//!
//! Entries are keyed by the engine's compatibility hash and the SHA-256 of the
//! component bytes. Each entry carries a header with that key and the SHA-256
//! of the compiled bytes; anything that does not match is treated as a miss
//! and rewritten, so only bytes this cache wrote are ever deserialised.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

const MAGIC: &[u8; 8] = b"SBXCACH1";
const HEADER: usize = 8 + 32 + 32;

/// A directory of compiled components for one engine configuration.
#[derive(Clone, Debug)]
pub struct ComponentCache {
    dir: PathBuf,
}

/// SHA-256 of a component's bytes: its identity in the cache.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl ComponentCache {
    /// The cache under `root`, in a subdirectory for `engine`'s compatibility hash.
    pub fn new(root: &Path, engine: &Engine) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Self { dir: root.join(format!("components-{:016x}", h.finish())) }
    }

    /// The default root: `$XDG_CACHE_HOME/schedbox` (or the platform equivalent).
    pub fn default_root() -> Option<PathBuf> {
        directories::ProjectDirs::from("", "", "schedbox").map(|d| d.cache_dir().to_path_buf())
    }

    pub(crate) fn path(&self, key: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}.cwasm", hex::encode(key)))
    }

    /// The compiled component for `key`, if a valid entry exists.
    pub fn get(&self, engine: &Engine, key: &[u8; 32]) -> Option<Component> {
        let bytes = fs::read(self.path(key)).ok()?;
        crate::initramfs::touch(&self.path(key));
        if bytes.len() < HEADER || &bytes[..8] != MAGIC || &bytes[8..40] != key {
            return None;
        }
        let body = &bytes[HEADER..];
        if Sha256::digest(body).as_slice() != &bytes[40..72] {
            tracing::warn!(path = %self.path(key).display(), "compiled-component cache entry is corrupt; recompiling");
            return None;
        }
        // SAFETY: `body` was produced by `Component::serialize` of this cache
        // for an engine with the same compatibility hash (the directory name),
        // and its SHA-256 recorded at write time matches, so these are bytes
        // this cache wrote, unmodified. Wasmtime additionally checks the
        // engine configuration embedded in the artifact.
        unsafe { Component::deserialize(engine, body) }.ok()
    }

    /// Stores `component` under `key`; failures only cost a later recompile.
    pub fn put(&self, key: &[u8; 32], component: &Component) {
        if let Err(e) = self.try_put(key, component) {
            tracing::warn!(error = %e, "could not write the compiled-component cache");
        }
    }

    fn try_put(&self, key: &[u8; 32], component: &Component) -> anyhow::Result<()> {
        let body = component.serialize()?;
        fs::create_dir_all(&self.dir)?;
        let mut tmp = tempfile_in(&self.dir)?;
        tmp.1.write_all(MAGIC)?;
        tmp.1.write_all(key)?;
        tmp.1.write_all(&Sha256::digest(&body))?;
        tmp.1.write_all(&body)?;
        tmp.1.sync_all()?;
        fs::rename(&tmp.0, self.path(key))?;
        // Bounded: the least recently used entries go (each engine version has its own directory).
        crate::initramfs::prune(&self.dir, ".cwasm", crate::initramfs::INITRAMFS_CACHE_MAX_BYTES)?;
        Ok(())
    }
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, fs::File)> {
    let path = dir.join(format!(".tmp-{}-{:?}", std::process::id(), std::thread::current().id()));
    let file = fs::File::create(&path)?;
    Ok((path, file))
}
