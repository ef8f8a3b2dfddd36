//! At most one capture in flight: a freeze (pause … resume) and a
//! watchpoint capture (the gdbstub thread on qemu, the watch thread on kvm) each hold the gate while the guest
//! is stopped for them. Waiting for it is bounded.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::machine::MachineError;

/// How long a freeze waits for a capture in flight.
pub const FREEZE_WAIT: Duration = Duration::from_secs(5);
/// How long a watchpoint capture waits for a freeze in flight. Freezes take
/// milliseconds; the hitting vCPU stays stopped until the capture gets its turn.
pub const CAPTURE_WAIT: Duration = Duration::from_secs(60);

/// The holder's name while taken.
#[derive(Default)]
pub struct CaptureGate {
    holder: Mutex<Option<&'static str>>,
    freed: Condvar,
}

impl CaptureGate {
    /// Takes the gate for `who`, waiting at most `wait` for the current holder.
    pub fn enter(&self, who: &'static str, wait: Duration) -> Result<(), MachineError> {
        let deadline = Instant::now() + wait;
        let mut holder = self.holder.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(other) = *holder {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(MachineError::FreezeTimeout {
                    what: format!("{who} waiting for the {other} in flight"),
                    ms: wait.as_millis() as u64,
                    why: "at most one capture runs at a time; the other one is stuck".into(),
                });
            }
            holder = self.freed.wait_timeout(holder, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        *holder = Some(who);
        Ok(())
    }

    /// Frees the gate (a no-op when free).
    pub fn leave(&self) {
        *self.holder.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_second_capture_waits_then_times_out_naming_the_holder() {
        let g = CaptureGate::default();
        g.enter("watchpoint capture", Duration::ZERO).unwrap();
        let err = g.enter("freeze", Duration::from_millis(20)).unwrap_err().to_string();
        assert!(err.contains("freeze waiting for the watchpoint capture in flight") && err.contains("20 ms"), "{err}");
        g.leave();
        g.enter("freeze", Duration::ZERO).unwrap();
    }

    #[test]
    fn a_waiter_gets_the_gate_when_it_is_freed() {
        let g = Arc::new(CaptureGate::default());
        g.enter("freeze", Duration::ZERO).unwrap();
        let g2 = g.clone();
        let t = std::thread::spawn(move || g2.enter("watchpoint capture", Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(20));
        g.leave();
        t.join().unwrap().unwrap();
        assert!(g.enter("freeze", Duration::ZERO).is_err(), "the waiter holds it now");
    }
}
