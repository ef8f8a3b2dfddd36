//! The cgroup-v2 files the executor touches, with errors that name the file and value.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The managed parent every scenario cgroup is a flat child of.
pub const PARENT: &str = "/sys/fs/cgroup/schedbox";
/// Controllers enabled for the scenario cgroups (those the root offers).
pub const CONTROLLERS: &[&str] = &["cpuset", "cpu", "memory", "io", "pids"];
/// How long freeze / thaw may take to show in `cgroup.events`.
pub const FREEZE_WAIT: Duration = Duration::from_secs(5);
/// How long `rmdir` is retried while killed tasks finish leaving.
pub const RMDIR_WAIT: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(5);

/// The directory of scenario cgroup `name`.
pub fn dir(name: &str) -> PathBuf {
    Path::new(PARENT).join(name)
}

/// Writes `value` to `dir/file`. An empty value is written as a newline: a zero-byte
/// write never reaches the kernel.
pub fn write(dir: &Path, file: &str, value: &str) -> Result<(), String> {
    let path = dir.join(file);
    let bytes = if value.is_empty() { "\n" } else { value };
    std::fs::write(&path, bytes).map_err(|e| format!("writing {value:?} to {}: {}", path.display(), explain(&e)))
}

pub fn read(dir: &Path, file: &str) -> Result<String, String> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {}", path.display(), explain(&e)))
}

fn explain(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT) => format!("{e} (no such cgroup or file)"),
        _ => e.to_string(),
    }
}

/// The pids in `dir/cgroup.procs`.
pub fn procs(dir: &Path) -> Result<Vec<u32>, String> {
    Ok(read(dir, "cgroup.procs")?.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// The CPUs of `dir/cpuset.cpus.effective`.
pub fn effective_cpus(dir: &Path) -> Result<Vec<u32>, String> {
    Ok(crate::topology::parse_cpu_list(&read(dir, "cpuset.cpus.effective")?))
}

/// Whether `cgroup.events` says `frozen 1`.
pub fn is_frozen(dir: &Path) -> Result<bool, String> {
    let events = read(dir, "cgroup.events")?;
    Ok(events.lines().any(|l| l.trim() == "frozen 1"))
}

/// Writes `cgroup.freeze` and waits until `cgroup.events` agrees.
pub fn set_frozen(dir: &Path, frozen: bool) -> Result<(), String> {
    write(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
    let deadline = Instant::now() + FREEZE_WAIT;
    loop {
        if is_frozen(dir)? == frozen {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{}/cgroup.events still shows frozen {} after {} s (a task stuck in the kernel?)",
                dir.display(),
                u8::from(!frozen),
                FREEZE_WAIT.as_secs()
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// Kills every process in the cgroup (`cgroup.kill`).
pub fn kill_all(dir: &Path) -> Result<(), String> {
    write(dir, "cgroup.kill", "1")
}

/// Removes an empty cgroup, retrying on EBUSY for [`RMDIR_WAIT`] while killed tasks
/// leave; `between` runs before every retry (the caller reaps there).
pub fn rmdir(dir: &Path, mut between: impl FnMut()) -> Result<(), String> {
    let deadline = Instant::now() + RMDIR_WAIT;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                between();
                std::thread::sleep(POLL);
            }
            Err(e) => {
                let left = procs(dir).map(|p| format!("{p:?}")).unwrap_or_else(|_| "?".into());
                return Err(format!("removing {}: {e} (pids still inside: {left})", dir.display()));
            }
        }
    }
}

/// Child cgroups of `dir`.
pub fn children(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()).map(|e| e.path()).collect();
    v.sort();
    v
}

/// Thaws, kills and removes `dir` and everything below it, depth first.
pub fn remove_tree(dir: &Path, between: &mut dyn FnMut()) -> Result<(), String> {
    for child in children(dir) {
        remove_tree(&child, between)?;
    }
    if !dir.exists() {
        return Ok(());
    }
    let _ = write(dir, "cgroup.freeze", "0");
    let _ = kill_all(dir);
    rmdir(dir, &mut *between)
}

/// Creates the managed parent with the controllers on and every online CPU.
pub fn create_parent(online: &str) -> Result<(), String> {
    let parent = Path::new(PARENT);
    if let Err(e) = std::fs::create_dir(parent) {
        if e.kind() != io::ErrorKind::AlreadyExists {
            return Err(format!("creating {PARENT}: {e}"));
        }
    }
    let offered = read(Path::new("/sys/fs/cgroup"), "cgroup.subtree_control")?;
    for c in CONTROLLERS.iter().filter(|c| offered.split_whitespace().any(|o| o == **c)) {
        write(parent, "cgroup.subtree_control", &format!("+{c}"))?;
    }
    write(parent, "cpuset.cpus", online)
}
