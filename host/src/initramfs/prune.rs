//! Size bounds for the on-disk caches (`<cache>/initramfs`, `<cache>/components-*`):
//! least recently used entries go first. A cache hit refreshes its entry's access
//! time ([`touch`]; the modification time stays the write's), so "recently used" means
//! used, not written.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The bound [`super::build_cached`] keeps `<cache>/initramfs` under.
pub const INITRAMFS_CACHE_MAX_BYTES: u64 = 1 << 30;

/// What [`prune`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub removed: Vec<PathBuf>,
    pub freed_bytes: u64,
    pub kept: usize,
    pub kept_bytes: u64,
}

/// Marks `path` as used now (best effort): sets its access time only.
pub fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.set_times(std::fs::FileTimes::new().set_accessed(SystemTime::now()));
    }
}

/// When an entry was last used: its access time, or its write where that is later.
fn last_used(meta: &std::fs::Metadata) -> SystemTime {
    let written = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    meta.accessed().map_or(written, |a| a.max(written))
}

/// Removes the least recently used ([`last_used`]) files of `dir` whose name ends with `suffix` until the
/// rest fit in `max_bytes`. Temporary files and other names are left alone.
pub fn prune(dir: &Path, suffix: &str, max_bytes: u64) -> std::io::Result<Pruned> {
    let mut entries: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Pruned::default()),
        Err(e) => return Err(e),
    };
    for e in read.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(suffix) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_file() {
            entries.push((last_used(&meta), meta.len(), e.path()));
        }
    }
    // Newest first: keep while they fit.
    entries.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2.cmp(&b.2)));
    let mut out = Pruned::default();
    for (_, len, path) in entries {
        if out.kept_bytes + len <= max_bytes {
            out.kept += 1;
            out.kept_bytes += len;
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                out.freed_bytes += len;
                out.removed.push(path);
            }
            Err(e) => tracing::warn!("removing cache entry {}: {e}", path.display()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_least_recently_used_go_first_and_other_files_stay() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let mk = |name: &str, len: usize, age_s: u64| {
            let p = dir.path().join(name);
            std::fs::write(&p, vec![0u8; len]).unwrap();
            let then = now - Duration::from_secs(age_s);
            let f = std::fs::File::options().append(true).open(&p).unwrap();
            f.set_times(std::fs::FileTimes::new().set_modified(then).set_accessed(then)).unwrap();
            p
        };
        let old = mk("a.cpio", 400, 300);
        let used = mk("b.cpio", 400, 200);
        let fresh = mk("c.cpio", 400, 10);
        let tmp = mk(".d.cpio.tmp", 400, 1000);
        let other = mk("notes.txt", 400, 1000);
        // b is used now: it becomes the newest, though written before c.
        let written = std::fs::metadata(&used).unwrap().modified().unwrap();
        touch(&used);
        assert_eq!(std::fs::metadata(&used).unwrap().modified().unwrap(), written, "a use is not a write");
        let pruned = prune(dir.path(), ".cpio", 900).unwrap();
        assert_eq!(pruned.removed, vec![old.clone()]);
        assert_eq!((pruned.kept, pruned.kept_bytes, pruned.freed_bytes), (2, 800, 400));
        assert!(!old.exists() && used.exists() && fresh.exists() && tmp.exists() && other.exists());
        // A bound of zero empties it.
        let all = prune(dir.path(), ".cpio", 0).unwrap();
        assert_eq!(all.removed.len(), 2);
    }
}
