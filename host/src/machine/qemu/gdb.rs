//! QEMU's gdbstub over the gdb remote serial protocol: hardware data-write
//! watchpoints (`Z2`/`z2`) and monitor commands (`qRcmd`).
//!
//! Two threads serve one connection. The reader splits the byte stream into
//! packets: stop replies (`T…`) go to the worker, everything else answers the
//! command in flight. The worker turns a `T05…watch:ADDR;` stop into a
//! capture: it takes the [`CaptureGate`], reads every vCPU's registers,
//! runs the watch's handler on guest RAM, then resumes the guest. Every other
//! stop (a QMP `stop` shows up here as `T02`) is ignored: QMP owns pause/resume.
//!
//! QEMU's gdbstub treats any byte that arrives while the guest runs as an
//! interrupt (it stops the guest and drops the byte), so packets are sent only
//! while the guest is stopped. For the same reason the worker resumes with the
//! monitor's `cont` through `qRcmd` rather than a bare `c`: `qRcmd` is answered
//! after the guest runs again, so the gate is never freed while a resume is
//! still in flight (a later freeze would race it). QEMU stops the guest when a
//! gdb client connects.

use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::registers::parse_info_registers;
use crate::machine::capture_gate::CaptureGate;
use crate::machine::capture_gate::CAPTURE_WAIT;
use crate::machine::{GuestRam, MachineError, WatchHandler, WatchHit};

/// How long a command may wait for its answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// `$data#cs`.
fn frame(data: &str) -> Vec<u8> {
    let sum = data.bytes().fold(0u8, |a, b| a.wrapping_add(b));
    format!("${data}#{sum:02x}").into_bytes()
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

/// The watched address of a stop reply (`T05thread:p01.01;watch:ffff…;`), if a
/// watchpoint stopped the guest.
pub fn watch_address(stop: &str) -> Option<u64> {
    let rest = stop.strip_prefix('T')?;
    rest.get(2..)?.split(';').find_map(|kv| {
        let (k, v) = kv.split_once(':')?;
        matches!(k, "watch" | "rwatch" | "awatch").then(|| u64::from_str_radix(v, 16).ok()).flatten()
    })
}

/// Splits a gdb byte stream into packet payloads (`+` acks dropped, `}` escapes undone).
#[derive(Default)]
struct Parser {
    buf: Vec<u8>,
    /// 0: between packets; 1: in a packet; 2 and 3: reading the checksum.
    state: u8,
    escaped: bool,
}

impl Parser {
    fn push(&mut self, b: u8) -> Option<String> {
        match self.state {
            0 => {
                if b == b'$' {
                    self.buf.clear();
                    self.state = 1;
                }
                None
            }
            1 => {
                if self.escaped {
                    self.buf.push(b ^ 0x20);
                    self.escaped = false;
                } else if b == b'}' {
                    self.escaped = true;
                } else if b == b'#' {
                    self.state = 2;
                } else {
                    self.buf.push(b);
                }
                None
            }
            2 => {
                self.state = 3;
                None
            }
            _ => {
                self.state = 0;
                Some(String::from_utf8_lossy(&self.buf).into_owned())
            }
        }
    }
}

/// One armed watchpoint.
struct Watch {
    addr: u64,
    len: u64,
    handler: WatchHandler,
}

/// The command side of the connection: one command at a time.
struct Conn {
    writer: UnixStream,
    replies: Receiver<String>,
}

impl Conn {
    fn send(&mut self, data: &str) -> Result<(), MachineError> {
        self.writer.write_all(&frame(data)).map_err(|e| MachineError::Gdb(format!("sending {data:?}: {e}")))
    }

    /// Sends `data` and returns the final answer plus any `O` (console output) packets, decoded.
    fn command(&mut self, data: &str) -> Result<(String, String), MachineError> {
        while self.replies.try_recv().is_ok() {}
        self.send(data)?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let mut output = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.replies.recv_timeout(left) {
                Ok(r) if r.starts_with('O') && r != "OK" => output.extend(hex_decode(&r[1..])),
                Ok(r) => return Ok((r, String::from_utf8_lossy(&output).into_owned())),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(MachineError::Gdb(format!("no answer to {data:?} within {REPLY_TIMEOUT:?}")))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(MachineError::Gdb(format!("the gdbstub closed the connection during {data:?}")))
                }
            }
        }
    }

    fn expect_ok(&mut self, data: &str) -> Result<(), MachineError> {
        match self.command(data)?.0.as_str() {
            "OK" => Ok(()),
            "" => Err(MachineError::Gdb(format!("{data:?} is not supported by this QEMU's gdbstub"))),
            other => Err(MachineError::Gdb(format!("{data:?} answered {other:?}"))),
        }
    }

    /// Runs an HMP command through `qRcmd` and returns what it printed.
    fn monitor(&mut self, cmd: &str) -> Result<String, MachineError> {
        let (r, out) = self.command(&format!("qRcmd,{}", hex::encode(cmd)))?;
        if r != "OK" {
            return Err(MachineError::Gdb(format!("monitor command {cmd:?} answered {r:?}")));
        }
        Ok(out)
    }
}

/// A connection to QEMU's gdbstub with its reader and watch worker threads.
pub struct Gdb {
    conn: Arc<Mutex<Conn>>,
    watches: Arc<Mutex<Vec<Watch>>>,
    stream: UnixStream,
    reader: Option<JoinHandle<()>>,
}

impl Gdb {
    /// Connects to the gdbstub at `path` (QEMU stops the guest on connect; the
    /// caller resumes it).
    pub fn connect(path: &Path, gate: Arc<CaptureGate>, ram: Arc<GuestRam>) -> Result<Self, MachineError> {
        let stream =
            UnixStream::connect(path).map_err(|e| MachineError::Gdb(format!("connecting {}: {e}", path.display())))?;
        let (reply_tx, replies) = mpsc::channel();
        let (stop_tx, stops) = mpsc::channel();
        let reader_stream = stream.try_clone()?;
        let reader = std::thread::Builder::new()
            .name("gdb-reader".into())
            .spawn(move || read_packets(reader_stream, reply_tx, stop_tx))?;
        let conn = Arc::new(Mutex::new(Conn { writer: stream.try_clone()?, replies }));
        let watches: Arc<Mutex<Vec<Watch>>> = Arc::default();
        let (wconn, wwatches) = (conn.clone(), watches.clone());
        std::thread::Builder::new()
            .name("gdb-watch".into())
            .spawn(move || serve_stops(stops, wconn, wwatches, gate, ram))?;
        let gdb = Self { conn, watches, stream, reader: Some(reader) };
        // QEMU acks our packets and, outside user mode, never waits for our acks.
        let (features, _) = gdb.lock().command("qSupported")?;
        if !features.contains("PacketSize") {
            return Err(MachineError::Gdb(format!("unexpected qSupported answer {features:?}")));
        }
        Ok(gdb)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Conn> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts a write watchpoint on every vCPU (`Z2`).
    pub fn insert_watch(&self, addr: u64, len: u64, handler: WatchHandler) -> Result<(), MachineError> {
        let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        self.lock().expect_ok(&format!("Z2,{addr:x},{len:x}"))?;
        watches.push(Watch { addr, len, handler });
        Ok(())
    }

    /// Removes every watchpoint (`z2`); no handler runs after this returns.
    pub fn remove_watches(&self) -> Result<(), MachineError> {
        let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        let mut first_err = None;
        for w in watches.drain(..) {
            if let Err(e) = self.lock().expect_ok(&format!("z2,{:x},{:x}", w.addr, w.len)) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// How many watchpoints are armed.
    pub fn armed(&self) -> usize {
        self.watches.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for Gdb {
    /// Closes the connection; the reader ends at once, the worker when its stop
    /// queue drains (it is not joined: it may wait for the capture gate).
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// The reader thread: routes stop replies to `stops`, the rest to `replies`.
fn read_packets(stream: UnixStream, replies: Sender<String>, stops: Sender<(String, Instant)>) {
    let mut parser = Parser::default();
    for byte in BufReader::new(stream).bytes() {
        let Ok(b) = byte else { break };
        if let Some(p) = parser.push(b) {
            let sent = if p.starts_with('T') || p.starts_with('S') {
                stops.send((p, Instant::now())).is_ok()
            } else {
                replies.send(p).is_ok()
            };
            if !sent {
                break;
            }
        }
    }
    tracing::debug!("gdbstub connection closed");
}

/// The worker thread: captures on watch stops, then continues the guest.
fn serve_stops(
    stops: Receiver<(String, Instant)>,
    conn: Arc<Mutex<Conn>>,
    watches: Arc<Mutex<Vec<Watch>>>,
    gate: Arc<CaptureGate>,
    ram: Arc<GuestRam>,
) {
    for (stop, at) in stops {
        // SIGTRAP (`T05`): a debug stop, which only this worker resumes. Any
        // other stop (`T02` from a QMP `stop`) belongs to whoever paused.
        if !stop.starts_with("T05") {
            tracing::trace!("gdbstub stop {stop:?} ignored");
            continue;
        }
        if let Err(e) = gate.enter("watchpoint capture", CAPTURE_WAIT) {
            // Whoever holds the gate decides whether the guest runs; a blind
            // resume could reach a running guest and stop it instead.
            tracing::error!("debug stop {stop:?}, no capture taken and the guest not resumed: {e}");
            continue;
        }
        match watch_address(&stop) {
            Some(addr) => capture(addr, at, &conn, &watches, &ram),
            None => tracing::debug!("debug stop {stop:?} without a watchpoint: resuming"),
        }
        let resumed = conn.lock().unwrap_or_else(|p| p.into_inner()).monitor("cont");
        gate.leave();
        if let Err(e) = resumed {
            tracing::error!("resuming the guest after {stop:?}: {e}");
        }
    }
}

fn capture(addr: u64, at: Instant, conn: &Mutex<Conn>, watches: &Mutex<Vec<Watch>>, ram: &GuestRam) {
    let regs = conn.lock().unwrap_or_else(|p| p.into_inner()).monitor("info registers -a");
    let vcpus = match regs {
        Ok(text) => parse_info_registers(&text),
        Err(e) => {
            tracing::warn!("registers at the watchpoint hit at {addr:#x}: {e}");
            Vec::new()
        }
    };
    let mut watches = watches.lock().unwrap_or_else(|p| p.into_inner());
    match watches.iter_mut().find(|w| addr >= w.addr && addr < w.addr + w.len.max(1)) {
        Some(w) => (w.handler)(WatchHit { addr: w.addr, at, vcpus, ram }),
        None => tracing::debug!("watchpoint stop at {addr:#x} after it was removed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_checksum() {
        assert_eq!(frame("OK"), b"$OK#9a");
        assert_eq!(frame("Z2,ffffffff82a05c00,4"), b"$Z2,ffffffff82a05c00,4#3b");
    }

    #[test]
    fn the_parser_splits_packets_and_undoes_escapes() {
        let mut p = Parser::default();
        let out: Vec<String> = b"+$OK#9a+$T05thread:p01.01;watch:ffffffff82a05c00;#xx$a}\x03b#00"
            .iter()
            .filter_map(|&b| p.push(b))
            .collect();
        assert_eq!(out, ["OK", "T05thread:p01.01;watch:ffffffff82a05c00;", "a#b"]);
    }

    #[test]
    fn watch_stops_are_told_from_other_stops() {
        assert_eq!(watch_address("T05thread:p01.02;watch:ffffffff82a05c00;"), Some(0xffffffff82a05c00));
        assert_eq!(watch_address("T05thread:p01.01;awatch:1000;"), Some(0x1000));
        assert_eq!(watch_address("T02thread:p01.01;"), None);
        assert_eq!(watch_address("OK"), None);
    }

    #[test]
    fn monitor_output_is_hex_decoded() {
        assert_eq!(hex_decode("43505523300d0a"), b"CPU#0\r\n");
    }
}
