//! Guest-initiated host-side ops: a process in the guest asks for a snapshot or a
//! kernel-memory read/write, and the host services it exactly as it does a scenario's
//! own op.
//!
//! The agent listens on the unix socket [`SOCKET`]. A client sends one JSON line per
//! request — an op as the op stream spells it, e.g. `{"op":"capture-snapshot","name":"s"}`
//! — and reads one JSON line back: `{"ok":{...}}` (the reads, snapshots and rendezvous
//! the op produced) or `{"error":"..."}`. Only host-side kinds are accepted, and only
//! while a scenario runs. The agent forwards each request to the host as an unsolicited
//! [`AgentMessage::HostOpRequest`] and relays the host's [`RequestBody::HostOpReply`].
//! The client blocks on its socket, never the agent's request loop; every wait is
//! bounded.
//!
//! `/init host-op ...` is a tiny client (see [`client_main`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use schedbox_ops::{KernelTarget, KernelValueWidth, Op};
use schedbox_wire::{is_host_side, write_msg, AgentMessage, HostOpOutput};
use serde::{Deserialize, Serialize};

/// Where the agent listens for guest requests.
pub const SOCKET: &str = "/run/schedbox/host-ops.sock";
/// `/init host-op ...` runs the client.
pub const ARG: &str = "host-op";
/// How long a request may wait for the host's answer (the host services guest
/// requests between ops and during holds, not while it waits on a blocking guest op
/// such as `wait-payload`).
pub const HOST_WAIT: Duration = Duration::from_secs(60);
/// How long the agent waits for a connected client's request line.
const CLIENT_IDLE: Duration = Duration::from_secs(30);
/// Longest request line accepted.
const MAX_LINE: u64 = 1 << 20;

/// The agent's end of the data channel, shared by the request loop and the forwarder:
/// one frame at a time.
pub type Writer = Arc<Mutex<File>>;

/// One reply line on the socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reply {
    Ok(HostOpOutput),
    Error(String),
}

type Answer = Result<HostOpOutput, String>;

#[derive(Default)]
struct State {
    /// Between a successful `BeginScenario` and `EndScenario` / `Reset`.
    active: bool,
    next_id: u64,
    /// Requests forwarded to the host, by id: where the answer goes.
    pending: HashMap<u64, Sender<Answer>>,
    /// Why the host cannot service requests now (it waits on a blocking guest op).
    blocked: Option<String>,
}

/// Matches the host's replies to the clients waiting for them.
#[derive(Default)]
pub struct Broker {
    state: Mutex<State>,
}

impl Broker {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A scenario starts (`true`) or ends (`false`); ending fails every request the
    /// host has not answered.
    pub fn set_active(&self, active: bool) {
        let mut s = self.state();
        s.active = active;
        if !active {
            for (id, tx) in s.pending.drain() {
                let _ = tx.send(Err(format!("the scenario ended before the host serviced request {id}")));
            }
        }
    }

    /// The host is about to wait on a guest op that blocks until a guest process acts
    /// (`wait-payload`): fail what is pending and refuse new requests with `why` until
    /// [`Broker::unblock`], so a client cannot hold up the op it is part of.
    pub fn block(&self, why: &str) {
        let mut s = self.state();
        s.blocked = Some(why.to_owned());
        for (id, tx) in s.pending.drain() {
            let _ = tx.send(Err(format!("request {id}: {why}")));
        }
    }

    /// Ends a [`Broker::block`].
    pub fn unblock(&self) {
        self.state().blocked = None;
    }

    /// Hands the host's answer to request `id` to its client.
    pub fn reply(&self, id: u64, result: Answer) -> Result<(), String> {
        let tx = self.state().pending.remove(&id);
        match tx {
            Some(tx) => tx.send(result).map_err(|_| format!("the client of host-op request {id} went away")),
            None => Err(format!("no client waits for host-op request {id} (it timed out, or the scenario ended)")),
        }
    }

    /// Forwards `op` to the host; the receiver gets the answer.
    fn submit(&self, writer: &Writer, op: Op) -> Result<(u64, Receiver<Answer>), String> {
        if !is_host_side(&op) {
            return Err(format!(
                "{} is not a host-side op: a guest process may ask only for read-kernel-hot/cold, \
                 write-kernel-hot/cold, capture-snapshot or watch-snapshot",
                op.kind().wit_name()
            ));
        }
        let (tx, rx) = mpsc::channel();
        let id = {
            let mut s = self.state();
            if !s.active {
                return Err("no scenario is running: host-side ops are serviced only during a scenario".into());
            }
            if let Some(why) = &s.blocked {
                return Err(why.clone());
            }
            s.next_id += 1;
            let id = s.next_id;
            s.pending.insert(id, tx);
            id
        };
        let sent = {
            let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
            write_msg(&mut *w, &AgentMessage::HostOpRequest { id, op })
        };
        if let Err(e) = sent {
            self.state().pending.remove(&id);
            return Err(format!("forwarding to the host: {e}"));
        }
        Ok((id, rx))
    }

    /// Forwards `op` and waits (bounded) for the host's answer.
    fn ask(&self, writer: &Writer, op: Op) -> Answer {
        let (id, rx) = self.submit(writer, op)?;
        match rx.recv_timeout(HOST_WAIT) {
            Ok(answer) => answer,
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                self.state().pending.remove(&id);
                Err(format!(
                    "the host did not answer request {id} within {} s (it services guest requests between ops \
                     and during holds; a blocking op such as wait-payload delays them)",
                    HOST_WAIT.as_secs()
                ))
            }
        }
    }
}

/// Binds [`SOCKET`] and serves clients on background threads.
pub fn listen(broker: Arc<Broker>, writer: Writer) -> Result<(), String> {
    let path = std::path::Path::new(SOCKET);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(|e| format!("binding {SOCKET}: {e}"))?;
    std::thread::Builder::new()
        .name("host-ops".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else {
                    // E.g. out of descriptors: let client threads finish before retrying.
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                let (broker, writer) = (broker.clone(), writer.clone());
                let _ = std::thread::Builder::new().name("host-op-client".into()).spawn(move || {
                    serve_client(&broker, &writer, conn);
                });
            }
        })
        .map_err(|e| format!("starting the host-ops listener: {e}"))?;
    Ok(())
}

/// Answers each request line of one client until it closes the connection.
fn serve_client(broker: &Broker, writer: &Writer, conn: UnixStream) {
    let _ = conn.set_read_timeout(Some(CLIENT_IDLE));
    let Ok(mut out) = conn.try_clone() else { return };
    let mut lines = BufReader::new(std::io::Read::take(conn, MAX_LINE));
    loop {
        let mut line = String::new();
        match lines.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Op>(line.trim()) {
            Ok(op) => match broker.ask(writer, op) {
                Ok(out) => Reply::Ok(out),
                Err(e) => Reply::Error(e),
            },
            Err(e) => Reply::Error(format!("not an op: {e}")),
        };
        let Ok(mut text) = serde_json::to_string(&reply) else { return };
        text.push('\n');
        if out.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

const USAGE: &str = "usage: /init host-op capture-snapshot NAME\n\
       /init host-op read-kernel-cold|read-kernel-hot TAG SYMBOL [u32|u64]\n\
       /init host-op watch-snapshot SYMBOL\n\
       /init host-op json '{\"op\":\"...\", ...}'";

/// The op the client's arguments name.
fn op_of(args: &[String]) -> Result<Op, String> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let width = |w: Option<&&str>| match w.copied() {
        None | Some("u64") => Ok(KernelValueWidth::U64),
        Some("u32") => Ok(KernelValueWidth::U32),
        Some(other) => Err(format!("width {other:?}: expected u32 or u64")),
    };
    match a.as_slice() {
        ["capture-snapshot", name] => Ok(Op::capture_snapshot(*name)),
        ["watch-snapshot", symbol] => Ok(Op::watch_snapshot(*symbol)),
        [kind @ ("read-kernel-cold" | "read-kernel-hot"), tag, symbol, rest @ ..] if rest.len() <= 1 => {
            let (target, width) = (KernelTarget::symbol(*symbol), width(rest.first())?);
            Ok(if *kind == "read-kernel-cold" {
                Op::read_kernel_cold(*tag, target, width)
            } else {
                Op::read_kernel_hot(*tag, target, width)
            })
        }
        ["json", text] => serde_json::from_str(text).map_err(|e| format!("not an op: {e}")),
        _ => Err(USAGE.to_owned()),
    }
}

/// `/init host-op ARGS`: sends one request to the agent, prints the reply line on
/// stdout; exits 0 when the op succeeded, 1 (the error also on stderr) otherwise.
pub fn client_main(args: &[String]) -> ! {
    let code = match client(args) {
        Ok(reply) => {
            println!("{reply}");
            match serde_json::from_str::<Reply>(&reply) {
                Ok(Reply::Ok(_)) => 0,
                Ok(Reply::Error(e)) => {
                    eprintln!("host-op: {e}");
                    1
                }
                Err(e) => {
                    eprintln!("host-op: unreadable reply: {e}");
                    1
                }
            }
        }
        Err(e) => {
            eprintln!("host-op: {e}");
            2
        }
    };
    std::process::exit(code)
}

fn client(args: &[String]) -> Result<String, String> {
    let op = op_of(args)?;
    let mut conn = UnixStream::connect(SOCKET).map_err(|e| format!("connecting to {SOCKET}: {e}"))?;
    // The agent's own wait is bounded by HOST_WAIT; allow for the relay on top.
    conn.set_read_timeout(Some(HOST_WAIT + Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let mut line = serde_json::to_string(&op).map_err(|e| e.to_string())?;
    line.push('\n');
    conn.write_all(line.as_bytes()).map_err(|e| format!("sending to {SOCKET}: {e}"))?;
    let mut reply = String::new();
    BufReader::new(conn).read_line(&mut reply).map_err(|e| format!("waiting for the agent's reply: {e}"))?;
    if reply.is_empty() {
        return Err("the agent closed the connection without a reply".into());
    }
    Ok(reply.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn client_arguments_name_host_side_ops() {
        assert_eq!(op_of(&args(&["capture-snapshot", "s"])).unwrap(), Op::capture_snapshot("s"));
        assert_eq!(
            op_of(&args(&["read-kernel-cold", "j", "jiffies_64", "u64"])).unwrap(),
            Op::read_kernel_cold("j", KernelTarget::symbol("jiffies_64"), KernelValueWidth::U64)
        );
        assert_eq!(
            op_of(&args(&["read-kernel-hot", "j", "jiffies", "u32"])).unwrap(),
            Op::read_kernel_hot("j", KernelTarget::symbol("jiffies"), KernelValueWidth::U32)
        );
        assert!(op_of(&args(&["read-kernel-cold", "j", "x", "u8"])).unwrap_err().contains("u8"));
        assert!(op_of(&args(&["nope"])).unwrap_err().starts_with("usage"));
        let json = op_of(&args(&["json", r#"{"op":"add-cgroup","name":"x"}"#])).unwrap();
        assert_eq!(json, Op::add_cgroup("x"));
        // The form the README documents for the socket.
        let line = r#"{"op":"read-kernel-cold","tag":"j","target":{"symbol":"jiffies_64"},"width":"u64"}"#;
        assert_eq!(
            serde_json::from_str::<Op>(line).unwrap(),
            Op::read_kernel_cold("j", KernelTarget::symbol("jiffies_64"), KernelValueWidth::U64)
        );
        assert_eq!(
            serde_json::to_string(&Op::capture_snapshot("s")).unwrap(),
            r#"{"op":"capture-snapshot","name":"s"}"#
        );
    }

    #[test]
    fn guest_side_ops_and_requests_outside_a_scenario_are_refused() {
        let b = Broker::default();
        let w: Writer = Arc::new(Mutex::new(File::open("/dev/null").unwrap()));
        let err = b.submit(&w, Op::add_cgroup("x")).unwrap_err();
        assert!(err.contains("add-cgroup is not a host-side op"), "{err}");
        let err = b.submit(&w, Op::capture_snapshot("s")).unwrap_err();
        assert!(err.contains("no scenario is running"), "{err}");
        assert!(b.reply(7, Ok(HostOpOutput::default())).unwrap_err().contains("request 7"));
    }

    #[test]
    fn ending_the_scenario_fails_what_is_pending() {
        let b = Broker::default();
        b.set_active(true);
        let w: Writer = Arc::new(Mutex::new(std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap()));
        let (id, rx) = b.submit(&w, Op::capture_snapshot("s")).unwrap();
        b.set_active(false);
        let err = rx.recv().unwrap().unwrap_err();
        assert!(err.contains(&format!("request {id}")), "{err}");
        assert!(b.reply(id, Ok(HostOpOutput::default())).is_err());

        b.set_active(true);
        let (id, rx) = b.submit(&w, Op::capture_snapshot("s")).unwrap();
        b.block("waiting on wait-payload");
        assert_eq!(rx.recv().unwrap().unwrap_err(), format!("request {id}: waiting on wait-payload"));
        assert_eq!(b.submit(&w, Op::capture_snapshot("s")).unwrap_err(), "waiting on wait-payload");
        b.unblock();
        assert!(b.submit(&w, Op::capture_snapshot("s")).is_ok());
    }
}
