//! Starting a child inside its cgroup: the child moves itself into the cgroup between
//! fork and exec, so it never runs a single instruction of its program outside it.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use super::cgroupfs;

/// Makes `cmd`'s child join scenario cgroup `cgroup` (none: stay in the agent's) and
/// keep the descriptors `inherit` open across exec.
pub fn place(cmd: &mut Command, cgroup: Option<&str>, inherit: Vec<RawFd>) -> Result<(), String> {
    let procs = match cgroup {
        Some(name) => {
            let path = cgroupfs::dir(name).join("cgroup.procs");
            let path = path.to_str().and_then(|p| CString::new(p).ok());
            Some(path.ok_or_else(|| format!("cgroup name {name:?} is not a valid path"))?)
        }
        None => None,
    };
    let hook = move || -> std::io::Result<()> {
        for &fd in &inherit {
            // SAFETY: fcntl on a descriptor the parent opened for this child; clearing
            // FD_CLOEXEC touches no memory and is async-signal-safe.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        if let Some(path) = &procs {
            // SAFETY: `path` is a NUL-terminated string allocated before the fork;
            // open/write/close are async-signal-safe. Writing "0" to cgroup.procs moves
            // the writing process itself.
            unsafe {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if n != 1 {
                    return Err(err);
                }
            }
        }
        Ok(())
    };
    // SAFETY: the hook runs in the forked child before exec and only makes the
    // async-signal-safe calls above, on memory it owns and allocated before the fork; it
    // never allocates or takes a lock.
    unsafe { cmd.pre_exec(hook) };
    Ok(())
}

/// Reaps every exited child without blocking; returns `(pid, wait status)` pairs.
pub fn reap_any() -> Vec<(u32, i32)> {
    let mut out = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: non-blocking waitpid on any child; `status` is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return out;
        }
        out.push((pid as u32, status));
    }
}

/// SIGKILLs `pid`, our own child that no one reaped yet.
pub fn kill(pid: u32) {
    // SAFETY: an unreaped child's pid cannot have been reused; kill touches no memory.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
}

/// Whether our child `pid` exited: `Ok(Some(status))` once it has (reaped now),
/// `Ok(None)` while it runs, `Err(())` when it is not (or no longer) our child.
pub fn try_reap(pid: u32) -> Result<Option<i32>, ()> {
    let mut status = 0;
    // SAFETY: non-blocking waitpid on our own child; `status` is a valid out-pointer.
    let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
    match rc {
        0 => Ok(None),
        r if r == pid as libc::pid_t => Ok(Some(status)),
        _ if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => Ok(None),
        _ => Err(()),
    }
}

/// Waits for our child `pid` to exit; its wait status, or `None` if it is not ours.
pub fn reap(pid: u32) -> Option<i32> {
    let mut status = 0;
    loop {
        // SAFETY: blocking waitpid on our own child; `status` is a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        if rc == pid as libc::pid_t {
            return Some(status);
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return None;
        }
    }
}
