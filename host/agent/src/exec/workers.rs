//! Worker processes: one process per worker, started inside its cgroup, coordinated and
//! counted through a shared page per spawn.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use schedbox_ops::results::{Latency, WorkerMetrics, WorkerStat};
use schedbox_ops::{AffinityIntent, WorkSpec, WorkType, WorkerCount, WorkerMode};
use schedbox_wire::Owner;

use super::cpuset::{self, AffinityCtx, Topo};
use super::{cgroupfs, procstat, spawn};
use crate::shm::{Lat, Shm, Word};
use crate::worker::{self, WorkerSpec};
use crate::zygote;

/// How long workers may take to report their set-up after the last one started.
const REPORT_WAIT: Duration = Duration::from_secs(10);

/// One worker process.
pub struct Worker {
    /// Its task id: the pid of a process worker, the tid of a thread worker.
    pub pid: u32,
    /// The process that holds it (itself, or a thread worker's process): killed and
    /// reaped for it.
    pub process: u32,
    /// Scenario cgroup; `""` for runner-cgroup workers.
    pub cgroup: String,
    pub owner: Owner,
    /// Index within its spawn (its slot; round-robin key for single-CPU affinity).
    pub index: u32,
    pub shm: Rc<Shm>,
    /// False once reaped.
    pub alive: bool,
    /// When it was started (its wall time counts from here).
    pub started: Instant,
}

/// The CPUs a worker in `cgroup` (`None`: the runner's) may use.
pub fn allowed_cpus(cgroup: Option<&str>, topo: &Topo) -> Result<Vec<u32>, String> {
    match cgroup {
        Some(name) => cgroupfs::effective_cpus(&cgroupfs::dir(name)),
        None => Ok(topo.online.clone()),
    }
}

/// Workers for `spec`: the count, or the percentage of the cgroup's CPUs, rounded up to
/// whole groups for the paired work types.
pub fn count(spec: &WorkSpec, allowed: usize, runner: bool) -> Result<u32, String> {
    let group = worker::group_size(&spec.work).max(1);
    let n = match spec.workers {
        WorkerCount::Count(n) => n,
        WorkerCount::Pct(_) if runner => {
            return Err("workers-pct needs a cgroup (its cpuset is the denominator); use a worker count".into())
        }
        WorkerCount::Pct(p) => ((p / 100.0 * allowed as f64).round() as u32).max(1).next_multiple_of(group),
    };
    if n > schedbox_ops::MAX_WORKERS_PER_SPAWN {
        return Err(format!(
            "{n} workers exceed the limit of {} per spawn; spawn fewer or split them over several spawns",
            schedbox_ops::MAX_WORKERS_PER_SPAWN
        ));
    }
    if n % group != 0 {
        return Err(format!(
            "{} runs in groups of {group} workers; {n} is not a multiple of {group}",
            work_name(&spec.work)
        ));
    }
    Ok(n)
}

fn work_name(w: &WorkType) -> String {
    format!("{w:?}").split([' ', '(', '{']).next().unwrap_or_default().to_owned()
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("creating a pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: pipe2 just returned these two descriptors, owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn siblings(cpu: u32) -> Vec<u32> {
    let path = format!("/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list");
    std::fs::read_to_string(path).map(|s| crate::topology::parse_cpu_list(&s)).unwrap_or_else(|_| vec![cpu])
}

fn random_below(seed: &mut u64) -> impl FnMut(usize) -> usize + '_ {
    move |n| {
        // xorshift64: random-subset needs variety, not quality.
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed % n.max(1) as u64) as usize
    }
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (t.as_nanos() as u64) | 1
}

/// Starts the workers of `spec` in `cgroup` (`None`: the runner's cgroup), forked by the
/// zygote (one request for the whole spawn; by a fork and exec each without one), waits
/// until each reported its set-up, then releases them together through the start barrier
/// ([`Shm::release_all`]); on any failure none is left running.
pub fn spawn(cgroup: Option<&str>, spec: &WorkSpec, owner: Owner, topo: &Topo) -> Result<Vec<Worker>, String> {
    let allowed = allowed_cpus(cgroup, topo)?;
    let n = count(spec, allowed.len(), cgroup.is_none())?;
    if spec.work.is_block_io() {
        crate::blockdev::ensure()?;
    }
    let group = worker::group_size(&spec.work).max(1);
    let hist_cpus = hist_cpus(topo);
    let shm =
        Rc::new(Shm::create(n as usize, hist_cpus).map_err(|e| format!("creating the workers' shared page: {e}"))?);
    let (report_r, report_w) = pipe()?;
    let cx = AffinityCtx { allowed: &allowed, topo, siblings: &siblings };
    let mut seed = seed();
    let mut random = random_below(&mut seed);
    let mut specs = Vec::with_capacity(n as usize);
    for index in 0..n {
        let cpus = cpuset::affinity(&spec.affinity, index, &cx, &mut random)
            .map_err(|e| format!("affinity {:?}: {e}", spec.affinity))?;
        specs.push(WorkerSpec {
            index,
            work: spec.work.clone(),
            policy: spec.policy.clone(),
            nice: spec.nice,
            comm: spec.comm.clone(),
            cpus,
            shm_fd: shm.raw_fd(),
            slots: n,
            hist_cpus: hist_cpus as u32,
            group_first: index - index % group,
            group_size: group,
            pipe: None,
            report_fd: report_w.as_raw_fd(),
            thread: spec.mode == WorkerMode::Thread,
        });
    }
    if spec.mode == WorkerMode::Thread {
        return spawn_threads(specs, cgroup, owner, shm, (report_r, report_w));
    }
    let mut started: Vec<Worker> = Vec::new();
    let worker = |pid: u32, index: u32| Worker {
        pid,
        process: pid,
        cgroup: cgroup.unwrap_or_default().to_owned(),
        owner,
        index,
        shm: shm.clone(),
        alive: true,
        started: Instant::now(),
    };
    let pipe_io = matches!(spec.work, WorkType::PipeIo { .. });
    let mut forked = false;
    if zygote::available() {
        let dir = cgroup.map(cgroup_dir).transpose()?;
        let dir_fd = dir.as_ref().map(AsRawFd::as_raw_fd);
        match zygote::spawn(&specs, shm.raw_fd(), report_w.as_raw_fd(), dir_fd, pipe_io) {
            Ok(pids) => {
                started.extend(pids.into_iter().zip(0..).map(|(pid, i)| worker(pid, i)));
                forked = true;
            }
            Err((pids, e)) if !pids.is_empty() || zygote::available() => {
                started.extend(pids.into_iter().zip(0..).map(|(pid, i)| worker(pid, i)));
                return fail(&mut started, format!("starting {n} workers: {e}"));
            }
            // The zygote is gone: start them by exec below.
            Err(_) => {}
        }
    }
    if !forked {
        if let Err(e) = exec_all(specs, cgroup, pipe_io, &shm, report_w.as_raw_fd(), &mut started, &worker) {
            return fail(&mut started, e);
        }
    }
    drop(report_w);
    if let Err(e) = read_reports(report_r, n) {
        return fail(&mut started, e);
    }
    // Every worker set itself up and waits at the start barrier: release them together.
    shm.release_all();
    Ok(started)
}

/// Starts `specs` as the threads of one process (a fork and exec of the agent, their
/// specs on its stdin) in `cgroup`, waits for every set-up report, takes each thread's
/// task id from the shared page and releases them together.
fn spawn_threads(
    specs: Vec<WorkerSpec>,
    cgroup: Option<&str>,
    owner: Owner,
    shm: Rc<Shm>,
    (report_r, report_w): (OwnedFd, OwnedFd),
) -> Result<Vec<Worker>, String> {
    let n = specs.len();
    let json = serde_json::to_vec(&specs).map_err(|e| format!("encoding the worker specs: {e}"))?;
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("sbx-threads").arg(worker::THREADS_ARG).stdin(Stdio::piped());
    spawn::place(&mut cmd, cgroup, vec![shm.raw_fd(), report_w.as_raw_fd()])?;
    let mut child = cmd.spawn().map_err(|e| format!("starting the process of {n} thread workers: {e}"))?;
    let process = child.id();
    let mut started = vec![Worker {
        pid: process,
        process,
        cgroup: cgroup.unwrap_or_default().to_owned(),
        owner,
        index: 0,
        shm: shm.clone(),
        alive: true,
        started: Instant::now(),
    }];
    let fed = child.stdin.take().map(|mut stdin| std::io::Write::write_all(&mut stdin, &json));
    if let Some(Err(e)) = fed {
        return fail(&mut started, format!("handing {n} thread workers their specs: {e}"));
    }
    drop(report_w);
    if let Err(e) = read_reports(report_r, n as u32) {
        return fail(&mut started, e);
    }
    let started_at = started[0].started;
    let workers: Vec<Worker> = (0..n as u32)
        .map(|index| Worker {
            pid: shm.word(index as usize, Word::Pid).load(Ordering::Acquire),
            process,
            cgroup: cgroup.unwrap_or_default().to_owned(),
            owner,
            index,
            shm: shm.clone(),
            alive: true,
            started: started_at,
        })
        .collect();
    if let Some(w) = workers.iter().find(|w| w.pid == 0) {
        return fail(&mut started, format!("thread worker {} of {n} reported no task id", w.index));
    }
    shm.release_all();
    Ok(workers)
}

/// CPU ids a worker's histogram counts: every possible CPU of the guest
/// (`/sys/devices/system/cpu/possible`), at least every online one.
fn hist_cpus(topo: &Topo) -> usize {
    let possible = std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .map(|s| crate::topology::parse_cpu_list(&s))
        .unwrap_or_default();
    let top = possible.iter().chain(&topo.online).max().copied().unwrap_or(0);
    top as usize + 1
}

/// Opens scenario cgroup `name`'s directory (for `CLONE_INTO_CGROUP`).
fn cgroup_dir(name: &str) -> Result<OwnedFd, String> {
    let dir = cgroupfs::dir(name);
    std::fs::File::open(&dir).map(OwnedFd::from).map_err(|e| format!("opening cgroup {}: {e}", dir.display()))
}

/// Starts `specs` by a fork and exec of the agent each (without the zygote), appending
/// each started one to `started` (the caller kills them on an error).
fn exec_all(
    mut specs: Vec<WorkerSpec>,
    cgroup: Option<&str>,
    pipe_io: bool,
    shm: &Shm,
    report_w: RawFd,
    started: &mut Vec<Worker>,
    worker: &dyn Fn(u32, u32) -> Worker,
) -> Result<(), String> {
    let n = specs.len();
    // The agent's copies of the pipe-io ends stay open until every worker inherited its own.
    let mut held: Vec<OwnedFd> = Vec::new();
    if pipe_io {
        for pair in specs.chunks_mut(2) {
            let (ab, ba) = match (pipe(), pipe()) {
                (Ok(ab), Ok(ba)) => (ab, ba),
                (Err(e), _) | (_, Err(e)) => return Err(e),
            };
            // Position 0 writes a→b and reads b→a; position 1 the other way round.
            pair[0].pipe = Some((ba.0.as_raw_fd(), ab.1.as_raw_fd()));
            if let Some(p1) = pair.get_mut(1) {
                p1.pipe = Some((ab.0.as_raw_fd(), ba.1.as_raw_fd()));
            }
            held.extend([ab.0, ab.1, ba.0, ba.1]);
        }
    }
    for wspec in specs {
        let index = wspec.index;
        let json = match serde_json::to_string(&wspec) {
            Ok(j) => j,
            Err(e) => return Err(format!("encoding the worker spec: {e}")),
        };
        let mut inherit: Vec<RawFd> = vec![shm.raw_fd(), report_w];
        inherit.extend(wspec.pipe.iter().flat_map(|&(r, w)| [r, w]));
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg0("schedbox-worker").arg(worker::ARG).arg(json).stdin(Stdio::null());
        spawn::place(&mut cmd, cgroup, inherit)?;
        match cmd.spawn() {
            Ok(child) => started.push(worker(child.id(), index)),
            Err(e) => return Err(format!("starting worker {index} of {n}: {e}")),
        }
    }
    Ok(())
}

/// Kills the workers started so far and fails with `msg`.
fn fail(started: &mut [Worker], msg: String) -> Result<Vec<Worker>, String> {
    stop_all(started.iter_mut());
    Err(msg)
}

/// Reads one `<index> ok|err <why>` line per worker.
fn read_reports(from: OwnedFd, n: u32) -> Result<(), String> {
    let deadline = Instant::now() + REPORT_WAIT;
    let mut bytes = Vec::new();
    loop {
        let ok = tally(&bytes, n)?;
        if ok == n as usize {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd { fd: from.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as libc::c_int) };
        if rc < 0 {
            continue;
        }
        if rc == 0 {
            return Err(format!("only {ok} of {n} workers reported their set-up within {} s", REPORT_WAIT.as_secs()));
        }
        let mut buf = [0u8; 4096];
        // SAFETY: reads into a valid buffer of the length passed, from a descriptor we own.
        let got = unsafe { libc::read(from.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if got == 0 {
            return Err(format!("only {ok} of {n} workers reported their set-up; the others exited first"));
        }
        if got > 0 {
            bytes.extend_from_slice(&buf[..got as usize]);
        }
    }
}

/// How many complete report lines say `ok`; the first `err` line as an error.
fn tally(bytes: &[u8], n: u32) -> Result<usize, String> {
    let complete = String::from_utf8_lossy(&bytes[..bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)]);
    if let Some((index, why)) = complete.lines().find_map(|l| l.split_once(" err ")) {
        return Err(format!("worker {index} of {n} failed to set up: {why}"));
    }
    Ok(complete.lines().filter(|l| l.ends_with(" ok")).count())
}

/// Pins every worker in `workers` the way `intent` says, against `cgroup`'s cpuset.
pub fn set_affinity(workers: &[&Worker], cgroup: &str, intent: &AffinityIntent, topo: &Topo) -> Result<(), String> {
    let allowed = allowed_cpus(Some(cgroup).filter(|c| !c.is_empty()), topo)?;
    let cx = AffinityCtx { allowed: &allowed, topo, siblings: &siblings };
    let mut seed = seed();
    let mut random = random_below(&mut seed);
    for w in workers.iter().filter(|w| w.alive) {
        let cpus = cpuset::affinity(intent, w.index, &cx, &mut random)?.unwrap_or_else(|| topo.online.clone());
        worker::set_affinity(w.pid as libc::pid_t, &cpus)
            .map_err(|e| format!("pinning worker pid {} to CPUs {}: {e}", w.pid, cpuset::format_cpu_list(&cpus)))?;
    }
    Ok(())
}

/// Metrics of `workers`, one entry per cgroup in first-seen order. Read before they stop.
pub fn metrics<'a>(workers: impl IntoIterator<Item = &'a Worker>) -> Vec<WorkerMetrics> {
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<String, (WorkerMetrics, BTreeMap<u32, u64>)> = BTreeMap::new();
    for w in workers {
        let (m, hist) = by.entry(w.cgroup.clone()).or_insert_with(|| {
            order.push(w.cgroup.clone());
            (empty_metrics(&w.cgroup), BTreeMap::new())
        });
        let s = if w.alive { procstat::read(w.pid) } else { Default::default() };
        m.workers += 1;
        m.iterations += w.shm.iterations(w.index as usize).load(Ordering::Relaxed);
        m.cpu_time_ns += s.cpu_time_ns;
        m.run_delay_ns += s.run_delay_ns;
        m.migrations += s.migrations;
        for (cpu, n) in w.shm.histogram(w.index as usize) {
            *hist.entry(cpu).or_default() += n;
        }
    }
    order
        .into_iter()
        .filter_map(|c| by.remove(&c))
        .map(|(mut m, hist)| {
            m.cpus = hist.into_iter().collect();
            m
        })
        .collect()
}

/// One [`WorkerStat`] per worker, in order. Read before they stop.
pub fn stats<'a>(workers: impl IntoIterator<Item = &'a Worker>) -> Vec<WorkerStat> {
    workers
        .into_iter()
        .map(|w| {
            let s = if w.alive { procstat::read(w.pid) } else { Default::default() };
            let slot = w.index as usize;
            let [gap, gap_cpu, gap_at] = w.shm.gap(slot).map(|a| a.load(Ordering::Relaxed));
            let wall_time_ns = w.started.elapsed().as_nanos() as u64;
            WorkerStat {
                cgroup: w.cgroup.clone(),
                tid: w.pid,
                index: w.index,
                alive: w.alive,
                work_units: w.shm.iterations(slot).load(Ordering::Relaxed),
                cpu_time_ns: s.cpu_time_ns,
                wall_time_ns,
                off_cpu_ns: wall_time_ns.saturating_sub(s.cpu_time_ns),
                run_delay_ns: s.run_delay_ns,
                migrations: s.migrations,
                max_gap_ns: gap,
                max_gap_cpu: gap_cpu as u32,
                max_gap_at_ns: gap_at,
                cpus: w.shm.histogram(slot),
                wake_latency: latency(&w.shm, slot, Lat::Wake),
                request_latency: latency(&w.shm, slot, Lat::Request),
            }
        })
        .collect()
}

fn latency(shm: &Shm, slot: usize, which: Lat) -> Option<Latency> {
    shm.latency(slot, which).map(|(samples, p50_ns, p90_ns, p99_ns, max_ns)| Latency {
        samples,
        p50_ns,
        p90_ns,
        p99_ns,
        max_ns,
    })
}

/// A stopped worker's last counters: `alive` false.
pub fn stopped(mut stats: Vec<WorkerStat>) -> Vec<WorkerStat> {
    for s in &mut stats {
        s.alive = false;
    }
    stats
}

fn empty_metrics(cgroup: &str) -> WorkerMetrics {
    WorkerMetrics {
        cgroup: cgroup.to_owned(),
        workers: 0,
        iterations: 0,
        cpu_time_ns: 0,
        run_delay_ns: 0,
        migrations: 0,
        cpus: Vec::new(),
    }
}

/// Folds `more` into `into`, summing entries of the same cgroup.
pub fn merge_metrics(into: &mut Vec<WorkerMetrics>, more: Vec<WorkerMetrics>) {
    for m in more {
        match into.iter_mut().find(|x| x.cgroup == m.cgroup) {
            None => into.push(m),
            Some(x) => {
                x.workers += m.workers;
                x.iterations += m.iterations;
                x.cpu_time_ns += m.cpu_time_ns;
                x.run_delay_ns += m.run_delay_ns;
                x.migrations += m.migrations;
                let mut hist: BTreeMap<u32, u64> = x.cpus.drain(..).collect();
                for (c, n) in m.cpus {
                    *hist.entry(c).or_default() += n;
                }
                x.cpus = hist.into_iter().collect();
            }
        }
    }
}

/// Kills and reaps `workers` (read their metrics before): every SIGKILL first, so they
/// exit in parallel, then every wait.
pub fn stop_all<'a>(workers: impl IntoIterator<Item = &'a mut Worker>) {
    let mut alive: Vec<&mut Worker> = workers.into_iter().filter(|w| w.alive).collect();
    // The threads of one process die with it: one kill and one wait per process.
    let mut processes: Vec<u32> = alive.iter().map(|w| w.process).collect();
    processes.sort_unstable();
    processes.dedup();
    for &p in &processes {
        spawn::kill(p);
    }
    for &p in &processes {
        spawn::reap(p);
    }
    for w in alive.iter_mut() {
        w.alive = false;
    }
}

/// Whether `pid` still exists (as anything but a zombie).
pub fn pid_exists(pid: u32) -> bool {
    match std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")) {
        Ok(s) => !s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let spin = WorkSpec::default();
        assert_eq!(count(&spin.clone().workers(3), 4, false), Ok(3));
        assert_eq!(count(&spin.clone().workers_pct(50.0), 4, false), Ok(2));
        assert_eq!(count(&spin.clone().workers_pct(1.0), 4, false), Ok(1), "at least one");
        assert_eq!(count(&spin.clone().workers_pct(100.0), 3, false), Ok(3));
        assert!(count(&spin.clone().workers_pct(50.0), 4, true).unwrap_err().contains("needs a cgroup"));
        let pp = WorkSpec::default().work(WorkType::FutexPingPong { spin_iters: 1 });
        assert_eq!(count(&pp.clone().workers_pct(25.0), 4, false), Ok(2), "rounded up to a whole pair");
        let e = count(&pp.workers(3), 4, false).unwrap_err();
        assert!(e.contains("FutexPingPong runs in groups of 2"), "{e}");
    }

    #[test]
    fn reports_count_only_complete_lines() {
        assert_eq!(tally(b"0 ok\n1 o", 2), Ok(1));
        assert_eq!(tally(b"0 ok\n1 err pinning to CPUs [3]: Inv", 2), Ok(1), "the reason is not complete yet");
        let e = tally(b"0 ok\n1 err pinning to CPUs [3]: Invalid argument\n", 2).unwrap_err();
        assert_eq!(e, "worker 1 of 2 failed to set up: pinning to CPUs [3]: Invalid argument");
    }

    #[test]
    fn merging_sums_per_cgroup() {
        let m =
            |cg: &str, cpus: Vec<(u32, u64)>| WorkerMetrics { workers: 1, iterations: 10, cpus, ..empty_metrics(cg) };
        let mut all = vec![m("a", vec![(0, 1)])];
        merge_metrics(&mut all, vec![m("b", vec![]), m("a", vec![(0, 2), (3, 1)])]);
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].workers, all[0].iterations, all[0].cpus.clone()), (2, 20, vec![(0, 3), (3, 1)]));
    }
}
