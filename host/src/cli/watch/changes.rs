//! What changed on disk: components (the watched files, or `*.wasm` directly inside a
//! watched directory) and, with `--build`, source files.
//!
//! Components are watched through their parent directories, not the files: editors and
//! cargo replace a file by writing a temporary one and renaming it over the old, which
//! ends an inotify watch on the file itself. Events are matched by path. Sources are the
//! source directory's files and every subdirectory but `target/` and hidden ones, so a
//! build's own output never triggers another build.
//!
//! Debounce: a component renamed into place, or closed after writing, is complete and
//! reloads at once; any other change (a create, a write still going on, a source edit)
//! waits until no event came for the quiet time.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::Context;
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher};

/// The bytes a component file held when it was loaded, to tell a real change from a
/// repeated event (a rename reports the new name more than once).
#[derive(Clone, Debug)]
pub struct Version {
    pub sha: [u8; 32],
    stamp: Option<(u64, u64, std::time::SystemTime)>,
}

fn stamp(path: &Path) -> Option<(u64, u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.modified().ok()?))
}

impl Version {
    /// Stats `path` (call this before reading it: a write in between then shows as a change).
    pub fn stat(path: &Path) -> Self {
        Self { sha: [0; 32], stamp: stamp(path) }
    }

    /// Whether `path` still holds these bytes: the same inode, size and mtime, or else the
    /// same SHA-256.
    pub fn still(&self, path: &Path) -> bool {
        let now = stamp(path);
        if now.is_some() && now == self.stamp {
            return true;
        }
        std::fs::read(path).is_ok_and(|b| schedbox::sandbox::digest(&b) == self.sha)
    }
}

/// What the command line named: component files and directories of components.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    /// Files, as `<canonical parent>/<name>` (the file itself may come and go).
    pub files: Vec<PathBuf>,
    /// Directories (canonical): every `*.wasm` directly inside is a component.
    pub dirs: Vec<PathBuf>,
}

impl Targets {
    /// Resolves the command line's paths; each must be an existing file or directory.
    pub fn new(paths: &[PathBuf]) -> anyhow::Result<Self> {
        let mut t = Self::default();
        for p in paths {
            if p.is_dir() {
                t.dirs.push(p.canonicalize().with_context(|| format!("resolving {}", p.display()))?);
            } else if p.is_file() {
                let name = p.file_name().with_context(|| format!("{} has no file name", p.display()))?;
                let parent = match p.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
                    _ => PathBuf::from("."),
                };
                let parent = parent.canonicalize().with_context(|| format!("resolving {}", parent.display()))?;
                t.files.push(parent.join(name));
            } else {
                anyhow::bail!("{} is neither a component file nor a directory of components", p.display());
            }
        }
        Ok(t)
    }

    /// Whether `path` is one of the components.
    pub fn matches(&self, path: &Path) -> bool {
        self.files.iter().any(|f| f == path)
            || (path.extension().is_some_and(|e| e == "wasm")
                && path.parent().is_some_and(|d| self.dirs.iter().any(|w| w == d)))
    }

    /// Every component that exists now, sorted.
    pub fn current(&self) -> BTreeSet<PathBuf> {
        let mut out: BTreeSet<PathBuf> = self.files.iter().filter(|f| f.is_file()).cloned().collect();
        for d in &self.dirs {
            let Ok(rd) = std::fs::read_dir(d) else { continue };
            out.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_file() && self.matches(p)));
        }
        out
    }

    fn watched_dirs(&self) -> BTreeSet<PathBuf> {
        let mut dirs: BTreeSet<PathBuf> = self.dirs.iter().cloned().collect();
        dirs.extend(self.files.iter().filter_map(|f| f.parent().map(Path::to_owned)));
        dirs
    }
}

/// The build marker's name in the source root (hidden, so never a source itself).
const BUILD_MARKER: &str = ".schedbox-build-end";

/// Whether a path below the source root is a source file (not under `target/` or a
/// hidden directory, not a hidden or editor-temporary file).
fn is_source(root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else { return false };
    let mut parts = rel.components().peekable();
    while let Some(c) = parts.next() {
        let s = c.as_os_str().to_string_lossy();
        if s.starts_with('.') || (parts.peek().is_some() && s == "target") || s.ends_with('~') {
            return false;
        }
    }
    !rel.as_os_str().is_empty()
}

/// The filesystem watch and what it has reported so far.
pub struct Changes {
    _watcher: notify::RecommendedWatcher,
    rx: Receiver<notify::Result<notify::Event>>,
    targets: Targets,
    source: Option<PathBuf>,
    /// Components changed (created, written, renamed into place) and not yet run.
    pub components: BTreeSet<PathBuf>,
    /// A source file changed since the last build.
    pub source_changed: bool,
    /// When the last relevant event arrived.
    last: Option<Instant>,
    /// When the first relevant event of the current batch arrived (hot-reload latency starts here).
    pub first: Option<Instant>,
    /// The latest relevant event left its component complete (renamed into place, or
    /// closed after writing): no need to wait for quiet.
    complete: bool,
    /// A hidden file in the source root written when a build ends ([`Changes::mark_build_end`]):
    /// its event orders the build's own source events before later ones.
    marker: Option<PathBuf>,
    /// The marker was written and its event not yet seen.
    marker_pending: bool,
}

impl Changes {
    /// Watches the components' directories and, when given, the source tree.
    pub fn watch(targets: Targets, source: Option<PathBuf>) -> anyhow::Result<Self> {
        let (tx, rx) = channel();
        let mut watcher = notify::recommended_watcher(tx).context("starting the file watcher (inotify)")?;
        for d in targets.watched_dirs() {
            watcher.watch(&d, RecursiveMode::NonRecursive).with_context(|| format!("watching {}", d.display()))?;
        }
        let source = match source {
            Some(root) => {
                let root = root.canonicalize().with_context(|| format!("resolving {}", root.display()))?;
                watcher
                    .watch(&root, RecursiveMode::NonRecursive)
                    .with_context(|| format!("watching {}", root.display()))?;
                for entry in std::fs::read_dir(&root).with_context(|| format!("reading {}", root.display()))?.flatten()
                {
                    let p = entry.path();
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if p.is_dir() && name != "target" && !name.starts_with('.') {
                        watcher
                            .watch(&p, RecursiveMode::Recursive)
                            .with_context(|| format!("watching {}", p.display()))?;
                    }
                }
                Some(root)
            }
            None => None,
        };
        Ok(Self {
            _watcher: watcher,
            rx,
            targets,
            components: BTreeSet::new(),
            marker: source.as_ref().map(|root| root.join(BUILD_MARKER)),
            source,
            source_changed: false,
            last: None,
            first: None,
            complete: false,
            marker_pending: false,
        })
    }

    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    fn absorb(&mut self, event: notify::Result<notify::Event>) {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("file watcher: {e}");
                return;
            }
        };
        let (relevant, complete) = match event.kind {
            EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => (true, true),
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => (true, true),
            EventKind::Create(_) | EventKind::Remove(_) => (true, false),
            EventKind::Modify(ModifyKind::Metadata(_)) => (false, false),
            EventKind::Modify(_) => (true, false),
            EventKind::Access(_) | EventKind::Any | EventKind::Other => (false, false),
        };
        if !relevant {
            return;
        }
        let mut component = false;
        let mut hit = false;
        for path in &event.paths {
            if self.targets.matches(path) {
                tracing::debug!("component changed: {} ({:?})", path.display(), event.kind);
                self.components.insert(path.clone());
                hit = true;
                component = true;
            } else if self.source.as_deref().is_some_and(|root| is_source(root, path)) {
                tracing::debug!("source changed: {} ({:?})", path.display(), event.kind);
                self.source_changed = true;
                hit = true;
            }
        }
        if hit {
            self.complete = component && complete;
            let now = Instant::now();
            self.last = Some(now);
            self.first.get_or_insert(now);
        }
    }

    /// Takes every event already reported, without waiting.
    pub fn poll(&mut self) {
        while let Ok(e) = self.rx.try_recv() {
            self.absorb(e);
        }
    }

    /// Waits up to `timeout` for events; whether anything relevant is pending afterwards.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        match self.rx.recv_timeout(timeout) {
            Ok(e) => {
                self.absorb(e);
                self.poll();
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(timeout),
        }
        self.pending()
    }

    /// Whether a component or source change waits to be handled.
    pub fn pending(&self) -> bool {
        !self.components.is_empty() || self.source_changed
    }

    /// Waits until no relevant event arrived for `quiet` (a write or a build has
    /// settled), or `stop` says to give up; at most 2 s. Returns at once when the latest
    /// event left a component complete and no source change waits.
    pub fn settle(&mut self, quiet: Duration, stop: impl Fn() -> bool) {
        let cap = Instant::now() + Duration::from_secs(2);
        loop {
            self.poll();
            if self.complete && !self.source_changed {
                return;
            }
            let Some(last) = self.last else { return };
            let due = last + quiet;
            let now = Instant::now();
            if now >= due || now >= cap || stop() {
                return;
            }
            self.wait((due - now).min(Duration::from_millis(20)));
        }
    }

    /// Called when a build has exited, before its result is shown: writes the marker,
    /// so source events up to the marker's are the build's and those after it are not.
    pub fn mark_build_end(&mut self) {
        if let Some(marker) = &self.marker {
            match std::fs::write(marker, b"") {
                Ok(()) => self.marker_pending = true,
                Err(e) => {
                    tracing::debug!("writing {}: {e}; a save right after a build may go unseen", marker.display())
                }
            }
        }
    }

    /// Forgets the source changes the last build itself caused: those reported before
    /// its marker's event (waiting at most 1 s for it), or, without a marker, all so far.
    /// A source saved after the build ended stays pending.
    pub fn forget_source_changes(&mut self) {
        if !self.marker_pending {
            self.poll();
            self.source_changed = false;
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.marker_pending {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(e) => {
                    let is_marker = e.as_ref().is_ok_and(|e| {
                        matches!(e.kind, EventKind::Access(AccessKind::Close(AccessMode::Write)))
                            && e.paths.iter().any(|p| Some(p) == self.marker.as_ref())
                    });
                    self.absorb(e);
                    self.source_changed = false;
                    self.marker_pending = !is_marker;
                }
                Err(_) => {
                    tracing::debug!("the build marker's event did not arrive; forgetting every source change so far");
                    self.marker_pending = false;
                }
            }
        }
        if let Some(marker) = &self.marker {
            let _ = std::fs::remove_file(marker);
        }
        self.poll();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_skip_target_hidden_and_editor_files() {
        let root = Path::new("/r");
        assert!(is_source(root, Path::new("/r/src/lib.rs")));
        assert!(is_source(root, Path::new("/r/Cargo.toml")));
        assert!(!is_source(root, Path::new("/r/target/wasm32-wasip2/debug/x.wasm")));
        assert!(!is_source(root, Path::new("/r/.git/index")));
        assert!(!is_source(root, Path::new("/r/src/.lib.rs.swp")));
        assert!(!is_source(root, Path::new("/r/src/lib.rs~")));
        assert!(!is_source(root, Path::new("/elsewhere/lib.rs")));
        // A file named `target` is a source; only the directory is skipped.
        assert!(is_source(root, Path::new("/r/target")));
    }

    #[test]
    fn components_match_by_file_or_directory() {
        let t = Targets { files: vec![PathBuf::from("/a/x.wasm")], dirs: vec![PathBuf::from("/d")] };
        assert!(t.matches(Path::new("/a/x.wasm")));
        assert!(!t.matches(Path::new("/a/y.wasm")));
        assert!(!t.matches(Path::new("/a/.x.wasm.tmp")));
        assert!(t.matches(Path::new("/d/any.wasm")));
        assert!(!t.matches(Path::new("/d/sub/any.wasm")));
        assert!(!t.matches(Path::new("/d/notes.txt")));
    }

    /// The build's own source writes are forgotten; a save after the build ended is
    /// not, even when it arrives before the loop gets to forget (the race a test hit).
    #[test]
    fn a_save_right_after_a_build_is_kept_and_the_builds_own_writes_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let (src, out) = (dir.path().join("src"), dir.path().join("out"));
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        let targets = Targets { files: vec![out.join("x.wasm")], dirs: vec![] };
        let mut c = Changes::watch(targets, Some(src.clone())).unwrap();
        let settle = |c: &mut Changes| {
            c.wait(Duration::from_millis(300));
            c.poll();
        };
        // A "build" that writes into the source tree, then a save after it ended, both
        // reported before the loop forgets.
        std::fs::write(src.join("sub/generated.rs"), "// by the build").unwrap();
        c.mark_build_end();
        std::fs::write(src.join("lib.rs"), "// saved by the author").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        c.forget_source_changes();
        assert!(c.source_changed, "the save after the build is pending");
        assert!(!src.join(BUILD_MARKER).exists(), "the marker is removed");
        // A build whose only source write is its own leaves nothing pending.
        c.source_changed = false;
        settle(&mut c);
        std::fs::write(src.join("sub/generated.rs"), "// by the build, again").unwrap();
        c.mark_build_end();
        c.forget_source_changes();
        settle(&mut c);
        assert!(!c.source_changed, "the build's own write is forgotten");
    }
}
