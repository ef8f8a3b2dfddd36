//! Kernel modules the host placed in the initramfs (virtio_mmio on microvm, where the
//! channel's transport is a module), loaded in lexical order before the channel opens.

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Where the host's initramfs builder puts them, named `NN-<module>` in load order.
pub const DIR: &str = "/lib/modules/schedbox";
/// Modules loaded only when an op needs them (named `<module>.ko*`), e.g. null_blk for
/// the block I/O work types.
pub const ON_DEMAND_DIR: &str = "/lib/modules/schedbox/on-demand";

/// `finit_module` flag: the file is compressed; the kernel (`CONFIG_MODULE_DECOMPRESS`)
/// inflates it.
const MODULE_INIT_COMPRESSED_FILE: libc::c_uint = 4;

/// One module's outcome.
#[derive(Debug)]
pub struct Loaded {
    pub name: String,
    /// `Ok(true)`: loaded now; `Ok(false)`: already present (EEXIST).
    pub result: std::io::Result<bool>,
}

/// The module files in `dir`, in load (lexical) order; none when `dir` is absent.
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> =
        read.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| compression(p).is_some()).collect();
    files.sort();
    files
}

/// `Some(compressed?)` for module files, `None` for anything else.
fn compression(path: &Path) -> Option<bool> {
    let name = path.file_name()?.to_str()?;
    if name.ends_with(".ko") {
        Some(false)
    } else if [".ko.xz", ".ko.zst", ".ko.gz"].iter().any(|s| name.ends_with(s)) {
        Some(true)
    } else {
        None
    }
}

/// Loads every module in `dir`; a failure does not stop the others.
pub fn load_all(dir: &Path) -> Vec<Loaded> {
    list(dir)
        .into_iter()
        .map(|path| Loaded {
            name: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            result: load(&path, compression(&path).unwrap_or(false), c""),
        })
        .collect()
}

/// Loads the module file named `<name>.ko*` in `dir` with `params`; `Ok(None)` when
/// there is no such file.
pub fn load_named(dir: &Path, name: &str, params: &CStr) -> std::io::Result<Option<bool>> {
    let found = list(dir).into_iter().find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.strip_prefix(name).is_some_and(|r| r.starts_with(".ko")))
    });
    match found {
        Some(path) => load(&path, compression(&path).unwrap_or(false), params).map(Some),
        None => Ok(None),
    }
}

pub fn load(path: &Path, compressed: bool, params: &CStr) -> std::io::Result<bool> {
    let file = File::open(path)?;
    let flags = if compressed { MODULE_INIT_COMPRESSED_FILE } else { 0 };
    // SAFETY: finit_module(2) reads the module from an open descriptor that `file` owns
    // for the whole call, and `params` is a valid NUL-terminated string; the kernel
    // copies both and keeps no reference to our memory.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), flags) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EEXIST) => Ok(false),
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_module_files_in_lexical_order() {
        let dir = std::env::temp_dir().join(format!("agent-modules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["01-virtio_console.ko", "00-virtio_mmio.ko.xz", "02-x.ko.zst", "README", "03-y.ko.bz2"] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        let names: Vec<String> =
            list(&dir).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["00-virtio_mmio.ko.xz", "01-virtio_console.ko", "02-x.ko.zst"]);
        assert_eq!(compression(Path::new("a.ko.xz")), Some(true));
        assert_eq!(compression(Path::new("a.ko")), Some(false));
        assert!(list(&dir.join("absent")).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
