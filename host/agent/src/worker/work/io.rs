//! The block I/O work types on the guest's null_blk device (see [`crate::blockdev`]):
//! `io-sync-write` (buffered `O_DSYNC` writes, sequential in a stripe of the device per
//! worker), `io-rand-read` (`O_DIRECT` reads at random block-aligned offsets) and
//! `io-convoy` (per group, one writer of large `O_DIRECT|O_DSYNC` blocks and readers of
//! 4 KiB `O_DIRECT` random reads queued behind it). Each request's time, submission to
//! completion, is recorded as request latency; one work unit per request.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use schedbox_ops::WorkType;

use super::extra::now_ns;
use super::{Anon, Meter, WorkerSpec};
use crate::shm::{Lat, Shm};

/// `BLKGETSIZE64`: `_IOR(0x12, 114, size_t)`, the device size in bytes.
const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
/// Stripes the device is cut into for the sequential writers (one per worker or group).
const STRIPES: u64 = 64;
/// A convoy reader's request size.
const READ_BYTES: usize = 4096;

/// A worker's open device and its request buffer.
pub struct Dev {
    file: File,
    capacity: u64,
    /// Page-aligned, as `O_DIRECT` needs buffers aligned to the logical block size.
    buf: Anon,
    /// Writes, not reads.
    write: bool,
    /// Where the next sequential write goes (writers only): `stripe_start..stripe_end`.
    stripe_start: u64,
    stripe_end: u64,
}

/// Opens the device the way `spec`'s work type uses it; `None` for other work types.
/// Called in the worker's set-up, so a failure fails the spawn with the reason.
pub fn open(spec: &WorkerSpec) -> Result<Option<Dev>, String> {
    let pos = spec.index - spec.group_first;
    let (write, direct, bytes, stripe) = match spec.work {
        WorkType::IoSyncWrite { block_kib } => (true, false, kib(block_kib), u64::from(spec.index)),
        WorkType::IoRandRead { block_kib } => (false, true, kib(block_kib), 0),
        WorkType::IoConvoy { write_kib, .. } if pos == 0 => {
            (true, true, kib(write_kib), u64::from(spec.group_first / spec.group_size.max(1)))
        }
        WorkType::IoConvoy { .. } => (false, true, READ_BYTES, 0),
        _ => return Ok(None),
    };
    let path = crate::blockdev::DEVICE;
    let mut flags = libc::O_CLOEXEC;
    if direct {
        flags |= libc::O_DIRECT;
    }
    if write {
        flags |= libc::O_DSYNC;
    }
    let file = OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| format!("opening {path}: {e}"))?;
    let mut capacity = 0u64;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points at `capacity`.
    if unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64 as _, &mut capacity as *mut u64) } != 0 {
        return Err(format!("reading the size of {path}: {}", std::io::Error::last_os_error()));
    }
    let block = bytes as u64;
    let stripe_len = (capacity / STRIPES) / block * block;
    if stripe_len == 0 {
        return Err(format!("{path} holds {capacity} bytes, too small for {STRIPES} stripes of {block}-byte requests"));
    }
    let stripe_start = (stripe % STRIPES) * stripe_len;
    let mut buf = Anon::new(bytes).map_err(|e| format!("mapping a {bytes}-byte I/O buffer: {e}"))?;
    buf.as_mut().iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    Ok(Some(Dev { file, capacity, buf, write, stripe_start, stripe_end: stripe_start + stripe_len }))
}

fn kib(k: u32) -> usize {
    k as usize * 1024
}

/// Issues requests forever: sequential writes through the stripe (wrapping), or reads at
/// random block-aligned offsets.
pub fn run(spec: &WorkerSpec, shm: &Shm, mut dev: Dev, meter: &mut Meter) -> ! {
    let me = spec.index as usize;
    let block = dev.buf.as_ref().len() as u64;
    let blocks = (dev.capacity / block).max(1);
    // SAFETY: getpid only returns a value.
    let mut rng = (u64::from(unsafe { libc::getpid() } as u32) << 32) | u64::from(spec.index) | 1;
    let mut next = dev.stripe_start;
    loop {
        let started = now_ns();
        let done = if dev.write {
            let at = next;
            next = if next + block >= dev.stripe_end { dev.stripe_start } else { next + block };
            dev.file.write_at(dev.buf.as_ref(), at)
        } else {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let at = (rng % blocks) * block;
            dev.file.read_at(dev.buf.as_mut(), at)
        };
        match done {
            Ok(n) if n as u64 == block => {
                shm.record(me, Lat::Request, now_ns().saturating_sub(started));
                meter.tick();
            }
            Ok(n) => super::extra::die(&format!("{} moved {n} of {block} bytes", crate::blockdev::DEVICE)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => super::extra::die(&format!("{} request failed: {e}", crate::blockdev::DEVICE)),
        }
    }
}
