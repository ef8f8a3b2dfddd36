//! The worker parent ("zygote"): a copy of the agent forked before the agent starts any
//! thread, which forks the workers of a spawn on request, without exec.
//!
//! The agent sends one request per spawn over a socket pair: the resolved
//! [`WorkerSpec`]s as JSON, with the shared page, the report pipe's write end and the
//! target cgroup's directory passed as descriptors. The zygote creates each worker with
//! `clone3(CLONE_PARENT | CLONE_INTO_CGROUP)`: the worker is the agent's child (the agent
//! waits for, kills and reaps it like any child) and is born inside its cgroup, so it
//! never runs outside it and no cgroup migration is needed. Where the kernel refuses
//! `CLONE_INTO_CGROUP`, the worker writes itself into `cgroup.procs` first. Each worker
//! then runs [`worker::run`]: name, nice, policy, affinity, its set-up report, and the
//! start barrier. The zygote answers with the pids it started and the first error, if
//! any; the agent kills the started ones on an error.
//!
//! The zygote exits when the agent goes (`PR_SET_PDEATHSIG`, and end of file on the
//! socket). Without it (it could not be forked, or it died) the agent falls back to a
//! fork and exec per worker.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::worker::{self, WorkerSpec};

/// One spawn's request.
#[derive(Serialize, Deserialize)]
struct Request {
    specs: Vec<WorkerSpec>,
    /// Whether a cgroup directory descriptor follows the shared page and the report pipe.
    cgroup: bool,
    /// Pipe-io: the zygote creates one pair of pipes per group of 2.
    pipe_pairs: bool,
}

/// The zygote's answer.
#[derive(Serialize, Deserialize)]
struct Reply {
    pids: Vec<u32>,
    error: Option<String>,
}

/// The agent's end.
struct Client {
    pid: u32,
    sock: UnixStream,
}

static ZYGOTE: Mutex<Option<Client>> = Mutex::new(None);

/// Forks the zygote. Call before the agent starts any thread.
pub fn start() -> Result<(), String> {
    let (agent, child) = UnixStream::pair().map_err(|e| format!("creating the zygote's socket: {e}"))?;
    // SAFETY: the agent is single-threaded here (see the contract), so the child may run
    // any code; it never returns from `serve`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("forking the zygote: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        drop(agent);
        serve(child);
    }
    drop(child);
    *ZYGOTE.lock().unwrap_or_else(|p| p.into_inner()) = Some(Client { pid: pid as u32, sock: agent });
    Ok(())
}

/// The zygote's pid, while it serves.
pub fn pid() -> Option<u32> {
    ZYGOTE.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|c| c.pid)
}

/// Whether a zygote serves.
pub fn available() -> bool {
    pid().is_some()
}

/// Asks the zygote for the workers `specs`: `Ok(pids)` when all started; `Err((pids
/// started, why))` otherwise (the caller kills those). A broken link retires the zygote.
pub fn spawn(
    specs: &[WorkerSpec],
    shm: RawFd,
    report: RawFd,
    cgroup_dir: Option<RawFd>,
    pipe_pairs: bool,
) -> Result<Vec<u32>, (Vec<u32>, String)> {
    let mut guard = ZYGOTE.lock().unwrap_or_else(|p| p.into_inner());
    let Some(client) = guard.as_mut() else { return Err((Vec::new(), "no worker parent".into())) };
    let req = Request { specs: specs.to_vec(), cgroup: cgroup_dir.is_some(), pipe_pairs };
    let mut fds = vec![shm, report];
    fds.extend(cgroup_dir);
    let answer = exchange(&mut client.sock, &req, &fds);
    match answer {
        Ok(Reply { pids, error: None }) => Ok(pids),
        Ok(Reply { pids, error: Some(e) }) => Err((pids, e)),
        Err(e) => {
            crate::console(&format!(
                "schedbox-agent: the worker parent {} is gone ({e}); workers start by exec from now on",
                client.pid
            ));
            *guard = None;
            Err((Vec::new(), format!("the worker parent failed: {e}")))
        }
    }
}

fn exchange(sock: &mut UnixStream, req: &Request, fds: &[RawFd]) -> Result<Reply, String> {
    let json = serde_json::to_vec(req).map_err(|e| format!("encoding the request: {e}"))?;
    let len = (json.len() as u32).to_le_bytes();
    send_with_fds(sock.as_raw_fd(), &len, fds).map_err(|e| format!("sending the request: {e}"))?;
    sock.write_all(&json).map_err(|e| format!("sending the request: {e}"))?;
    let body = read_frame(sock).map_err(|e| format!("reading the answer: {e}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("decoding the answer: {e}"))
}

fn read_frame(sock: &mut UnixStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    sock.read_exact(&mut len)?;
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    sock.read_exact(&mut body)?;
    Ok(body)
}

/// Sends `bytes` with `fds` attached (`SCM_RIGHTS`).
fn send_with_fds(sock: RawFd, bytes: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    let fd_bytes = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
    // SAFETY: msghdr is plain old data; all-zero is an empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` points at `control`, which is CMSG_SPACE(fd_bytes) long, so the first
    // header and its data (`fd_bytes`) lie inside it; `iov` and `bytes` outlive the call.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<RawFd>(), fds.len());
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) != bytes.len() as isize {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Receives exactly `buf.len()` bytes, the first with up to `max_fds` descriptors.
fn recv_with_fds(sock: RawFd, buf: &mut [u8], max_fds: usize) -> std::io::Result<Vec<OwnedFd>> {
    let fd_bytes = max_fds * std::mem::size_of::<RawFd>();
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes as u32) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: msghdr is plain old data; all-zero is an empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` describes `buf` and `control`, both alive and as long as stated.
    let got = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC | libc::MSG_WAITALL) };
    if got < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `control` up to msg_controllen; CMSG_FIRSTHDR/NXTHDR stay
    // inside it, and an SCM_RIGHTS header's data holds the descriptors it says, which are
    // now ours alone.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let n = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..n {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if (got as usize) < buf.len() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(fds)
}

/// The zygote's loop; never returns.
fn serve(mut sock: UnixStream) -> ! {
    // SAFETY: prctl with plain integer arguments; PR_SET_NAME reads a NUL-terminated string.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::prctl(libc::PR_SET_NAME, c"sbx-zygote".as_ptr());
    }
    let self_tid = MuslTid::find();
    loop {
        let mut len = [0u8; 4];
        let fds = match recv_with_fds(sock.as_raw_fd(), &mut len, 3) {
            Ok(f) => f,
            // The agent is gone.
            Err(_) => std::process::exit(0),
        };
        let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
        if sock.read_exact(&mut body).is_err() {
            std::process::exit(0);
        }
        let reply = match serde_json::from_slice::<Request>(&body) {
            Ok(req) => start_all(req, &fds, sock.as_raw_fd(), self_tid),
            Err(e) => Reply { pids: Vec::new(), error: Some(format!("bad request to the worker parent: {e}")) },
        };
        drop(fds);
        let json = serde_json::to_vec(&reply).unwrap_or_default();
        let mut out = (json.len() as u32).to_le_bytes().to_vec();
        out.extend(json);
        if sock.write_all(&out).is_err() {
            std::process::exit(0);
        }
    }
}

/// `struct clone_args` of `clone3(2)` (not in every libc release).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

fn start_all(req: Request, fds: &[OwnedFd], sock: RawFd, tid: Option<MuslTid>) -> Reply {
    let (Some(shm), Some(report)) = (fds.first(), fds.get(1)) else {
        return Reply { pids: Vec::new(), error: Some("the worker parent got no shared page or report pipe".into()) };
    };
    let cgroup = if req.cgroup { fds.get(2).map(AsRawFd::as_raw_fd) } else { None };
    let mut into_cgroup = cgroup.is_some();
    let mut pids = Vec::with_capacity(req.specs.len());
    let mut pair: Option<[OwnedFd; 4]> = None;
    for mut spec in req.specs {
        spec.shm_fd = shm.as_raw_fd();
        spec.report_fd = report.as_raw_fd();
        let pos = spec.index % 2;
        if req.pipe_pairs {
            if pos == 0 {
                pair = match (pipe(), pipe()) {
                    (Ok((ab_r, ab_w)), Ok((ba_r, ba_w))) => Some([ab_r, ab_w, ba_r, ba_w]),
                    (Err(e), _) | (_, Err(e)) => return Reply { pids, error: Some(e) },
                };
            }
            if let Some([ab_r, ab_w, ba_r, ba_w]) = &pair {
                // Position 0 writes a→b and reads b→a; position 1 the other way round.
                spec.pipe = Some(if pos == 0 {
                    (ba_r.as_raw_fd(), ab_w.as_raw_fd())
                } else {
                    (ab_r.as_raw_fd(), ba_w.as_raw_fd())
                });
            }
        }
        // With CLONE_PARENT the kernel takes the exit signal from the zygote's own (SIGCHLD)
        // and refuses any other.
        let mut args = CloneArgs { flags: libc::CLONE_PARENT as u64, ..Default::default() };
        if let (true, Some(dir)) = (into_cgroup, cgroup) {
            args.flags |= CLONE_INTO_CGROUP;
            args.cgroup = dir as u64;
        }
        let mut pid = clone3(&args);
        let errno = std::io::Error::last_os_error().raw_os_error();
        if pid < 0 && into_cgroup && !matches!(errno, Some(libc::EAGAIN | libc::ENOMEM)) {
            // An older kernel: the worker joins its cgroup itself.
            into_cgroup = false;
            args.flags &= !CLONE_INTO_CGROUP;
            args.cgroup = 0;
            pid = clone3(&args);
        }
        if pid == 0 {
            // The pair's other two ends: the worker must not hold its peer's ends open.
            let mine = spec.pipe.map_or([-1, -1], |(r, w)| [r, w]);
            let others: Vec<RawFd> =
                pair.iter().flatten().map(AsRawFd::as_raw_fd).filter(|fd| !mine.contains(fd)).collect();
            child(spec, sock, cgroup.filter(|_| !into_cgroup), cgroup, others, tid);
        }
        if pid < 0 {
            let e = std::io::Error::last_os_error();
            let n = pids.len();
            return Reply { pids, error: Some(format!("starting worker {n}: {e}")) };
        }
        pids.push(pid as u32);
        if req.pipe_pairs && pos == 1 {
            pair = None;
        }
    }
    Reply { pids, error: None }
}

fn clone3(args: &CloneArgs) -> libc::c_long {
    // SAFETY: `args` is a valid clone_args of the size passed. Without CLONE_VM and with
    // no stack the child runs on a copy of this (single-threaded) process, like fork.
    unsafe { libc::syscall(libc::SYS_clone3, args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) }
}

/// The worker, right after its clone; never returns.
fn child(
    spec: WorkerSpec,
    sock: RawFd,
    join: Option<RawFd>,
    cgroup_dir: Option<RawFd>,
    others: Vec<RawFd>,
    tid: Option<MuslTid>,
) -> ! {
    if let Some(t) = tid {
        t.refresh();
    }
    if let Some(dir) = join {
        if let Err(e) = join_cgroup(dir) {
            let _ = writeln_report(spec.report_fd, &format!("{} err joining its cgroup: {e}", spec.index));
            // SAFETY: _exit ends the child without running the zygote's destructors.
            unsafe { libc::_exit(1) };
        }
    }
    // SAFETY: these descriptors are the zygote's; the worker has no use for them.
    unsafe {
        libc::close(sock);
        for fd in cgroup_dir.into_iter().chain(others) {
            libc::close(fd);
        }
    }
    worker::run_forked(spec)
}

fn writeln_report(fd: RawFd, line: &str) -> std::io::Result<()> {
    // SAFETY: borrows the report descriptor for one write; ManuallyDrop keeps it open.
    let mut f = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
    f.write_all(format!("{line}\n").as_bytes())
}

fn join_cgroup(dir: RawFd) -> std::io::Result<()> {
    // SAFETY: openat on a directory descriptor we hold with a NUL-terminated name.
    let fd = unsafe { libc::openat(dir, c"cgroup.procs".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is ours; "0" moves the writing process.
    let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
    let e = std::io::Error::last_os_error();
    // SAFETY: closes our own descriptor.
    unsafe { libc::close(fd) };
    if n == 1 {
        Ok(())
    } else {
        Err(e)
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("creating a pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: pipe2 just returned these two descriptors, owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// musl caches the thread id in its thread descriptor (`raise`, `abort` and some locks use
/// it); a raw `clone3` child keeps the parent's. This finds the cached copy by value (the
/// word right after musl's x86-64 thread-descriptor header, checked against `gettid`) so
/// a child can store its own id there. Without a match nothing is patched.
#[derive(Clone, Copy)]
struct MuslTid(*mut libc::c_int);

impl MuslTid {
    /// Offset of `tid` in musl's `struct pthread` on x86-64 (self, dtv, prev, next,
    /// sysinfo, canary: six words).
    const OFFSET: usize = 48;

    fn find() -> Option<Self> {
        // SAFETY: pthread_self returns this thread's descriptor, which is at least
        // OFFSET + 4 bytes long in musl; gettid only returns a value.
        unsafe {
            let base = libc::pthread_self() as *mut u8;
            let at = base.add(Self::OFFSET).cast::<libc::c_int>();
            let tid = libc::syscall(libc::SYS_gettid) as libc::c_int;
            (cfg!(target_env = "musl") && at.read() == tid).then_some(Self(at))
        }
    }

    fn refresh(self) {
        // SAFETY: `find` verified this address holds the cached id in this (copied)
        // address space; the child is single-threaded.
        unsafe { self.0.write(libc::syscall(libc::SYS_gettid) as libc::c_int) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn musl_thread_id_is_found() {
        let t = MuslTid::find();
        assert_eq!(t.is_some(), cfg!(target_env = "musl"), "the cached tid sits at offset {}", MuslTid::OFFSET);
        if let Some(t) = t {
            t.refresh();
            assert!(MuslTid::find().is_some());
        }
    }

    #[test]
    fn descriptors_cross_the_socket() {
        let (a, b) = UnixStream::pair().unwrap();
        let (r, w) = pipe().unwrap();
        send_with_fds(a.as_raw_fd(), &7u32.to_le_bytes(), &[r.as_raw_fd(), w.as_raw_fd()]).unwrap();
        let mut buf = [0u8; 4];
        let fds = recv_with_fds(b.as_raw_fd(), &mut buf, 3).unwrap();
        assert_eq!((u32::from_le_bytes(buf), fds.len()), (7, 2));
        // The received write end feeds the original read end.
        let mut out = std::fs::File::from(fds.into_iter().nth(1).unwrap());
        out.write_all(b"x").unwrap();
        let mut got = [0u8; 1];
        std::fs::File::from(r).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"x");
    }
}
