//! The host's TSC frequency, which a TCG guest's TSC runs at. Guests on
//! QEMU microvm cannot calibrate it themselves and need `tsc_early_khz=`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Host TSC frequency in kHz, measured once per process (about 20 ms).
pub fn host_tsc_khz() -> u64 {
    static KHZ: OnceLock<u64> = OnceLock::new();
    *KHZ.get_or_init(measure)
}

#[cfg(target_arch = "x86_64")]
fn measure() -> u64 {
    let rdtsc = || {
        // SAFETY: RDTSC has no memory effects and is available on every
        // x86_64 CPU; reading the counter cannot violate any invariant.
        unsafe { core::arch::x86_64::_rdtsc() }
    };
    let (t0, c0) = (Instant::now(), rdtsc());
    std::thread::sleep(Duration::from_millis(20));
    let (t1, c1) = (Instant::now(), rdtsc());
    let ns = t1.duration_since(t0).as_nanos().max(1) as u64;
    // Round to 1 MHz: the kernel only needs a close value, and rounding keeps
    // the command line (and so the boot) identical from run to run.
    let khz = c1.wrapping_sub(c0).saturating_mul(1_000_000) / ns;
    (khz + 500) / 1000 * 1000
}

#[cfg(not(target_arch = "x86_64"))]
fn measure() -> u64 {
    0
}

#[cfg(test)]
mod tests {
    #[test]
    fn plausible_frequency() {
        let khz = super::host_tsc_khz();
        assert!((100_000..=10_000_000).contains(&khz), "{khz} kHz");
    }
}
