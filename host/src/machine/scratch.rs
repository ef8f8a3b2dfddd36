//! Scratch directories of a running VM (sockets, guest RAM files), named after the
//! process that owns them so that what a killed schedbox left behind (SIGKILL runs no
//! destructor) is found and removed by the next one.

use std::path::{Path, PathBuf};

/// `{kind}-{pid}-` where `kind` is e.g. `schedbox-ram`.
pub fn prefix(kind: &str) -> String {
    format!("{kind}-{}-", std::process::id())
}

/// The pid in a scratch directory's name `{kind}-{pid}-{random}`, if it is one.
fn owner(name: &str, kind: &str) -> Option<i32> {
    name.strip_prefix(kind)?.strip_prefix('-')?.split('-').next()?.parse().ok()
}

/// Whether process `pid` exists.
fn alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks for the process; it sends nothing.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Removes the `kind` scratch directories in `parent` whose owning process is gone;
/// returns what it removed.
pub fn sweep(parent: &Path, kind: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| owner(n, kind)) else { continue };
        if pid <= 0 || alive(pid) {
            continue;
        }
        let path = entry.path();
        match std::fs::remove_dir_all(&path) {
            Ok(()) => removed.push(path),
            Err(e) => tracing::debug!("removing stale {}: {e}", path.display()),
        }
    }
    if !removed.is_empty() {
        tracing::info!(
            "removed {} scratch director{} left by schedbox processes that no longer run",
            removed.len(),
            if removed.len() == 1 { "y" } else { "ies" }
        );
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_owner() {
        assert_eq!(owner("schedbox-ram-1234-AbC9", "schedbox-ram"), Some(1234));
        assert_eq!(owner("schedbox-ram-AbC9", "schedbox-ram"), None);
        assert_eq!(owner("schedbox-vm-77-x", "schedbox-ram"), None);
        assert!(prefix("schedbox-vm").starts_with(&format!("schedbox-vm-{}-", std::process::id())));
    }

    #[test]
    fn only_dead_owners_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        // A child that has exited and been reaped: its pid is free.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let mine = dir.path().join(format!("schedbox-ram-{}-live", std::process::id()));
        let stale = dir.path().join(format!("schedbox-ram-{dead}-gone"));
        let other = dir.path().join("schedbox-ram-unrelated");
        for d in [&mine, &stale, &other] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("ram0"), b"x").unwrap();
        }
        let removed = sweep(dir.path(), "schedbox-ram");
        assert_eq!(removed, vec![stale.clone()]);
        assert!(mine.exists() && other.exists() && !stale.exists());
    }
}
