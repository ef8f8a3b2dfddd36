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

use std::time::{Duration, Instant};

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
            if let Err(why) = self.guest_budget.take(t0) {
                if let Err(e) = self.reply(req.id, Err(why.clone())) {
                    tracing::debug!("{e}");
                }
                if self.guest_budget.note_refusal() {
                    self.notes.push(format!("guest-initiated {kind} (request {}): refused: {why}", req.id));
                }
                continue;
            }
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

/// Most guest requests one scenario's processes may have run; later ones are refused.
pub const MAX_GUEST_REQUESTS: u32 = 1_000;
/// Guest requests served per second, sustained; a burst of twice that is allowed.
pub const GUEST_REQUESTS_PER_SEC: f64 = 50.0;
/// Refusals noted one by one in the notes; later ones are only counted.
const NOTED_REFUSALS: u32 = 20;

/// The bound on guest requests of one scenario: a total cap and a token-bucket rate, so a
/// payload flooding the socket cannot grow the results, the notes and the report without
/// end, nor hold the executor in freeze rendezvous.
pub(super) struct Budget {
    served: u32,
    refused: u32,
    tokens: f64,
    last: Instant,
}

impl Budget {
    pub(super) fn new(now: Instant) -> Self {
        Self { served: 0, refused: 0, tokens: 2.0 * GUEST_REQUESTS_PER_SEC, last: now }
    }

    /// Takes one request's allowance at `now`, or says why there is none.
    pub(super) fn take(&mut self, now: Instant) -> Result<(), String> {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * GUEST_REQUESTS_PER_SEC).min(2.0 * GUEST_REQUESTS_PER_SEC);
        let refused = if self.served >= MAX_GUEST_REQUESTS {
            format!("this scenario's guest processes already had {MAX_GUEST_REQUESTS} host-side ops run (the cap)")
        } else if self.tokens < 1.0 {
            format!(
                "more than {GUEST_REQUESTS_PER_SEC} host-side ops per second asked from the guest (the rate bound); \
                 retry after {:?}",
                Duration::from_secs_f64((1.0 - self.tokens) / GUEST_REQUESTS_PER_SEC)
            )
        } else {
            self.tokens -= 1.0;
            self.served += 1;
            return Ok(());
        };
        self.refused += 1;
        Err(refused)
    }

    /// Counts a refusal's note: `true` while it should still be written out.
    fn note_refusal(&self) -> bool {
        self.refused <= NOTED_REFUSALS
    }

    /// Adds one note for the refusals not noted one by one.
    pub(super) fn summarise(&self, notes: &mut Vec<String>) {
        if self.refused > NOTED_REFUSALS {
            notes.push(format!(
                "{} more guest-initiated requests were refused by the cap or rate bound (not listed)",
                self.refused - NOTED_REFUSALS
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_burst_then_the_rate_and_the_cap() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0);
        let burst = (0..1000).filter(|_| b.take(t0).is_ok()).count();
        assert_eq!(burst, 2 * GUEST_REQUESTS_PER_SEC as usize);
        let err = b.take(t0).unwrap_err();
        assert!(err.contains("per second"), "{err}");
        // One second later, one second's worth more.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..1000).filter(|_| b.take(t1).is_ok()).count(), GUEST_REQUESTS_PER_SEC as usize);
        // However slowly they come, the cap holds.
        let mut t = t1 + Duration::from_secs(1);
        let mut served = 150;
        while b.take(t).is_ok() {
            served += 1;
            t += Duration::from_secs(1);
        }
        assert_eq!(served, MAX_GUEST_REQUESTS as usize);
        assert!(b.take(t + Duration::from_secs(60)).unwrap_err().contains("the cap"));
        let mut notes = Vec::new();
        b.summarise(&mut notes);
        assert_eq!(notes.len(), 1, "{notes:?}");
    }
}
