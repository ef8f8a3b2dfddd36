//! SIGINT, SIGTERM and SIGHUP as a request to stop, not an instant exit.
//!
//! A command that boots guests installs [`install`]; the handler only records the
//! signal. Loops that wait (boot, agent requests, holds, the watcher) poll
//! [`received`] and wind down: the run is abandoned where it is, the report is
//! written, the guest powered off and its scratch files removed. A second signal
//! of the same kind while winding down is recorded again and changes nothing; the
//! wind-down itself is bounded.

use std::sync::atomic::{AtomicI32, Ordering};

static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn record(signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// Installs the recording handler for SIGINT, SIGTERM and SIGHUP.
pub fn install() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler
        // is an `extern "C" fn(c_int)` that only performs an atomic store, which is
        // async-signal-safe. SA_RESTART keeps blocking reads of the agent channel going.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = record as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                tracing::warn!("installing the handler of signal {signal}: {}", std::io::Error::last_os_error());
            }
        }
    }
}

/// The signal that asked this process to stop, if one did (and [`install`] ran).
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// A signal's name for messages.
pub fn name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// The conventional exit status of a process stopped by `signal`: 128 + its number.
pub fn exit_code(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(u8::MAX)
}
