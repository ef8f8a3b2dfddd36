//! The page shared by the agent and the workers of one spawn: one slot per worker with
//! its iteration counter, its longest gap between two iterations, its per-CPU histogram
//! (one counter per CPU id of the guest) and a few futex words the worker groups
//! (ping-pong pairs, fan-out, wake chains) coordinate through.
//!
//! The agent creates it as a memfd and maps it; each worker inherits the descriptor
//! across exec (the spawn clears `FD_CLOEXEC` on it) and maps the same pages, so the
//! agent reads the counters of a worker without asking it anything.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// One worker's slot: `iterations` at 0, futex words at 8..72, the longest gap at 72
/// (ns), the CPU it ended on at 80, when it ended at 88 (ns since the worker started),
/// a timestamp a waker posts at 96, two latency histograms (wake-up, request: a maximum
/// then [`LAT_BUCKETS`] counters each), then one histogram counter per CPU id.
const WORDS: usize = 16;
const GAP_NS: usize = 72;
const GAP_CPU: usize = 80;
const GAP_AT_NS: usize = 88;
const STAMP: usize = 96;
const LAT: usize = 104;
/// Latency buckets: values 0..4 exactly, then 4 per power of two up to 2^33 ns (8.6 s);
/// the last bucket takes everything longer.
pub const LAT_BUCKETS: usize = 132;
const LAT_BYTES: usize = 8 + LAT_BUCKETS * 8;
const HEADER: usize = LAT + 2 * LAT_BYTES;

/// The futex words of a slot. Group-wide words live in the group leader's slot.
#[derive(Clone, Copy, Debug)]
pub enum Word {
    /// Members that passed the start barrier (leader's slot).
    Ready = 0,
    /// Whose turn it is in a ping-pong pair (leader's slot).
    Turn = 1,
    /// Fan-out round number (leader's slot).
    Generation = 2,
    /// Fan-out waiters done with the current round (leader's slot).
    Acks = 3,
    /// This worker holds the wake-chain token (own slot).
    Token = 4,
    /// A word nobody ever wakes (own slot).
    Never = 5,
    /// A mutex (leader's slot): 0 free, else locked (a PI futex holds the owner's tid).
    Lock = 6,
    /// Items in a producer-consumer queue, or a herd's unclaimed token (leader's slot).
    Count = 7,
    /// The leader published its descriptors and pid (leader's slot).
    Published = 8,
    /// This worker's pid (own slot).
    Pid = 9,
    /// Descriptor numbers in the leader's process (own slot: the member's pipe ends).
    FdA = 10,
    FdB = 11,
    /// The spawn's start barrier (slot 0): 0 until the agent saw every worker's set-up
    /// report, then 1; workers block on it before they start their work.
    Go = 12,
}

/// Which latency histogram of a slot.
#[derive(Clone, Copy, Debug)]
pub enum Lat {
    Wake = 0,
    Request = 1,
}

/// The bucket of `ns` (see [`LAT_BUCKETS`]).
pub fn lat_bucket(ns: u64) -> usize {
    if ns < 4 {
        return ns as usize;
    }
    let octave = 63 - ns.leading_zeros() as usize;
    let sub = ((ns >> (octave - 2)) & 3) as usize;
    (4 * (octave - 1) + sub).min(LAT_BUCKETS - 1)
}

/// The smallest value of bucket `b`.
pub fn lat_bucket_floor(b: usize) -> u64 {
    if b < 4 {
        return b as u64;
    }
    let octave = b / 4 + 1;
    (4 + (b % 4) as u64) << (octave - 2)
}

/// A shared mapping of `slots` worker slots.
pub struct Shm {
    fd: OwnedFd,
    ptr: *mut u8,
    len: usize,
    slots: usize,
    /// CPU ids the histogram counts: `0..cpus`.
    cpus: usize,
}

// SAFETY: the mapping is shared memory that every accessor reads and writes only through
// atomics (`&AtomicU32`/`&AtomicU64` into it), as the worker processes sharing it already
// do; no method takes `&mut self` or hands out a plain reference, so the threads of one
// process may share and send a `Shm` like the processes do.
unsafe impl Sync for Shm {}
// SAFETY: see `Sync` above; the mapping and its descriptor belong to no thread.
unsafe impl Send for Shm {}

impl Shm {
    /// A fresh zeroed mapping for `slots` workers whose histograms count CPU ids
    /// `0..cpus` (agent side; `cpus` is the guest's highest CPU id plus one).
    pub fn create(slots: usize, cpus: usize) -> io::Result<Self> {
        // SAFETY: the name is a valid NUL-terminated string; memfd_create returns a new
        // descriptor (or -1), which we take sole ownership of below.
        let fd = unsafe { libc::memfd_create(c"schedbox-workers".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let len = Self::bytes(slots, cpus);
        // SAFETY: ftruncate on a descriptor we own; no memory is involved.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Self::map(fd, slots, cpus)
    }

    /// Maps an inherited descriptor (worker side), with the agent's `slots` and `cpus`.
    pub fn open(fd: RawFd, slots: usize, cpus: usize) -> io::Result<Self> {
        // SAFETY: the agent passed this descriptor to this process on purpose and nothing
        // else in the worker uses it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Self::map(fd, slots, cpus)
    }

    fn slot_bytes(cpus: usize) -> usize {
        HEADER + cpus.max(1) * 8
    }

    fn bytes(slots: usize, cpus: usize) -> usize {
        (slots.max(1) * Self::slot_bytes(cpus)).next_multiple_of(4096)
    }

    fn map(fd: OwnedFd, slots: usize, cpus: usize) -> io::Result<Self> {
        let len = Self::bytes(slots, cpus);
        // SAFETY: a fresh shared mapping of `len` bytes of a memfd at least that large;
        // the kernel picks the address, so no existing mapping is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd, ptr: ptr.cast(), len, slots, cpus: cpus.max(1) })
    }

    /// The descriptor a spawned worker inherits.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn u64_at(&self, slot: usize, offset: usize) -> &AtomicU64 {
        let slot_bytes = Self::slot_bytes(self.cpus);
        assert!(slot < self.slots && offset + 8 <= slot_bytes && offset.is_multiple_of(8));
        // SAFETY: the offset is in bounds of the mapping (asserted) and 8-byte aligned
        // (the mapping is page-aligned, slots and offsets are multiples of 8); the pages
        // stay mapped while `self` lives, and all access goes through atomics, which is
        // sound for memory shared with other processes.
        unsafe { &*self.ptr.add(slot * slot_bytes + offset).cast::<AtomicU64>() }
    }

    /// A futex word of `slot`.
    pub fn word(&self, slot: usize, word: Word) -> &AtomicU32 {
        let offset = 8 + 4 * word as usize;
        assert!(slot < self.slots && (word as usize) < WORDS);
        // SAFETY: in bounds (asserted) and 4-byte aligned; mapped while `self` lives;
        // accessed only atomically (see `u64_at`).
        unsafe { &*self.ptr.add(slot * Self::slot_bytes(self.cpus) + offset).cast::<AtomicU32>() }
    }

    /// Worker side: blocks until the agent opened the start barrier ([`Word::Go`]).
    pub fn wait_for_go(&self) {
        let go = self.word(0, Word::Go);
        while go.load(Ordering::Acquire) == 0 {
            // SAFETY: FUTEX_WAIT on a valid, aligned u32 of a shared mapping that outlives
            // the call; a null timeout waits until woken (or the word is no longer 0).
            unsafe {
                libc::syscall(libc::SYS_futex, go.as_ptr(), libc::FUTEX_WAIT, 0, std::ptr::null::<libc::timespec>())
            };
        }
    }

    /// Agent side: opens the start barrier and wakes every worker waiting on it.
    pub fn release_all(&self) {
        let go = self.word(0, Word::Go);
        go.store(1, Ordering::Release);
        // SAFETY: FUTEX_WAKE on a valid, aligned u32 of a shared mapping; no memory is written.
        unsafe { libc::syscall(libc::SYS_futex, go.as_ptr(), libc::FUTEX_WAKE, i32::MAX) };
    }

    pub fn iterations(&self, slot: usize) -> &AtomicU64 {
        self.u64_at(slot, 0)
    }

    /// The longest gap between two iterations of `slot`'s worker (ns), the CPU it
    /// resumed on, and when the gap ended (ns since the worker started).
    pub fn gap(&self, slot: usize) -> [&AtomicU64; 3] {
        [self.u64_at(slot, GAP_NS), self.u64_at(slot, GAP_CPU), self.u64_at(slot, GAP_AT_NS)]
    }

    /// A timestamp a waker posts for `slot`'s worker (CLOCK_MONOTONIC ns).
    pub fn stamp(&self, slot: usize) -> &AtomicU64 {
        self.u64_at(slot, STAMP)
    }

    /// Records one latency sample of `slot`'s worker.
    pub fn record(&self, slot: usize, which: Lat, ns: u64) {
        let base = LAT + which as usize * LAT_BYTES;
        self.u64_at(slot, base).fetch_max(ns, Ordering::Relaxed);
        self.u64_at(slot, base + 8 + 8 * lat_bucket(ns)).fetch_add(1, Ordering::Relaxed);
    }

    /// `(samples, p50, p90, p99, max)` of a latency histogram of `slot`; `None` without
    /// samples. A percentile is the floor of its bucket, capped at the maximum.
    pub fn latency(&self, slot: usize, which: Lat) -> Option<(u64, u64, u64, u64, u64)> {
        let base = LAT + which as usize * LAT_BYTES;
        let max = self.u64_at(slot, base).load(Ordering::Relaxed);
        let counts: Vec<u64> =
            (0..LAT_BUCKETS).map(|b| self.u64_at(slot, base + 8 + 8 * b).load(Ordering::Relaxed)).collect();
        let n: u64 = counts.iter().sum();
        if n == 0 {
            return None;
        }
        let pct = |p: u64| {
            let rank = (n * p).div_ceil(100).max(1);
            let mut seen = 0;
            for (b, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return lat_bucket_floor(b).min(max);
                }
            }
            max
        };
        Some((n, pct(50), pct(90), pct(99), max))
    }

    /// How often `slot`'s worker was seen on `cpu`; `None` for a CPU id the histogram
    /// does not count (never for a CPU of the guest the agent sized it for).
    pub fn cpu_count(&self, slot: usize, cpu: usize) -> Option<&AtomicU64> {
        (cpu < self.cpus).then(|| self.u64_at(slot, HEADER + 8 * cpu))
    }

    /// `(cpu, samples)` for every CPU `slot`'s worker was seen on.
    pub fn histogram(&self, slot: usize) -> Vec<(u32, u64)> {
        (0..self.cpus)
            .map(|c| (c as u32, self.cpu_count(slot, c).map_or(0, |n| n.load(Ordering::Relaxed))))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `map`, and no reference
        // into it outlives `self` (all accessors borrow `self`).
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_do_not_overlap_and_survive_a_second_mapping() {
        let a = Shm::create(3, 8).unwrap();
        a.iterations(2).store(7, Ordering::Relaxed);
        a.cpu_count(1, 5).unwrap().store(9, Ordering::Relaxed);
        a.gap(1)[0].store(11, Ordering::Relaxed);
        a.word(0, Word::Turn).store(1, Ordering::Relaxed);
        // SAFETY: dup of a descriptor we own; the copy is handed to `Shm::open`.
        let dup = unsafe { libc::dup(a.raw_fd()) };
        let b = Shm::open(dup, 3, 8).unwrap();
        assert_eq!(b.iterations(2).load(Ordering::Relaxed), 7);
        assert_eq!(b.iterations(1).load(Ordering::Relaxed), 0);
        assert_eq!(b.histogram(1), vec![(5, 9)]);
        assert_eq!(b.word(0, Word::Turn).load(Ordering::Relaxed), 1);
        assert_eq!(b.word(1, Word::Turn).load(Ordering::Relaxed), 0);
        assert_eq!(b.gap(1)[0].load(Ordering::Relaxed), 11);
        assert_eq!(b.gap(2)[0].load(Ordering::Relaxed), 0);
        assert!(b.cpu_count(0, 8).is_none());
    }

    #[test]
    fn the_start_barrier_holds_a_waiter_until_released() {
        let a = Shm::create(2, 1).unwrap();
        // SAFETY: dup of a descriptor we own; the copy is handed to `Shm::open` below.
        let dup = unsafe { libc::dup(a.raw_fd()) };
        let waiter = std::thread::spawn(move || {
            let b = Shm::open(dup, 2, 1).unwrap();
            b.wait_for_go();
            b.iterations(1).store(1, Ordering::Relaxed);
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(a.iterations(1).load(Ordering::Relaxed), 0, "passed the barrier before the release");
        a.release_all();
        waiter.join().unwrap();
        assert_eq!(a.iterations(1).load(Ordering::Relaxed), 1);
    }

    #[test]
    fn latency_buckets_are_monotonic_and_percentiles_land_in_them() {
        let mut last = 0;
        for ns in (0..100_000u64).chain([1 << 20, (1 << 33) - 1, 1 << 40, u64::MAX]) {
            let b = lat_bucket(ns);
            assert!(b >= last, "{ns}");
            assert!(lat_bucket_floor(b) <= ns, "{ns} in bucket {b} floor {}", lat_bucket_floor(b));
            if b < LAT_BUCKETS - 1 {
                assert!(ns < lat_bucket_floor(b + 1), "{ns} below the next bucket");
            }
            last = b;
        }
        let a = Shm::create(2, 4).unwrap();
        assert_eq!(a.latency(1, Lat::Wake), None);
        for _ in 0..98 {
            a.record(1, Lat::Wake, 1000);
        }
        a.record(1, Lat::Wake, 50_000);
        a.record(1, Lat::Wake, 2_000_000);
        let (n, p50, p90, p99, max) = a.latency(1, Lat::Wake).unwrap();
        assert_eq!((n, max), (100, 2_000_000));
        assert!((768..=1000).contains(&p50), "{p50}");
        assert!((768..=1000).contains(&p90), "{p90}");
        assert!((40_000..=50_000).contains(&p99), "{p99}");
        assert_eq!(a.latency(1, Lat::Request), None, "the histograms are separate");
        assert_eq!(a.latency(0, Lat::Wake), None);
        assert_eq!(a.histogram(1), vec![], "latency does not spill into the CPU histogram");
    }

    #[test]
    fn the_histogram_counts_cpus_beyond_64() {
        // A 256-CPU guest: CPU 200 has its own counter (none is folded into another).
        let a = Shm::create(2, 256).unwrap();
        a.cpu_count(1, 200).unwrap().store(3, Ordering::Relaxed);
        a.cpu_count(1, 63).unwrap().store(1, Ordering::Relaxed);
        a.cpu_count(0, 255).unwrap().store(2, Ordering::Relaxed);
        assert_eq!(a.histogram(1), vec![(63, 1), (200, 3)]);
        assert_eq!(a.histogram(0), vec![(255, 2)]);
        assert!(a.cpu_count(0, 256).is_none());
    }
}
