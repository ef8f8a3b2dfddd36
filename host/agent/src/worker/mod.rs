//! The worker process: forked by the zygote (see [`crate::zygote`]) or, without one,
//! `/init worker <json spec>` exec'd by the agent; either way already inside its cgroup. It sets its name, nice, policy and affinity, reports the
//! outcome on the report pipe (one line: `<index> ok` or `<index> err <why>`), then runs
//! its work type until killed, counting iterations and sampling its CPU into its slot of
//! the shared page.

mod work;

use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};

use schedbox_ops::{SchedPolicy, WorkType};
use serde::{Deserialize, Serialize};

use crate::shm::Shm;

/// `argv[1]` that makes the agent binary a worker.
pub const ARG: &str = "worker";
/// `argv[1]` that makes the agent binary the process of a spawn's thread workers (their
/// specs, a JSON list, on stdin).
pub const THREADS_ARG: &str = "threads";
/// `SCHED_EXT` (not in libc yet).
pub const SCHED_EXT: libc::c_int = 7;

/// Everything a worker needs, resolved by the agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// This worker's slot in the shared page (its index within the spawn).
    pub index: u32,
    pub work: WorkType,
    pub policy: SchedPolicy,
    pub nice: i8,
    pub comm: Option<String>,
    /// CPUs to pin to; `None` inherits the cgroup's cpuset.
    pub cpus: Option<Vec<u32>>,
    /// The shared page (inherited descriptor) and its slot count.
    pub shm_fd: RawFd,
    pub slots: u32,
    /// CPU ids the shared page's histograms count (`0..hist_cpus`).
    pub hist_cpus: u32,
    /// The worker group this worker belongs to: slots `first..first + size`.
    pub group_first: u32,
    pub group_size: u32,
    /// Pipe ends of a pipe-io pair: (read, write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipe: Option<(RawFd, RawFd)>,
    /// Where the set-up outcome goes.
    pub report_fd: RawFd,
    /// A thread of the spawn's one process, not a process of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub thread: bool,
}

/// Workers per group (see [`WorkType::group_size`]).
pub fn group_size(work: &WorkType) -> u32 {
    work.group_size()
}

/// The worker's `main`; never returns.
pub fn main(json: Option<&str>) -> ! {
    let spec: WorkerSpec = match json.map(serde_json::from_str) {
        Some(Ok(s)) => s,
        Some(Err(e)) => fail_early(&format!("bad worker spec: {e}")),
        None => fail_early("usage: init worker <json spec>"),
    };
    run_forked(spec)
}

/// A worker with its spec: set-up, report, start barrier, work; never returns. The
/// zygote's children enter here directly (no exec, no JSON).
pub fn run_forked(spec: WorkerSpec) -> ! {
    let shm = match Shm::open(spec.shm_fd, spec.slots as usize, spec.hist_cpus as usize) {
        Ok(shm) => shm,
        Err(e) => fail_set_up(&spec, &format!("mapping the shared stats page: {e}")),
    };
    let io = set_up(&spec).unwrap_or_else(|e| fail_set_up(&spec, &e));
    publish_tid(&spec, &shm);
    report(&spec, "ok");
    // SAFETY: the descriptor is this process's own copy; nothing uses it after the report.
    unsafe { libc::close(spec.report_fd) };
    start(&spec, &shm, io)
}

/// The process of a spawn's thread workers: reads their specs (a JSON list) from stdin,
/// maps the shared page once and runs each worker as a thread (the first on this one);
/// never returns. A worker that fails its set-up ends the process, so the spawn fails.
pub fn threads_main() -> ! {
    let mut json = String::new();
    if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut json) {
        fail_early(&format!("reading the thread workers' specs: {e}"));
    }
    let specs: Vec<WorkerSpec> = serde_json::from_str(&json).unwrap_or_else(|e| fail_early(&format!("bad specs: {e}")));
    let Some(first) = specs.first() else { fail_early("no thread worker specs") };
    let shm = match Shm::open(first.shm_fd, first.slots as usize, first.hist_cpus as usize) {
        Ok(shm) => &*Box::leak(Box::new(shm)),
        Err(e) => fail_set_up(first, &format!("mapping the shared stats page: {e}")),
    };
    let mut specs = specs.into_iter();
    let main = specs.next().expect("checked above");
    for spec in specs {
        let name = format!("sbx-worker-{}", spec.index);
        let failed = spec.clone();
        if let Err(e) = std::thread::Builder::new().name(name).spawn(move || run_thread(spec, shm)) {
            fail_set_up(&failed, &format!("starting its thread: {e}"));
        }
    }
    run_thread(main, shm)
}

fn run_thread(spec: WorkerSpec, shm: &Shm) -> ! {
    let io = set_up(&spec).unwrap_or_else(|e| fail_set_up(&spec, &e));
    publish_tid(&spec, shm);
    report(&spec, "ok");
    start(&spec, shm, io)
}

/// Puts this worker's task id in its slot, before its report: the agent reads thread
/// workers' ids from there, and group peers signal and pin each other by it.
fn publish_tid(spec: &WorkerSpec, shm: &Shm) {
    // SAFETY: gettid only returns a value.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
    shm.word(spec.index as usize, crate::shm::Word::Pid).store(tid, std::sync::atomic::Ordering::Release);
}

/// Waits at the start barrier, then works.
fn start(spec: &WorkerSpec, shm: &Shm, io: Option<work::Dev>) -> ! {
    // The start barrier: no worker takes CPU from the agent while it still starts the rest.
    shm.wait_for_go();
    work::run(spec, shm, io)
}

/// Writes `<index> <outcome>` to the report pipe in one write (the lines of all workers
/// share the pipe; writes of up to PIPE_BUF bytes are never interleaved).
fn report(spec: &WorkerSpec, outcome: &str) {
    let mut line = format!("{} {}", spec.index, outcome.replace('\n', " "));
    let cut = (0..=line.len().min(500)).rev().find(|&i| line.is_char_boundary(i)).unwrap_or(0);
    line.truncate(cut);
    line.push('\n');
    // SAFETY: the agent handed this descriptor to this process for the reports; the
    // ManuallyDrop keeps it open for the other workers of a threads process.
    let mut out = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(spec.report_fd) });
    let _ = out.write_all(line.as_bytes());
}

/// Reports a failed set-up and ends the process.
fn fail_set_up(spec: &WorkerSpec, why: &str) -> ! {
    report(spec, &format!("err {why}"));
    std::process::exit(1)
}

fn fail_early(msg: &str) -> ! {
    eprintln!("schedbox worker: {msg}");
    std::process::exit(2)
}

/// The worker's own set-up: name, nice, policy, affinity, and the block device of the
/// block I/O work types. Applies to the calling thread.
fn set_up(spec: &WorkerSpec) -> Result<Option<work::Dev>, String> {
    let comm = spec.comm.clone().unwrap_or_else(|| format!("sbx-worker-{}", spec.index));
    let mut name = [0u8; 16];
    let n = comm.len().min(15);
    name[..n].copy_from_slice(&comm.as_bytes()[..n]);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes from `name`.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    if spec.nice != 0 {
        // On Linux PRIO_PROCESS with who 0 is the calling thread.
        // SAFETY: plain syscall on this thread; no memory is passed.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, spec.nice.into()) } != 0 {
            return Err(format!("setting nice {}: {}", spec.nice, std::io::Error::last_os_error()));
        }
    }
    set_policy(&spec.policy)?;
    if let Some(cpus) = &spec.cpus {
        set_affinity(0, cpus).map_err(|e| format!("pinning to CPUs {cpus:?}: {e}"))?;
    }
    work::open_io(spec)
}

/// `struct sched_attr` of `sched_setattr(2)` (not in libc).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

const SCHED_DEADLINE: u32 = 6;

fn set_deadline(runtime_us: u64, deadline_us: u64, period_us: u64) -> Result<(), String> {
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: SCHED_DEADLINE,
        runtime: runtime_us.saturating_mul(1000),
        deadline: deadline_us.saturating_mul(1000),
        period: period_us.saturating_mul(1000),
        ..Default::default()
    };
    // SAFETY: `attr` is a valid sched_attr whose size field matches, alive for the call;
    // pid 0 is this process and flags are 0.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if rc == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    let hint = match e.raw_os_error() {
        Some(libc::EBUSY) => " (the CPUs' deadline bandwidth is used up: fewer workers or a smaller runtime/period)",
        Some(libc::EPERM) => {
            " (a deadline task must be allowed every CPU of its root domain: no affinity and no cpuset \
             narrower than the machine)"
        }
        _ => "",
    };
    Err(format!(
        "setting policy SCHED_DEADLINE runtime {runtime_us} us, deadline {deadline_us} us, period {period_us} us: {e}{hint}"
    ))
}

/// Sets this process's policy (the churn work types use it too).
pub fn set_policy(policy: &SchedPolicy) -> Result<(), String> {
    let (which, prio) = match policy {
        SchedPolicy::Deadline { runtime_us, deadline_us, period_us } => {
            return set_deadline(*runtime_us, *deadline_us, *period_us);
        }
        SchedPolicy::Normal => return Ok(()),
        SchedPolicy::Batch => (libc::SCHED_BATCH, 0),
        SchedPolicy::Idle => (libc::SCHED_IDLE, 0),
        SchedPolicy::Fifo(p) => (libc::SCHED_FIFO, i32::from(*p)),
        SchedPolicy::Rr(p) => (libc::SCHED_RR, i32::from(*p)),
        SchedPolicy::Ext => (SCHED_EXT, 0),
    };
    // SAFETY: sched_param is plain old data (musl's has extra fields); zero is valid.
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    param.sched_priority = prio;
    // musl's sched_setscheduler() is a stub returning ENOSYS: use the raw syscall.
    // SAFETY: `param` is a valid sched_param that outlives the call; pid 0 is this process.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setscheduler, 0, which, &param as *const libc::sched_param) };
    if rc == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    Err(match policy {
        SchedPolicy::Ext => format!(
            "setting policy SCHED_EXT: {e} (does the kernel have CONFIG_SCHED_CLASS_EXT and is a sched_ext \
             scheduler allowed to take tasks? attach a scheduler first or use another policy)"
        ),
        other => format!("setting policy {other:?}: {e}"),
    })
}

/// Pins `pid` (0 = this process) to `cpus`.
pub fn set_affinity(pid: libc::pid_t, cpus: &[u32]) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        if (c as usize) < libc::CPU_SETSIZE as usize {
            // SAFETY: the index is below CPU_SETSIZE, so the bit lies inside `set`.
            unsafe { libc::CPU_SET(c as usize, &mut set) };
        }
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed, alive for the call.
    if unsafe { libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use schedbox_ops::Phase;

    #[test]
    fn spec_json_round_trips() {
        for work in [
            WorkType::SpinWait,
            WorkType::Bursty { burst_ms: 3, sleep_ms: 4 },
            WorkType::FutexFanOut { fan_out: 3, spin_iters: 100 },
            WorkType::Sequence(vec![Phase::SpinMs(1), Phase::SleepMs(2), Phase::YieldMs(3)]),
        ] {
            let spec = WorkerSpec {
                index: 3,
                work: work.clone(),
                policy: SchedPolicy::Fifo(10),
                nice: -5,
                comm: Some("hot".into()),
                cpus: Some(vec![1, 3]),
                shm_fd: 5,
                slots: 4,
                hist_cpus: 300,
                group_first: 0,
                group_size: group_size(&work),
                pipe: Some((7, 8)),
                report_fd: 6,
                thread: false,
            };
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(serde_json::from_str::<WorkerSpec>(&json).unwrap(), spec, "{json}");
        }
        assert_eq!(group_size(&WorkType::FutexFanOut { fan_out: 3, spin_iters: 1 }), 4);
        assert_eq!(group_size(&WorkType::PipeIo { burst_iters: 1 }), 2);
        assert_eq!(group_size(&WorkType::Mixed), 1);
    }
}
