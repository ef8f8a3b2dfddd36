//! Guest-initiated host-side ops: a guest process asks the agent (unix socket
//! `/run/schedbox/host-ops.sock`), the agent forwards the op, and the executor runs it
//! here with the very code of a scenario's own host-side op ([`Run::host_side`]) —
//! between ops and during holds — then sends the outcome back with `HostOpReply`.
//! Its reads and snapshots land in the scenario's results like host-initiated ones;
//! a note marks each as guest-initiated.
//!
//! Kernel writes are refused: the run's policy (`[kernel] writes`) is checked against
//! the scenario's own op stream at plan time, and a payload the scenario starts must
//! not get around it. Kernel reads, snapshots and watches follow the run's
//! [`GuestGrants`](super::GuestGrants): refused where the policy's `reads = false`
//! applies to the component.

use schedbox_wire::{is_host_side, HostOpOutput, RequestBody};

use super::Run;
use crate::machine::GuestRequest;
use crate::op_model::Op;
use crate::validate::check_op_args;

impl Run<'_> {
    /// Runs every queued guest request and answers it. Failures go to the asking
    /// client (and the notes), never to the step.
    pub(super) fn serve_guest_requests(&mut self) {
        for req in self.m.guest_requests() {
            let kind = req.op.kind().wit_name();
            let t0 = std::time::Instant::now();
            let result = self.run_guest_request(&req);
            let us = t0.elapsed().as_micros();
            let note = match &result {
                Ok(out) => format!(
                    "guest-initiated {kind} (request {}): ok in {us} µs, {} rendezvous{}",
                    req.id,
                    out.rendezvous,
                    describe(out)
                ),
                Err(e) => format!("guest-initiated {kind} (request {}): refused: {e}", req.id),
            };
            let note = match self.reply(req.id, result) {
                Ok(()) => note,
                Err(e) => format!("{note}; the answer did not reach the client: {e}"),
            };
            tracing::debug!("{note}");
            self.notes.push(note);
        }
    }

    /// Answers every queued guest request with `why` (no scenario to run them in).
    pub(super) fn refuse_guest_requests(&mut self, why: &str) {
        for req in self.m.guest_requests() {
            tracing::debug!("guest request {} refused: {why}", req.id);
            if let Err(e) = self.reply(req.id, Err(why.to_owned())) {
                tracing::debug!("{e}");
            }
        }
    }

    fn run_guest_request(&mut self, req: &GuestRequest) -> Result<HostOpOutput, String> {
        let kind = req.op.kind().wit_name();
        if !is_host_side(&req.op) {
            return Err(format!("{kind} is not a host-side op"));
        }
        if matches!(req.op, Op::WriteKernelHot { .. } | Op::WriteKernelCold { .. }) {
            return Err(format!(
                "{kind} is refused from the guest: kernel writes are governed by the run's policy, which only \
                 the scenario's own op stream is checked against; put the write in the scenario"
            ));
        }
        if let Some(why) = &self.grants.reads_refused {
            return Err(format!("{kind} is refused from the guest: {why}"));
        }
        // The argument checks a scenario's op passes before it is placed in a stream.
        check_op_args(&req.op, None).map_err(|p| format!("{}; {}", p.message, p.fix))?;
        let (reads, snaps, rdv) =
            (self.results.kernel_reads.len(), self.results.snapshots.len(), self.monitor.rendezvous);
        self.host_side(&req.op).unwrap_or_else(|| Err("not a host-side op".into()))?;
        Ok(HostOpOutput {
            reads: self.results.kernel_reads[reads..].to_vec(),
            snapshots: self.results.snapshots[snaps..].to_vec(),
            rendezvous: self.monitor.rendezvous - rdv,
        })
    }

    /// Sends the answer; `Err` when the agent could not hand it on (the client gave up,
    /// its wait being bounded, or the scenario's end or a `wait-payload` failed it).
    fn reply(&mut self, id: u64, result: Result<HostOpOutput, String>) -> Result<(), String> {
        self.m.request(RequestBody::HostOpReply { id, result }).map(|_| ()).map_err(|e| {
            tracing::warn!("answering guest request {id}: {e}");
            e.to_string()
        })
    }
}

/// What an output holds, for the note: `, read jiffies = U64(4294)`, `, snapshot "s"`.
fn describe(out: &HostOpOutput) -> String {
    let mut s = String::new();
    for r in &out.reads {
        s.push_str(&format!(", read {} = {:?}", r.tag, r.value));
    }
    for snap in &out.snapshots {
        s.push_str(&format!(", snapshot {:?}", snap.name));
    }
    s
}
