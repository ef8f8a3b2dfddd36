//! The work types beyond the basic loops: CPU, wake paths, schbench, churn,
//! contention, memory, sleep/cache. Each runs forever; group members coordinate through
//! the futex words of the shared page (bounded waits, see the parent module), and the
//! ones that share descriptors take the group leader's copies with `pidfd_getfd(2)`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use schedbox_ops::WorkType;

use super::{futex_wait, futex_wake, spin, spin_for, wait_until, Meter, WorkerSpec, SPIN_UNIT, WAIT_SLICE};
use crate::shm::{Lat, Shm, Word};

/// Items a producer-consumer queue holds at most.
const QUEUE_CAP: u32 = 1024;
/// Nice values nice-sweep steps through.
const NICE_MIN: i32 = -20;
const NICE_MAX: i32 = 19;

/// CLOCK_MONOTONIC in ns (comparable across the workers' processes).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Ends the worker with a reason on stderr (the agent's console).
pub(super) fn die(what: &str) -> ! {
    eprintln!("schedbox worker: {what}");
    std::process::exit(3)
}

extern "C" fn on_usr1(_: libc::c_int) {}

/// Installs an empty SIGUSR1 handler (the signal-storm receiver; the default would kill).
pub fn ignore_usr1() {
    // SAFETY: sigaction is plain old data; all-zero is a valid empty mask and no flags.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_usr1 as *const () as usize;
    // SAFETY: `sa` is a valid sigaction alive for the call; the handler is async-signal-safe.
    unsafe { libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()) };
}

/// Dependent multiply/rotate/xor chain of `iters` steps.
fn alu(iters: u64, mut x: u64) -> u64 {
    for i in 0..iters {
        x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ i;
    }
    black_box(x)
}

/// A random single cycle through `size_kib` of 64-byte nodes (each holds the next index).
fn chase_ring(size_kib: u32) -> Vec<u64> {
    let nodes = (size_kib as usize * 1024 / 64).max(2);
    let mut order: Vec<usize> = (0..nodes).collect();
    let mut seed = now_ns() | 1;
    for i in (1..nodes).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        order.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    let mut ring = vec![0u64; nodes * 8];
    for w in 0..nodes {
        ring[order[w] * 8] = order[(w + 1) % nodes] as u64;
    }
    ring
}

fn walk(buf: &mut [u8]) {
    for i in (0..buf.len()).step_by(64) {
        buf[i] = buf[i].wrapping_add(1);
    }
    black_box(buf);
}

/// The CPUs this process may use now.
fn allowed() -> Vec<u32> {
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid out-buffer of the size passed.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: the index is below CPU_SETSIZE.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .map(|c| c as u32)
        .collect()
}

// The CPUs this worker was allowed before its group started (peers may re-pin it right
// after the start: cross-affinity-churn); per thread, as the workers of a threads spawn
// are threads of one process.
thread_local! {
    static START_CPUS: std::cell::OnceCell<Vec<u32>> = const { std::cell::OnceCell::new() };
}

/// Remembers the allowed CPUs; called before the group barrier.
pub fn remember_cpus() {
    START_CPUS.with(|c| {
        let _ = c.set(allowed());
    });
}

fn start_cpus() -> Vec<u32> {
    START_CPUS.with(|c| c.get().cloned()).unwrap_or_else(allowed)
}

/// Pins this process to `cpu` or dies saying why.
fn pin(cpu: u32) {
    if let Err(e) = super::super::set_affinity(0, &[cpu]) {
        die(&format!("pinning to CPU {cpu}: {e}"));
    }
}

/// All members of a one-CPU group pin to the highest CPU they may use (the same CPU
/// for members of one cgroup with inherited affinity).
fn pin_shared() {
    match start_cpus().last() {
        Some(&cpu) => pin(cpu),
        None => die("reading the allowed CPUs"),
    }
}

/// `sched_setscheduler(0, which, prio)` through the raw syscall (musl's is a stub).
fn set_sched(which: libc::c_int, prio: i32) -> std::io::Result<()> {
    // SAFETY: sched_param is plain old data (musl's has extra fields); zero is valid.
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    param.sched_priority = prio;
    // SAFETY: `param` is a valid sched_param alive for the call; pid 0 is this process.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setscheduler, 0, which, &param as *const libc::sched_param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn set_fifo(prio: i32) {
    if let Err(e) = set_sched(libc::SCHED_FIFO, prio) {
        die(&format!("setting SCHED_FIFO {prio}: {e}"));
    }
}

/// A copy of our own descriptor `fd`.
fn dup(fd: libc::c_int) -> libc::c_int {
    // SAFETY: dup takes a descriptor number and returns a new one or -1.
    let got = unsafe { libc::dup(fd) };
    if got < 0 {
        die(&format!("copying descriptor {fd}: {}", std::io::Error::last_os_error()));
    }
    got
}

/// A copy of descriptor `fd` of process `pid` (`pidfd_getfd`, Linux 5.6).
fn take_fd(pid: u32, fd: u32) -> libc::c_int {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) } as libc::c_int;
    if pidfd < 0 {
        die(&format!("pidfd_open({pid}): {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `pidfd` is ours; pidfd_getfd returns a new descriptor of ours or -1.
    let got = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd as libc::c_int, 0) } as libc::c_int;
    let err = std::io::Error::last_os_error();
    // SAFETY: closes the pidfd we opened above.
    unsafe { libc::close(pidfd) };
    if got < 0 {
        die(&format!("taking descriptor {fd} of the group leader (pid {pid}): {err}"));
    }
    got
}

fn pipe_fds() -> (libc::c_int, libc::c_int) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        die(&format!("creating a pipe: {}", std::io::Error::last_os_error()));
    }
    (fds[0], fds[1])
}

fn read_byte(fd: libc::c_int) {
    let mut b = 0u8;
    loop {
        // SAFETY: reads one byte into a valid buffer.
        let n = unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) };
        match n {
            1 => return,
            // The writer is gone: nothing left to exchange with.
            0 => std::process::exit(0),
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => std::process::exit(0),
        }
    }
}

fn write_byte(fd: libc::c_int) {
    let b = 1u8;
    // SAFETY: writes one byte from a valid buffer.
    if unsafe { libc::write(fd, (&b as *const u8).cast(), 1) } != 1 {
        std::process::exit(0);
    }
}

/// The leader's descriptors for this member: (read end, write end) in this process.
/// The leader (position 0) creates them with `make` and publishes their numbers in each
/// member's slot; the others take copies.
fn group_fds(
    spec: &WorkerSpec,
    shm: &Shm,
    make: impl FnOnce(usize) -> Vec<(libc::c_int, libc::c_int)>,
) -> (libc::c_int, libc::c_int) {
    let first = spec.group_first as usize;
    let me = spec.index as usize;
    let published = shm.word(first, Word::Published);
    if me == first {
        for (k, (a, b)) in make(spec.group_size as usize).into_iter().enumerate() {
            shm.word(first + k, Word::FdA).store(a as u32, Ordering::Relaxed);
            shm.word(first + k, Word::FdB).store(b as u32, Ordering::Relaxed);
        }
        published.store(1, Ordering::Release);
        futex_wake(published, i32::MAX);
    }
    wait_until(published, |p| p == 1);
    let (a, b) = (shm.word(me, Word::FdA).load(Ordering::Relaxed), shm.word(me, Word::FdB).load(Ordering::Relaxed));
    if me == first {
        return (a as libc::c_int, b as libc::c_int);
    }
    if spec.thread {
        // Threads of one process share the leader's descriptors: copies of our own.
        return (dup(a as libc::c_int), dup(b as libc::c_int));
    }
    let leader = shm.word(first, Word::Pid).load(Ordering::Acquire);
    (take_fd(leader, a), take_fd(leader, b))
}

/// Records the wake-up latency since the stamp posted for `slot`, if one was.
fn woke(shm: &Shm, slot: usize, from: usize) {
    let posted = shm.stamp(from).load(Ordering::Acquire);
    if posted != 0 {
        shm.record(slot, Lat::Wake, now_ns().saturating_sub(posted));
    }
}

/// A plain futex mutex (0 free, 1 locked, 2 locked with waiters).
fn lock(word: &AtomicU32) {
    if word.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok() {
        return;
    }
    while word.swap(2, Ordering::Acquire) != 0 {
        futex_wait(word, 2, Some(WAIT_SLICE));
    }
}

fn unlock(word: &AtomicU32) {
    if word.fetch_sub(1, Ordering::Release) != 1 {
        word.store(0, Ordering::Release);
        futex_wake(word, 1);
    }
}

fn gettid() -> u32 {
    // SAFETY: gettid only returns a value.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// A PI futex mutex (the word holds the owner's tid; the kernel boosts the owner).
fn lock_pi(word: &AtomicU32, tid: u32) {
    if word.compare_exchange(0, tid, Ordering::Acquire, Ordering::Relaxed).is_ok() {
        return;
    }
    loop {
        // SAFETY: `word` is a valid aligned u32 in shared memory; no timeout pointer.
        let rc = unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_LOCK_PI, 0, std::ptr::null::<libc::timespec>())
        };
        if rc == 0 {
            return;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            die(&format!("FUTEX_LOCK_PI: {}", std::io::Error::last_os_error()));
        }
    }
}

fn unlock_pi(word: &AtomicU32, tid: u32) {
    if word.compare_exchange(tid, 0, Ordering::Release, Ordering::Relaxed).is_err() {
        // SAFETY: `word` is a valid aligned u32 this thread owns as a PI futex.
        unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_UNLOCK_PI, 0) };
    }
}

fn sleep_us(us: u64) {
    std::thread::sleep(Duration::from_micros(us));
}

/// Runs one of the work types of this module forever.
pub fn run(spec: &WorkerSpec, shm: &Shm, meter: &mut Meter) -> ! {
    let me = spec.index as usize;
    let first = spec.group_first as usize;
    let size = spec.group_size as usize;
    let pos = me - first;
    match spec.work.clone() {
        WorkType::AluHot => {
            let mut x = me as u64;
            loop {
                x = alu(SPIN_UNIT, x);
                meter.tick();
            }
        }
        WorkType::SmtSiblingSpin => {
            pin(smt_cpu(first / 2, pos));
            loop {
                spin(SPIN_UNIT);
                meter.tick();
            }
        }
        WorkType::IpcVariance { phase_ms, size_kib } => {
            let ring = chase_ring(size_kib);
            let (mut x, mut at) = (0u64, 0usize);
            let phase = Duration::from_millis(phase_ms);
            loop {
                let end = std::time::Instant::now() + phase;
                while std::time::Instant::now() < end {
                    x = alu(SPIN_UNIT, x);
                    meter.tick();
                }
                let end = std::time::Instant::now() + phase;
                while std::time::Instant::now() < end {
                    for _ in 0..SPIN_UNIT {
                        at = ring[at * 8] as usize;
                    }
                    black_box(at);
                    meter.tick();
                }
            }
        }
        WorkType::FanOutCompute { compute_iters, .. } => fan_out(shm, first, pos, size, compute_iters, meter),
        WorkType::AsymmetricWaker { waker_iters, wakee_iters } => {
            let turn = shm.word(first, Word::Turn);
            let mine = pos as u32;
            loop {
                wait_until(turn, |t| t == mine);
                if pos == 1 {
                    woke(shm, me, me);
                    spin(wakee_iters);
                } else {
                    spin(waker_iters);
                    shm.stamp(first + 1).store(now_ns(), Ordering::Release);
                }
                meter.tick();
                turn.store(1 - mine, Ordering::Release);
                futex_wake(turn, 1);
            }
        }
        WorkType::EpollStorm { .. } => epoll_storm(spec, shm, meter),
        WorkType::ThunderingHerd { work_iters, .. } => herd(shm, first, pos, size, work_iters, meter),
        WorkType::TimerLatency { period_us } => timer_loop(shm, me, period_us, 0, meter),
        WorkType::Schbench { request_us, sleep_us: nap, .. } => schbench(shm, first, pos, size, request_us, nap, meter),
        WorkType::NiceSweep { period_us } => {
            let mut nice = 0;
            loop {
                spin_for(Duration::from_micros(period_us), meter);
                nice = if nice >= NICE_MAX { NICE_MIN } else { nice + 1 };
                // SAFETY: plain syscall on this process.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
            }
        }
        WorkType::AffinityChurn { period_us } => {
            let cpus = start_cpus();
            for k in (me..).map(|k| k % cpus.len().max(1)) {
                spin_for(Duration::from_micros(period_us), meter);
                if let Some(&c) = cpus.get(k) {
                    // A cpuset change can make a CPU invalid: skip it, the next one may do.
                    let _ = super::super::set_affinity(0, &[c]);
                }
            }
            unreachable!("an endless range")
        }
        WorkType::CrossAffinityChurn { period_us } => {
            let cpus = start_cpus();
            let peer = shm.word(first + (1 - pos), Word::Pid).load(Ordering::Acquire) as libc::pid_t;
            for k in (me..).map(|k| k % cpus.len().max(1)) {
                spin_for(Duration::from_micros(period_us), meter);
                if let Some(&c) = cpus.get(k) {
                    let _ = super::super::set_affinity(peer, &[c]);
                }
            }
            unreachable!("an endless range")
        }
        WorkType::PolicyChurn { period_us } => {
            let cycle = [
                (libc::SCHED_OTHER, 0),
                (libc::SCHED_BATCH, 0),
                (libc::SCHED_IDLE, 0),
                (libc::SCHED_FIFO, 1),
                (libc::SCHED_RR, 1),
            ];
            for &(which, prio) in cycle.iter().cycle() {
                let _ = set_sched(which, prio);
                spin_for(Duration::from_micros(period_us), meter);
            }
            unreachable!("an endless cycle")
        }
        WorkType::MutexContention { hold_iters, work_iters, .. } => {
            let word = shm.word(first, Word::Lock);
            loop {
                let t0 = now_ns();
                lock(word);
                shm.record(me, Lat::Request, now_ns() - t0);
                spin(hold_iters);
                unlock(word);
                spin(work_iters);
                meter.tick();
            }
        }
        WorkType::PriorityInversion { pi, hold_iters } => priority_inversion(shm, first, pos, pi, hold_iters, meter),
        WorkType::RtStarvation => {
            pin_shared();
            if pos == 0 {
                set_fifo(50);
            }
            loop {
                spin(SPIN_UNIT);
                meter.tick();
            }
        }
        WorkType::PreemptStorm { period_us, burst_iters } => {
            pin_shared();
            if pos == 0 {
                set_fifo(50);
                timer_loop(shm, me, period_us, burst_iters, meter)
            }
            loop {
                spin(SPIN_UNIT);
                meter.tick();
            }
        }
        WorkType::SignalStorm => {
            if pos == 1 {
                loop {
                    // SAFETY: pause only blocks until a signal's handler ran.
                    unsafe { libc::pause() };
                    meter.tick();
                }
            }
            let peer = shm.word(first + 1, Word::Pid).load(Ordering::Acquire) as libc::pid_t;
            // The peer's thread group: its own process, or ours when workers are threads.
            // SAFETY: getpid only returns a value.
            let group = if spec.thread { unsafe { libc::getpid() } } else { peer };
            loop {
                // SAFETY: sends SIGUSR1 to the task `peer` of group `group`, our group
                // peer, which installed a handler (tgkill: the task itself, not any
                // thread of its process).
                if unsafe { libc::syscall(libc::SYS_tgkill, group, peer, libc::SIGUSR1) } != 0 {
                    std::process::exit(0);
                }
                meter.tick();
            }
        }
        WorkType::ProducerConsumerImbalance { producers, work_iters, .. } => {
            let count = shm.word(first, Word::Count);
            if pos < producers as usize {
                loop {
                    spin(work_iters);
                    wait_until(count, |c| c < QUEUE_CAP);
                    if count.fetch_add(1, Ordering::AcqRel) == 0 {
                        futex_wake(count, i32::MAX);
                    }
                    meter.tick();
                }
            }
            loop {
                let v = wait_until(count, |c| c > 0);
                if count.compare_exchange(v, v - 1, Ordering::AcqRel, Ordering::Relaxed).is_err() {
                    continue;
                }
                if v == QUEUE_CAP {
                    futex_wake(count, i32::MAX);
                }
                spin(work_iters);
                meter.tick();
            }
        }
        WorkType::PageFaultChurn { size_kib } => {
            let len = size_kib as usize * 1024;
            loop {
                let Ok(mut map) = super::Anon::new(len) else {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                };
                for byte in map.as_mut().iter_mut().step_by(4096) {
                    // A volatile write: the page must be faulted in, not optimised away.
                    // SAFETY: `byte` is a valid, exclusive reference into the mapping.
                    unsafe { std::ptr::write_volatile(byte, 1) };
                }
                drop(map);
                meter.tick();
            }
        }
        WorkType::NumaMigrationChurn { period_ms, size_kib } => {
            super::numa::migration_churn(&start_cpus(), period_ms, size_kib, meter)
        }
        WorkType::NumaWorkingSetSweep { size_kib, passes } => {
            super::numa::working_set_sweep(shm, me, &start_cpus(), size_kib, passes, meter)
        }
        WorkType::IdleChurn { spin_iters, sleep_us: nap } => loop {
            spin(spin_iters);
            sleep_us(nap);
            meter.tick();
        },
        WorkType::CacheYield { size_kib } => {
            let mut buf = vec![0u8; size_kib as usize * 1024];
            loop {
                walk(&mut buf);
                std::thread::yield_now();
                meter.tick();
            }
        }
        WorkType::CachePipe { size_kib } => {
            // Member k reads pipe k and writes pipe 1 - k.
            let (r, w) = group_fds(spec, shm, |_| {
                let (p0, p1) = (pipe_fds(), pipe_fds());
                vec![(p0.0, p1.1), (p1.0, p0.1)]
            });
            let mut buf = vec![0u8; size_kib as usize * 1024];
            if pos == 0 {
                write_byte(w);
            }
            loop {
                read_byte(r);
                walk(&mut buf);
                meter.tick();
                write_byte(w);
            }
        }
        WorkType::CgroupChurn { period_us } => {
            let own = own_cgroup();
            let child = own.join(format!("churn-{me}"));
            loop {
                let _ = std::fs::create_dir(&child);
                move_self(&child);
                spin_for(Duration::from_micros(period_us), meter);
                move_self(&own);
                let _ = std::fs::remove_dir(&child);
                spin_for(Duration::from_micros(period_us), meter);
            }
        }
        WorkType::CgroupAttachStorm { period_us } => {
            let own = own_cgroup();
            let child = own.join("attach-storm");
            let _ = std::fs::create_dir(&child);
            loop {
                move_self(&child);
                spin_for(Duration::from_micros(period_us), meter);
                move_self(&own);
                spin_for(Duration::from_micros(period_us), meter);
            }
        }
        other => die(&format!("work type {other:?} has no loop in this agent")),
    }
}

/// This worker's cgroup directory (from `/proc/self/cgroup`, read at its start).
fn own_cgroup() -> std::path::PathBuf {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    match text.lines().find_map(|l| l.strip_prefix("0::")) {
        Some(rel) if rel.starts_with("/schedbox/") => std::path::Path::new("/sys/fs/cgroup").join(&rel[1..]),
        _ => die(&format!("cgroup churn needs a scenario cgroup; this worker is in {:?}", text.trim())),
    }
}

/// Moves this process into `dir` (a missing child is skipped: the next period makes it).
fn move_self(dir: &std::path::Path) {
    let _ = std::fs::write(dir.join("cgroup.procs"), "0");
}

/// The CPU of position `pos` of pair `pair`: the pair's core is one of the cores (sets
/// of SMT siblings) among the allowed CPUs, picked round-robin.
fn smt_cpu(pair: usize, pos: usize) -> u32 {
    let cpus = start_cpus();
    let mut cores: Vec<Vec<u32>> = Vec::new();
    for &c in &cpus {
        if cores.iter().any(|core| core.contains(&c)) {
            continue;
        }
        let path = format!("/sys/devices/system/cpu/cpu{c}/topology/thread_siblings_list");
        let sib = std::fs::read_to_string(path).map(|s| crate::topology::parse_cpu_list(&s)).unwrap_or_default();
        let mut core: Vec<u32> = sib.into_iter().filter(|s| cpus.contains(s)).collect();
        if core.is_empty() {
            core.push(c);
        }
        cores.push(core);
    }
    match cores.get(pair % cores.len().max(1)) {
        Some(core) => core[pos % core.len()],
        None => die("no allowed CPU"),
    }
}

/// Position 0 posts a stamp and wakes the others each round, then waits for all their
/// acknowledgements; each waiter records its wake-up latency and computes.
fn fan_out(shm: &Shm, first: usize, pos: usize, size: usize, iters: u64, meter: &mut Meter) -> ! {
    let generation = shm.word(first, Word::Generation);
    let acks = shm.word(first, Word::Acks);
    let waiters = (size - 1) as u32;
    let mut seen = 0;
    loop {
        if pos == 0 {
            acks.store(0, Ordering::Release);
            shm.stamp(first).store(now_ns(), Ordering::Release);
            generation.fetch_add(1, Ordering::AcqRel);
            futex_wake(generation, i32::MAX);
            wait_until(acks, |a| a >= waiters);
        } else {
            seen = wait_until(generation, |g| g != seen);
            woke(shm, first + pos, first);
            spin(iters);
            acks.fetch_add(1, Ordering::AcqRel);
            futex_wake(acks, 1);
        }
        meter.tick();
    }
}

/// Like [`fan_out`], but the woken race for one token and only the winner works.
fn herd(shm: &Shm, first: usize, pos: usize, size: usize, iters: u64, meter: &mut Meter) -> ! {
    let generation = shm.word(first, Word::Generation);
    let acks = shm.word(first, Word::Acks);
    let token = shm.word(first, Word::Count);
    let waiters = (size - 1) as u32;
    let mut seen = 0;
    loop {
        if pos == 0 {
            acks.store(0, Ordering::Release);
            token.store(1, Ordering::Release);
            shm.stamp(first).store(now_ns(), Ordering::Release);
            generation.fetch_add(1, Ordering::AcqRel);
            futex_wake(generation, i32::MAX);
            wait_until(acks, |a| a >= waiters);
        } else {
            seen = wait_until(generation, |g| g != seen);
            woke(shm, first + pos, first);
            if token.compare_exchange(1, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                spin(iters);
            }
            acks.fetch_add(1, Ordering::AcqRel);
            futex_wake(acks, 1);
        }
        meter.tick();
    }
}

/// One writer, `size - 1` epoll waiters on the writer's eventfd.
fn epoll_storm(spec: &WorkerSpec, shm: &Shm, meter: &mut Meter) -> ! {
    let first = spec.group_first as usize;
    let pos = spec.index as usize - first;
    let acks = shm.word(first, Word::Acks);
    let waiters = spec.group_size - 1;
    let (efd, _) = group_fds(spec, shm, |n| {
        // SAFETY: eventfd returns a new descriptor or -1.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            die(&format!("eventfd: {}", std::io::Error::last_os_error()));
        }
        vec![(efd, efd); n]
    });
    if pos == 0 {
        loop {
            acks.store(0, Ordering::Release);
            shm.stamp(first).store(now_ns(), Ordering::Release);
            let one = 1u64;
            // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
            unsafe { libc::write(efd, (&one as *const u64).cast(), 8) };
            wait_until(acks, |a| a >= waiters);
            let mut drained = 0u64;
            // SAFETY: reads 8 bytes into a valid u64 (non-blocking; resets the counter).
            unsafe { libc::read(efd, (&mut drained as *mut u64).cast(), 8) };
            meter.tick();
        }
    }
    // SAFETY: epoll_create1 returns a new descriptor or -1.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    let mut ev = libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLET) as u32, u64: 0 };
    // SAFETY: `ev` is a valid epoll_event for the call; both descriptors are ours.
    if ep < 0 || unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, efd, &mut ev) } != 0 {
        die(&format!("epoll on the group's eventfd: {}", std::io::Error::last_os_error()));
    }
    let mut out = [libc::epoll_event { events: 0, u64: 0 }];
    loop {
        // SAFETY: `out` is a valid array of one event.
        let n = unsafe { libc::epoll_wait(ep, out.as_mut_ptr(), 1, WAIT_SLICE.as_millis() as libc::c_int) };
        if n == 1 {
            woke(shm, spec.index as usize, first);
            meter.tick();
            acks.fetch_add(1, Ordering::AcqRel);
            futex_wake(acks, 1);
        }
    }
}

/// Sleeps to absolute deadlines `period_us` apart, recording the lateness of each
/// wake-up, then spins `burst_iters`.
fn timer_loop(shm: &Shm, me: usize, period_us: u64, burst_iters: u64, meter: &mut Meter) -> ! {
    let period = period_us.max(1) * 1000;
    let mut next = now_ns() + period;
    loop {
        let ts = libc::timespec { tv_sec: (next / 1_000_000_000) as _, tv_nsec: (next % 1_000_000_000) as _ };
        // SAFETY: `ts` is a valid timespec; no remainder is asked for with TIMER_ABSTIME.
        unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &ts, std::ptr::null_mut()) };
        let now = now_ns();
        if now >= next {
            shm.record(me, Lat::Wake, now - next);
            spin(burst_iters);
            meter.tick();
            next += period;
            if next <= now {
                // Overran a whole period: start again from now rather than burst.
                next = now + period;
            }
        }
    }
}

/// Position 0 is the message worker: it posts a request (a stamp and a token) to every
/// other member, waits until all are done, then sleeps. A request worker records its
/// wake-up latency, burns `request_us` of CPU and records the request latency.
fn schbench(shm: &Shm, first: usize, pos: usize, size: usize, request_us: u64, nap: u64, meter: &mut Meter) -> ! {
    let acks = shm.word(first, Word::Acks);
    let me = first + pos;
    loop {
        if pos == 0 {
            acks.store(0, Ordering::Release);
            for k in 1..size {
                shm.stamp(first + k).store(now_ns(), Ordering::Release);
                let token = shm.word(first + k, Word::Token);
                token.store(1, Ordering::Release);
                futex_wake(token, 1);
            }
            wait_until(acks, |a| a as usize >= size - 1);
            meter.tick();
            sleep_us(nap);
        } else {
            let token = shm.word(me, Word::Token);
            wait_until(token, |t| t == 1);
            token.store(0, Ordering::Release);
            let posted = shm.stamp(me).load(Ordering::Acquire);
            let woke_at = now_ns();
            shm.record(me, Lat::Wake, woke_at.saturating_sub(posted));
            let end = woke_at + request_us * 1000;
            while now_ns() < end {
                spin(64);
            }
            shm.record(me, Lat::Request, now_ns().saturating_sub(posted));
            meter.tick();
            acks.fetch_add(1, Ordering::AcqRel);
            futex_wake(acks, 1);
        }
    }
}

/// Takes or releases a lock word for a thread id.
type LockFn = fn(&AtomicU32, u32);

/// The triple on one CPU: 0 low (FIFO 10, holds the lock), 1 high (FIFO 30, takes it),
/// 2 middle (FIFO 20, spins 10 ms, sleeps 1 ms).
/// What a group member must do before the group barrier: the priority-inversion triple
/// takes its CPU and FIFO priority there, so no member spins at FIFO 20 on the shared CPU
/// while another is still a normal task that has not set its own priority yet.
pub fn before_group(spec: &WorkerSpec) {
    if let WorkType::PriorityInversion { .. } = spec.work {
        pin_shared();
        set_fifo([10, 30, 20][(spec.index - spec.group_first) as usize % 3]);
    }
}

/// The priority-inversion triple; its CPU and priority were set in [`before_group`].
fn priority_inversion(shm: &Shm, first: usize, pos: usize, pi: bool, hold_iters: u64, meter: &mut Meter) -> ! {
    let word = shm.word(first, Word::Lock);
    let tid = gettid();
    let (take, give): (LockFn, LockFn) = if pi { (lock_pi, unlock_pi) } else { (|w, _| lock(w), |w, _| unlock(w)) };
    loop {
        match pos {
            0 => {
                take(word, tid);
                spin(hold_iters);
                give(word, tid);
                meter.tick();
                sleep_us(100);
            }
            1 => {
                sleep_us(1000);
                let t0 = now_ns();
                take(word, tid);
                shm.record(first + pos, Lat::Request, now_ns() - t0);
                give(word, tid);
                meter.tick();
            }
            _ => {
                spin_for(Duration::from_millis(10), meter);
                sleep_us(1000);
            }
        }
    }
}

/// Member k of a pipe wake chain reads pipe k and writes pipe k + 1; the leader puts
/// the first byte into pipe 0.
pub fn wake_chain_pipe(spec: &WorkerSpec, shm: &Shm, work_iters: u64, meter: &mut Meter) -> ! {
    let first = spec.group_first as usize;
    let me = spec.index as usize;
    let size = spec.group_size as usize;
    let (r, w) = group_fds(spec, shm, |n| {
        let pipes: Vec<_> = (0..n).map(|_| pipe_fds()).collect();
        (0..n).map(|k| (pipes[k].0, pipes[(k + 1) % n].1)).collect()
    });
    if me == first {
        // The leader's copy of pipe 0's write end is the last member's FdB.
        shm.stamp(me).store(now_ns(), Ordering::Release);
        write_byte(shm.word(first + size - 1, Word::FdB).load(Ordering::Relaxed) as libc::c_int);
    }
    let next = first + (me - first + 1) % size;
    loop {
        read_byte(r);
        woke(shm, me, me);
        spin(work_iters);
        meter.tick();
        shm.stamp(next).store(now_ns(), Ordering::Release);
        write_byte(w);
    }
}
