//! Payloads: staged binaries run in the background, addressed by `(name, cgroup)`,
//! with the last 4 KiB of their stdout and stderr kept.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schedbox_ops::results::PayloadExit;
use schedbox_wire::Owner;

use super::spawn;

/// Where the host stages payload binaries.
pub const DIR: &str = "/staging/payloads";
/// Bytes of each output stream kept.
pub const TAIL: usize = 4096;
/// How long output is drained after the payload exits (a child it left behind may
/// hold the pipe open forever).
const DRAIN_WAIT: Duration = Duration::from_millis(500);

/// How long a `wait-payload` waits before it kills the payload, ms (the host sets it
/// per run with `PayloadWaitLimit`; 10 minutes until it does).
static WAIT_LIMIT_MS: AtomicU64 = AtomicU64::new(600_000);

/// Sets the bound of every later `wait-payload`.
pub fn set_wait_limit(limit: Duration) {
    WAIT_LIMIT_MS.store(u64::try_from(limit.as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// The last [`TAIL`] bytes of a stream, and whether it reached EOF.
#[derive(Default)]
pub(super) struct Tail {
    bytes: Vec<u8>,
    done: bool,
}

pub(super) type SharedTail = Arc<Mutex<Tail>>;

pub(super) fn drain(mut from: impl Read + Send + 'static) -> SharedTail {
    let tail = SharedTail::default();
    let out = tail.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let n = from.read(&mut buf).unwrap_or(0);
            let mut t = out.lock().unwrap_or_else(|p| p.into_inner());
            if n == 0 {
                t.done = true;
                return;
            }
            t.bytes.extend_from_slice(&buf[..n]);
            let excess = t.bytes.len().saturating_sub(TAIL);
            t.bytes.drain(..excess);
        }
    });
    tail
}

/// A running (or exited, not yet consumed) payload.
pub struct Payload {
    pub name: String,
    pub cgroup: Option<String>,
    pub owner: Owner,
    pub pid: u32,
    /// The wait status once reaped.
    pub status: Option<i32>,
    stdout: SharedTail,
    stderr: SharedTail,
}

impl Payload {
    /// Starts `/staging/payloads/<name> args…`, in `cgroup` when given.
    pub fn start(name: &str, args: &[String], cgroup: Option<&str>, owner: Owner) -> Result<Self, String> {
        let path = std::path::Path::new(DIR).join(name);
        if !path.is_file() {
            return Err(format!(
                "payload {name:?} is not staged at {} (declare it in the scenario's describe payloads)",
                path.display()
            ));
        }
        let mut cmd = Command::new(&path);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        spawn::place(&mut cmd, cgroup, Vec::new())?;
        let mut child = cmd.spawn().map_err(|e| format!("starting {}: {e}", path.display()))?;
        let stdout = drain(child.stdout.take().expect("piped stdout"));
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        Ok(Self {
            name: name.to_owned(),
            cgroup: cgroup.map(str::to_owned),
            owner,
            pid: child.id(),
            status: None,
            stdout,
            stderr,
        })
    }

    /// Blocks until the payload exits (unless the reaper saw it already).
    pub fn wait(&mut self) {
        if self.status.is_none() {
            // None (ECHILD): reaped elsewhere without a record; report it as killed.
            self.status = Some(spawn::reap(self.pid).unwrap_or(libc::SIGKILL));
        }
    }

    /// Waits for the payload to exit, at most the wait limit ([`set_wait_limit`]);
    /// past it, kills it and fails with what it printed.
    pub fn wait_bounded(&mut self) -> Result<(), String> {
        let limit = Duration::from_millis(WAIT_LIMIT_MS.load(Ordering::Relaxed));
        let deadline = Instant::now() + limit;
        while self.status.is_none() {
            match spawn::try_reap(self.pid) {
                Ok(Some(status)) => self.status = Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                Ok(None) => {
                    self.kill();
                    let exit = self.exit();
                    return Err(format!(
                        "payload {:?} still ran after {} s (the wait-payload bound: `--wait-payload-timeout`), \
                         so it was killed; its stdout ended: {:?}; its stderr ended: {:?}",
                        self.name,
                        limit.as_secs_f64(),
                        tail_end(&exit.stdout_tail),
                        tail_end(&exit.stderr_tail)
                    ));
                }
                // ECHILD: reaped elsewhere without a record; report it as killed.
                Err(()) => self.status = Some(libc::SIGKILL),
            }
        }
        Ok(())
    }

    /// SIGKILLs and reaps it.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            spawn::kill(self.pid);
        }
        self.wait();
    }

    /// The exit record, with output drained for at most [`DRAIN_WAIT`].
    pub fn exit(&self) -> PayloadExit {
        let status = self.status.unwrap_or(libc::SIGKILL);
        let deadline = Instant::now() + DRAIN_WAIT;
        let text = |t: &SharedTail| tail_text(t, deadline);
        PayloadExit {
            name: self.name.clone(),
            cgroup: self.cgroup.clone(),
            exit_code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
            signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
            stdout_tail: text(&self.stdout),
            stderr_tail: text(&self.stderr),
        }
    }
}

/// The last 512 bytes of an output tail, for an error message.
fn tail_end(text: &str) -> &str {
    let mut start = text.len().saturating_sub(512);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The text a tail holds once its stream reached EOF, or at `deadline`.
pub(super) fn tail_text(t: &SharedTail, deadline: Instant) -> String {
    loop {
        let g = t.lock().unwrap_or_else(|p| p.into_inner());
        if g.done || Instant::now() >= deadline {
            return String::from_utf8_lossy(&g.bytes).into_owned();
        }
        drop(g);
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The index of the payload `(name, cgroup)` addresses among `live`: with a cgroup, the
/// copy started there; without, the only copy of that name.
pub fn find<'a>(
    live: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    name: &str,
    cgroup: Option<&str>,
) -> Result<usize, String> {
    let matches: Vec<(usize, Option<&str>)> = live
        .into_iter()
        .enumerate()
        .filter(|(_, (n, c))| *n == name && (cgroup.is_none() || *c == cgroup))
        .map(|(i, (_, c))| (i, c))
        .collect();
    let shown = |c: Option<&str>| c.map_or_else(|| "the runner's cgroup".to_owned(), |c| format!("cgroup {c:?}"));
    match matches.as_slice() {
        [(i, _)] => Ok(*i),
        [] => Err(format!(
            "payload {name:?}{} is not running: it was never started{} or a wait-payload / kill-payload already \
             consumed it",
            cgroup.map(|c| format!(" in cgroup {c:?}")).unwrap_or_default(),
            if cgroup.is_some() { " there" } else { "" },
        )),
        many => Err(format!(
            "payload {name:?} is ambiguous — {} copies run (in {}); specify the cgroup",
            many.len(),
            many.iter().map(|(_, c)| shown(*c)).collect::<Vec<_>>().join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_name_and_cgroup() {
        let live = [("fio", Some("a")), ("fio", Some("b")), ("stress", None), ("one", Some("a"))];
        let f = |name, cg| find(live.iter().copied(), name, cg);
        assert_eq!(f("fio", Some("b")), Ok(1));
        assert_eq!(f("stress", None), Ok(2));
        assert_eq!(f("one", None), Ok(3), "a unique copy is found without its cgroup");
        let e = f("fio", None).unwrap_err();
        assert!(e.contains("ambiguous") && e.contains("cgroup \"a\", cgroup \"b\"") && e.contains("specify"), "{e}");
        let e = f("fio", Some("c")).unwrap_err();
        assert!(e.contains("\"fio\" in cgroup \"c\" is not running"), "{e}");
        let e = f("stress", Some("a")).unwrap_err();
        assert!(e.contains("never started there"), "{e}");
        assert!(f("nope", None).unwrap_err().contains("never started or"));
    }

    #[test]
    fn tails_keep_the_last_bytes() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let t = drain(std::io::Cursor::new(data.clone()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !t.lock().unwrap().done && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(t.lock().unwrap().bytes, data[data.len() - TAIL..]);
    }
}
