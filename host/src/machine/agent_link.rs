//! The host end of the agent channel: framed requests out, and a reader
//! thread turning frames in into messages, so waits can be bounded and can
//! watch the VM at the same time. Unsolicited guest requests for host-side ops
//! ([`AgentMessage::HostOpRequest`]) go to a queue of their own, which the executor
//! drains ([`AgentLink::take_guest_requests`]) and answers with `HostOpReply`.

use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use schedbox_wire::{read_msg, write_msg, AgentMessage, GuestFacts, Request, RequestBody, ResponseBody, WireError};

use super::MachineError;

/// A guest process's request for a host-side op, forwarded by the agent.
#[derive(Clone, Debug, PartialEq)]
pub struct GuestRequest {
    /// The agent's id: the `HostOpReply` must carry it.
    pub id: u64,
    pub op: schedbox_ops::Op,
}

/// What the waiting side checks between polls: is the VM still alive?
pub type Liveness<'a> = &'a mut dyn FnMut() -> Result<(), MachineError>;

/// Request/response link to the guest agent.
pub struct AgentLink {
    writer: UnixStream,
    inbox: Receiver<Result<AgentMessage, WireError>>,
    guest_requests: Receiver<GuestRequest>,
    next_id: u64,
    timeout: Duration,
    /// Set after a timeout or a broken frame: later requests fail at once.
    broken: Option<String>,
    /// The bound of the request being waited for (for the timeout's message).
    waited: Duration,
    console: super::Console,
}

const POLL: Duration = Duration::from_millis(100);

impl AgentLink {
    /// Wraps a connected stream; starts the reader thread.
    pub fn new(stream: UnixStream, timeout: Duration, console: super::Console) -> std::io::Result<Self> {
        let mut reader = stream.try_clone()?;
        let (tx, inbox) = mpsc::channel();
        let (guest_tx, guest_requests) = mpsc::channel();
        std::thread::Builder::new().name("agent-reader".into()).spawn(move || loop {
            let msg = read_msg::<_, AgentMessage>(&mut reader);
            if let Ok(AgentMessage::HostOpRequest { id, op }) = msg {
                tracing::debug!("guest request {id}: {}", op.kind().wit_name());
                // Nobody drains it once the link is gone; the agent times the client out.
                let _ = guest_tx.send(GuestRequest { id, op });
                continue;
            }
            let stop = msg.is_err();
            if tx.send(msg).is_err() || stop {
                break;
            }
        })?;
        Ok(Self { writer: stream, inbox, guest_requests, next_id: 1, timeout, broken: None, waited: timeout, console })
    }

    /// The guest requests for host-side ops received so far, oldest first; never blocks.
    pub fn take_guest_requests(&mut self) -> Vec<GuestRequest> {
        let mut out = Vec::new();
        loop {
            match self.guest_requests.try_recv() {
                Ok(r) => out.push(r),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return out,
            }
        }
    }

    fn recv(&mut self, what: &str, deadline: Instant, alive: Liveness<'_>) -> Result<AgentMessage, MachineError> {
        loop {
            alive()?;
            if let Some(signal) = crate::interrupt::received() {
                return Err(MachineError::Interrupted { signal: crate::interrupt::name(signal) });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.timed_out(what, deadline));
            }
            match self.inbox.recv_timeout(POLL.min(deadline - now)) {
                Ok(Ok(msg)) => return Ok(msg),
                Ok(Err(e)) => {
                    self.broken = Some(e.to_string());
                    alive()?;
                    return Err(e.into());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    alive()?;
                    return Err(WireError::Closed.into());
                }
            }
        }
    }

    fn timed_out(&mut self, what: &str, deadline: Instant) -> MachineError {
        let secs = self.waited.as_secs().max(1);
        self.broken = Some(format!("timed out waiting for {what}"));
        let _ = deadline;
        MachineError::AgentTimeout { what: what.to_owned(), secs, console: self.console.tail(20) }
    }

    /// Waits for the agent's `Ready` until `deadline`.
    pub fn wait_ready(&mut self, deadline: Instant, alive: Liveness<'_>) -> Result<GuestFacts, MachineError> {
        loop {
            match self.recv("Ready", deadline, alive)? {
                AgentMessage::Ready(facts) => return Ok(facts),
                other => tracing::warn!("agent sent {other:?} before Ready; ignored"),
            }
        }
    }

    /// Why the link is down (a timeout or a broken frame), if it is.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Sends `body` and waits for its answer (bounded by the link's timeout).
    pub fn request(&mut self, body: RequestBody, alive: Liveness<'_>) -> Result<ResponseBody, MachineError> {
        let timeout = self.timeout;
        self.request_within(body, timeout, alive)
    }

    /// [`Self::request`] bounded by `timeout` instead of the link's (wait-payload).
    pub fn request_within(
        &mut self,
        body: RequestBody,
        timeout: Duration,
        alive: Liveness<'_>,
    ) -> Result<ResponseBody, MachineError> {
        if let Some(why) = &self.broken {
            return Err(MachineError::Agent {
                what: format!("{body:?}"),
                message: format!("the link is down ({why})"),
            });
        }
        let id = self.next_id;
        self.next_id += 1;
        let what = format!("{body:?}");
        write_msg(&mut self.writer, &Request { id, body })?;
        self.waited = timeout;
        let deadline = Instant::now() + timeout;
        loop {
            match self.recv(&what, deadline, alive)? {
                AgentMessage::Response { id: got, result } if got == id => {
                    return result.map_err(|message| MachineError::Agent { what, message });
                }
                other => tracing::warn!("unexpected agent message {other:?} while waiting for request {id}"),
            }
        }
    }

    /// Sends `body` without waiting for an answer.
    pub fn send(&mut self, body: RequestBody) -> Result<(), MachineError> {
        let id = self.next_id;
        self.next_id += 1;
        write_msg(&mut self.writer, &Request { id, body })?;
        Ok(())
    }
}
