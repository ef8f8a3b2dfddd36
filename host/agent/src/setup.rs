//! One-time guest set-up: pseudo filesystems, cgroup controllers, kallsyms, and the
//! kernel config where libbpf looks for it.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;

/// (source, target, fstype, required)
const MOUNTS: &[(&str, &str, &str, bool)] = &[
    ("proc", "/proc", "proc", true),
    ("sysfs", "/sys", "sysfs", true),
    ("devtmpfs", "/dev", "devtmpfs", true),
    ("cgroup2", "/sys/fs/cgroup", "cgroup2", true),
    ("bpf", "/sys/fs/bpf", "bpf", false),
    ("debugfs", "/sys/kernel/debug", "debugfs", false),
    ("tracefs", "/sys/kernel/tracing", "tracefs", false),
    ("tmpfs", "/tmp", "tmpfs", false),
    // Schedulers keep pid files and sockets there (the initramfs root is writable, but a
    // tmpfs makes /run what they expect on a real system).
    ("tmpfs", "/run", "tmpfs", false),
];

/// Where the host stages the guest kernel's `.config` (when it knows it).
pub const KERNEL_CONFIG: &str = "/boot/config";

pub fn mount(source: &str, target: &str, fstype: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(target)?;
    let c = |s: &str| CString::new(s).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput));
    let (src, tgt, fs) = (c(source)?, c(target)?, c(fstype)?);
    // SAFETY: all pointers are valid NUL-terminated strings that outlive the
    // call; a null data pointer is allowed by mount(2).
    let rc = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
    if rc == 0 {
        Ok(())
    } else {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EBUSY) {
            Ok(())
        } else {
            Err(e)
        }
    }
}

/// Mounts everything the agent and the ops need; optional ones may fail.
pub fn mount_all() -> Result<(), String> {
    for (src, tgt, fs, required) in MOUNTS {
        if let Err(e) = mount(src, tgt, fs) {
            if *required {
                return Err(format!("{fs} on {tgt}: {e}"));
            }
        }
    }
    link_kernel_config();
    Ok(())
}

/// Links `/boot/config-$(uname -r)` to the staged [`KERNEL_CONFIG`], where libbpf reads
/// `__kconfig` externs from (sched_ext schedulers built on scx_utils have them); without
/// a staged config nothing is linked and such a scheduler fails to load with libbpf's
/// "failed to open system Kconfig".
pub fn link_kernel_config() {
    if !std::path::Path::new(KERNEL_CONFIG).is_file() {
        return;
    }
    // SAFETY: `utsname` is plain old data, fully written by uname(2) before it is read.
    let release = unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return;
        }
        std::ffi::CStr::from_ptr(u.release.as_ptr()).to_string_lossy().into_owned()
    };
    let _ = std::os::unix::fs::symlink("config", format!("/boot/config-{release}"));
}

/// Enables every controller the root offers, one by one; returns those enabled.
pub fn enable_controllers() -> Vec<String> {
    let available = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
    for c in available.split_whitespace() {
        let _ = std::fs::write("/sys/fs/cgroup/cgroup.subtree_control", format!("+{c}"));
    }
    std::fs::read_to_string("/sys/fs/cgroup/cgroup.subtree_control")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Makes kallsyms show real addresses and counts its lines.
pub fn expose_kallsyms() -> std::collections::HashMap<String, u64> {
    let _ = std::fs::write("/proc/sys/kernel/kptr_restrict", "0");
    let text = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
    let mut map = std::collections::HashMap::with_capacity(text.len() / 40);
    for line in text.lines() {
        // "<hex address> <type> <name>[\t[module]]"; the first definition of a name wins.
        let mut it = line.split_whitespace();
        if let (Some(addr), Some(_), Some(name)) = (it.next(), it.next(), it.next()) {
            if let Ok(a) = u64::from_str_radix(addr, 16) {
                map.entry(name.to_owned()).or_insert(a);
            }
        }
    }
    map
}

/// Puts a tty channel into raw mode so frames pass unmangled; no-op otherwise.
pub fn raw_tty(dev: &File) {
    let fd = dev.as_raw_fd();
    // SAFETY: `termios` is plain old data, fully written by tcgetattr before
    // use; `fd` is an open descriptor owned by `dev` for the whole block.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) != 0 {
            return;
        }
        libc::cfmakeraw(&mut t);
        libc::tcsetattr(fd, libc::TCSANOW, &t);
    }
}

/// Milliseconds since boot, suspend included (CLOCK_BOOTTIME).
pub fn uptime_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}
