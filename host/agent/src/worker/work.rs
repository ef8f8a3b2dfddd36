//! The work-type loops. Every loop calls [`Meter::tick`] once per iteration; the meter
//! counts it, keeps the longest gap between two iterations (with the CPU the worker
//! resumed on and when), and, at most once a millisecond, records the CPU it runs on.
//!
//! Group work types coordinate through futex words in the shared page; every wait is
//! bounded (100 ms) and re-checks its condition, so a missed wake costs a delay, never a
//! hang.

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use schedbox_ops::{Phase, WorkType};

use super::WorkerSpec;
use crate::shm::{Lat, Shm, Word};

mod extra;
mod io;
mod numa;

pub use io::{open as open_io, Dev};

/// `spin_loop` hints per spin-wait iteration.
const SPIN_UNIT: u64 = 1024;
const WAIT_SLICE: Duration = Duration::from_millis(100);

struct Meter<'a> {
    shm: &'a Shm,
    slot: usize,
    /// When the worker started metering.
    start: Instant,
    /// The last CPU sample.
    last: Instant,
    /// The last iteration.
    prev: Instant,
    /// The longest gap so far, ns (a copy of the shared one, to compare against).
    max_gap: u64,
}

fn current_cpu() -> i32 {
    // SAFETY: sched_getcpu takes no arguments and only returns a value.
    unsafe { libc::sched_getcpu() }
}

impl<'a> Meter<'a> {
    fn new(shm: &'a Shm, slot: usize) -> Self {
        let now = Instant::now();
        let mut m = Self { shm, slot, start: now, last: now, prev: now, max_gap: 0 };
        m.sample(now);
        m
    }

    fn tick(&mut self) {
        self.shm.iterations(self.slot).fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let gap = now.duration_since(self.prev).as_nanos() as u64;
        self.prev = now;
        if gap > self.max_gap {
            self.max_gap = gap;
            let [ns, cpu, at] = self.shm.gap(self.slot);
            cpu.store(current_cpu().max(0) as u64, Ordering::Relaxed);
            at.store(now.duration_since(self.start).as_nanos() as u64, Ordering::Relaxed);
            ns.store(gap, Ordering::Relaxed);
        }
        if now.duration_since(self.last) >= Duration::from_millis(1) {
            self.sample(now);
        }
    }

    fn sample(&mut self, now: Instant) {
        if let Ok(cpu) = usize::try_from(current_cpu()) {
            if let Some(n) = self.shm.cpu_count(self.slot, cpu) {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.last = now;
    }
}

/// A private anonymous mapping, page-aligned, unmapped on drop.
pub struct Anon {
    ptr: *mut u8,
    len: usize,
}

impl Anon {
    pub fn new(len: usize) -> std::io::Result<Self> {
        // SAFETY: a fresh private anonymous mapping of `len` bytes at an address the
        // kernel picks; no existing memory is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Anon { ptr: ptr.cast(), len })
    }

    pub fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` is a live mapping of `len` bytes owned by this value.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is a live mapping of `len` bytes owned exclusively by this value.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// Keeps the mapping until the worker exits.
    pub fn leak(self) -> &'static mut [u8] {
        let me = std::mem::ManuallyDrop::new(self);
        // SAFETY: the mapping is never unmapped now, and `me` was its only owner.
        unsafe { std::slice::from_raw_parts_mut(me.ptr, me.len) }
    }
}

impl Drop for Anon {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping this value owns; nothing refers to it after.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Busy work. Deliberately no `pause` (spin_loop): under QEMU TCG each one
/// costs ~1 µs (far more on a loaded host), which would make one iteration
/// so long that short steps record none.
fn spin(iters: u64) {
    for i in 0..iters {
        black_box(i);
    }
}

fn spin_for(d: Duration, meter: &mut Meter) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        spin(SPIN_UNIT);
        meter.tick();
    }
}

fn yield_for(d: Duration, meter: &mut Meter) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        std::thread::yield_now();
        meter.tick();
    }
}

fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|t| libc::timespec { tv_sec: t.as_secs() as _, tv_nsec: t.subsec_nanos() as _ });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned u32 in shared memory (not FUTEX_PRIVATE, so
    // waiters in other processes match); `ts_ptr` is null or points at a live timespec.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, ts_ptr) };
}

fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE only reads its address.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n) };
}

/// Waits (in bounded slices) until `cond(word)` holds; returns the value seen.
fn wait_until(word: &AtomicU32, cond: impl Fn(u32) -> bool) -> u32 {
    loop {
        let v = word.load(Ordering::Acquire);
        if cond(v) {
            return v;
        }
        futex_wait(word, v, Some(WAIT_SLICE));
    }
}

/// Runs the spec's work type forever; `io` is the block device a block I/O work type
/// opened in its set-up.
pub fn run(spec: &WorkerSpec, shm: &Shm, io: Option<Dev>) -> ! {
    let me = spec.index as usize;
    let first = spec.group_first as usize;
    let size = spec.group_size as usize;
    let pos = me - first;
    let mut meter = Meter::new(shm, me);
    // Its task id is in its slot already (published before the start barrier); a
    // signal-storm receiver must have its handler before the group barrier.
    extra::remember_cpus();
    extra::before_group(spec);
    if matches!(spec.work, WorkType::SignalStorm) && pos == 1 {
        extra::ignore_usr1();
    }
    if size > 1 {
        // Every member is running before the group starts exchanging wakes.
        if matches!(spec.work, WorkType::WakeChain { .. }) && pos == 0 {
            shm.word(me, Word::Token).store(1, Ordering::Release);
        }
        let ready = shm.word(first, Word::Ready);
        ready.fetch_add(1, Ordering::AcqRel);
        futex_wake(ready, i32::MAX);
        wait_until(ready, |v| v as usize >= size);
    }
    if let Some(dev) = io {
        io::run(spec, shm, dev, &mut meter);
    }
    loop {
        match &spec.work {
            WorkType::SpinWait => {
                spin(SPIN_UNIT);
                meter.tick();
            }
            WorkType::YieldHeavy => {
                std::thread::yield_now();
                meter.tick();
            }
            WorkType::Mixed => mixed(&mut meter),
            WorkType::Bursty { burst_ms, sleep_ms } => {
                spin_for(Duration::from_millis(*burst_ms), &mut meter);
                std::thread::sleep(Duration::from_millis(*sleep_ms));
            }
            WorkType::FutexPingPong { spin_iters } => {
                let turn = shm.word(first, Word::Turn);
                let mine = pos as u32;
                wait_until(turn, |t| t == mine);
                spin(*spin_iters);
                meter.tick();
                turn.store(1 - mine, Ordering::Release);
                futex_wake(turn, 1);
            }
            WorkType::FutexFanOut { spin_iters, .. } => fan_out(shm, first, pos, size, *spin_iters, &mut meter),
            WorkType::PipeIo { burst_iters } => pipe_io(spec, pos, *burst_iters, &mut meter),
            WorkType::CachePressure { size_kib, stride } => cache_pressure(*size_kib, *stride, &mut meter),
            WorkType::WakeChain { pipe: true, work_iters, .. } => {
                extra::wake_chain_pipe(spec, shm, *work_iters, &mut meter)
            }
            WorkType::WakeChain { work_iters, .. } => {
                let token = shm.word(me, Word::Token);
                wait_until(token, |t| t == 1);
                token.store(0, Ordering::Release);
                let posted = shm.stamp(me).load(Ordering::Acquire);
                if posted != 0 {
                    shm.record(me, Lat::Wake, extra::now_ns().saturating_sub(posted));
                }
                spin(*work_iters);
                meter.tick();
                let next_slot = first + (pos + 1) % size;
                shm.stamp(next_slot).store(extra::now_ns(), Ordering::Release);
                let next = shm.word(next_slot, Word::Token);
                next.store(1, Ordering::Release);
                futex_wake(next, 1);
            }
            WorkType::ForkExit => {
                fork_exit();
                meter.tick();
            }
            WorkType::Sleep { duration_ms } => {
                std::thread::sleep(Duration::from_millis(*duration_ms));
                meter.tick();
            }
            WorkType::WaitOnFutex => futex_wait(shm.word(me, Word::Never), 0, None),
            WorkType::Sequence(phases) => {
                for phase in phases {
                    match phase {
                        Phase::SpinMs(ms) => spin_for(Duration::from_millis(*ms), &mut meter),
                        Phase::SleepMs(ms) => {
                            std::thread::sleep(Duration::from_millis(*ms));
                            meter.tick();
                        }
                        Phase::YieldMs(ms) => yield_for(Duration::from_millis(*ms), &mut meter),
                    }
                }
            }
            _ => extra::run(spec, shm, &mut meter),
        }
    }
}

/// Spin, yield, and every 16th iteration a 100 µs sleep.
fn mixed(meter: &mut Meter) {
    for i in 0..16 {
        spin(SPIN_UNIT);
        if i % 4 == 0 {
            std::thread::yield_now();
        }
        meter.tick();
    }
    std::thread::sleep(Duration::from_micros(100));
}

/// Position 0 wakes the others each round and waits until all acknowledged it.
fn fan_out(shm: &Shm, first: usize, pos: usize, size: usize, spin_iters: u64, meter: &mut Meter) {
    let generation = shm.word(first, Word::Generation);
    let acks = shm.word(first, Word::Acks);
    let waiters = (size - 1) as u32;
    if pos == 0 {
        spin(spin_iters);
        acks.store(0, Ordering::Release);
        generation.fetch_add(1, Ordering::AcqRel);
        futex_wake(generation, i32::MAX);
        wait_until(acks, |a| a >= waiters);
        meter.tick();
    } else {
        // Rounds are numbered from 0, and the waker waits for every ack before the
        // next one, so a waiter sees each round exactly once.
        let seen = meter.shm.iterations(meter.slot).load(Ordering::Relaxed) as u32;
        wait_until(generation, |g| g != seen);
        spin(spin_iters);
        meter.tick();
        acks.fetch_add(1, Ordering::AcqRel);
        futex_wake(acks, 1);
    }
}

/// Position 0 writes `burst` 8-byte messages and reads one ack; position 1 mirrors it.
fn pipe_io(spec: &WorkerSpec, pos: usize, burst: u64, meter: &mut Meter) {
    let Some((rfd, wfd)) = spec.pipe else {
        eprintln!("schedbox worker: pipe-io without pipes");
        std::process::exit(3);
    };
    // SAFETY: the agent gave this process these two pipe ends for its own use; wrapping
    // them in ManuallyDrop keeps them open across iterations.
    let (mut r, mut w) = unsafe {
        (
            std::mem::ManuallyDrop::new(std::fs::File::from_raw_fd(rfd)),
            std::mem::ManuallyDrop::new(std::fs::File::from_raw_fd(wfd)),
        )
    };
    let mut msg = [0u8; 8];
    let ok = if pos == 0 {
        (0..burst).try_for_each(|i| w.write_all(&i.to_le_bytes())).and_then(|_| r.read_exact(&mut msg))
    } else {
        (0..burst).try_for_each(|_| r.read_exact(&mut msg)).and_then(|_| w.write_all(&msg))
    };
    if ok.is_err() {
        // The peer is gone: nothing left to exchange with.
        std::process::exit(0);
    }
    meter.tick();
}

fn cache_pressure(size_kib: u32, stride: u32, meter: &mut Meter) {
    let mut buf = vec![0u8; size_kib as usize * 1024];
    loop {
        for i in (0..buf.len()).step_by(stride.max(1) as usize) {
            buf[i] = buf[i].wrapping_add(1);
        }
        black_box(&mut buf);
        meter.tick();
    }
}

fn fork_exit() {
    // SAFETY: the worker is single-threaded, so the child may run any code; it only exits.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: _exit ends the child without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        pid if pid > 0 => {
            let mut status = 0;
            // SAFETY: waits for our own child; `status` is a valid out-pointer.
            unsafe { libc::waitpid(pid, &mut status, 0) };
        }
        _ => std::thread::sleep(Duration::from_millis(1)),
    }
}
