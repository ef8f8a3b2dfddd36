//! The workload families in a real guest (qemu backend, or `SCHEDBOX_TEST_BACKEND=kvm`):
//! one boot, three steps, each work type in its own cgroup. Every assertion is on what
//! the kernel shows (`/proc/<pid>/stat` nice, policy and page faults, the allowed CPU
//! list, the CPUs a worker ran on) or on the workers' own measurements in the step
//! metrics (work units, wake-up and request latency), never on how fast anything ran.

use std::collections::BTreeSet;
use std::time::Duration;

use schedbox::machine::Machine;
use schedbox::op_model::*;
use schedbox::results::{StepMetrics, WorkerStat};
use schedbox_tests::guest::{ask, end_step, read};
use schedbox_wire::{Owner, RequestBody, ResponseBody};

fn pids(m: &mut dyn Machine, cgroup: &str) -> Vec<u32> {
    let procs = read(m, &format!("/sys/fs/cgroup/schedbox/{cgroup}/cgroup.procs"));
    let mut v: Vec<u32> = procs.lines().filter_map(|l| l.trim().parse().ok()).collect();
    v.sort_unstable();
    v
}

/// Field `n` (1-based, as proc(5) numbers them) of `/proc/<pid>/stat`.
fn stat_field(m: &mut dyn Machine, pid: u32, n: usize) -> i64 {
    let stat = read(m, &format!("/proc/{pid}/stat"));
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    rest.split_whitespace().nth(n - 3).and_then(|f| f.parse().ok()).unwrap_or_else(|| panic!("field {n} of {stat}"))
}

fn allowed_list(m: &mut dyn Machine, pid: u32) -> String {
    let status = read(m, &format!("/proc/{pid}/status"));
    status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap_or_default().trim().to_owned()
}

/// Reads `what` on `pid` every 50 ms until it showed `want` distinct values (at most
/// 100 reads: a loaded TCG guest may not run the worker for a while): the values seen.
fn sample<T: Ord>(
    m: &mut dyn Machine,
    pid: u32,
    want: usize,
    what: impl Fn(&mut dyn Machine, u32) -> T,
) -> BTreeSet<T> {
    let mut seen = BTreeSet::new();
    for _ in 0..100 {
        seen.insert(what(m, pid));
        if seen.len() >= want {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    seen
}

/// The first worker pid found in `cgroup` or its child `child` (it moves between them).
fn workers_of(m: &mut dyn Machine, cgroup: &str, child: &str) -> u32 {
    for _ in 0..100 {
        for dir in [cgroup.to_owned(), format!("{cgroup}/{child}")] {
            if let Ok(ResponseBody::File(s)) =
                m.request(RequestBody::ReadFile { path: format!("/sys/fs/cgroup/schedbox/{dir}/cgroup.procs") })
            {
                if let Some(p) = s.lines().find_map(|l| l.trim().parse().ok()) {
                    return p;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no worker in {cgroup} or {cgroup}/{child}")
}

fn setup(m: &mut dyn Machine, cgroups: &[(&str, Option<CpusetSpec>, WorkSpec)]) {
    let defs = cgroups
        .iter()
        .map(|(name, cpuset, _)| match cpuset {
            Some(c) => CgroupDef::named(*name).cpuset(c.clone()),
            None => CgroupDef::named(*name),
        })
        .collect();
    ask(m, RequestBody::Setup { owner: Owner::Step, defs });
    for (name, _, spec) in cgroups {
        match ask(
            m,
            RequestBody::Apply { owner: Owner::Step, op: Op::spawn(SpawnPlacement::cgroup(*name), spec.clone()) },
        ) {
            ResponseBody::Applied(_) => {}
            other => panic!("spawning {spec:?} in {name}: {other:?}"),
        }
    }
}

/// The workers of `cgroup`, by index.
fn workers<'a>(sm: &'a StepMetrics, cgroup: &str) -> Vec<&'a WorkerStat> {
    let mut v: Vec<&WorkerStat> = sm.workers.iter().filter(|w| w.cgroup == cgroup).collect();
    v.sort_by_key(|w| w.index);
    assert!(!v.is_empty(), "no worker of {cgroup} in {:?}", sm.workers);
    v
}

fn all_worked(sm: &StepMetrics, cgroup: &str, n: usize) {
    let ws = workers(sm, cgroup);
    assert_eq!(ws.len(), n, "{cgroup}: {ws:?}");
    for w in ws {
        assert!(w.alive && w.work_units > 0, "{cgroup} worker {} did no work: {w:?}", w.index);
    }
}

fn spec(work: WorkType, n: u32) -> WorkSpec {
    WorkSpec::default().work(work).workers(n)
}

#[test]
fn every_workload_family_shows_its_effect_in_the_kernel_or_its_measurements() {
    // Two cores with two SMT threads each: siblings {0,1} and {2,3}.
    let mut vm = schedbox_tests::guest::boot("1n1l2c2t", "");
    let m = vm.as_mut();
    ask(m, RequestBody::BeginScenario { name: "workloads".into() });

    // --- step 0: CPU and wake paths, schbench ---
    setup(
        m,
        &[
            ("alu", None, spec(WorkType::AluHot, 1)),
            ("smt", None, spec(WorkType::SmtSiblingSpin, 2)),
            ("ipc", None, spec(WorkType::IpcVariance { phase_ms: 5, size_kib: 256 }, 1)),
            ("fan", None, spec(WorkType::FanOutCompute { fan_out: 2, compute_iters: 1000 }, 3)),
            ("asym", None, spec(WorkType::AsymmetricWaker { waker_iters: 100, wakee_iters: 10_000 }, 2)),
            ("epoll", None, spec(WorkType::EpollStorm { waiters: 2 }, 3)),
            ("herd", None, spec(WorkType::ThunderingHerd { waiters: 3, work_iters: 1000 }, 4)),
            ("timer", None, spec(WorkType::TimerLatency { period_us: 1000 }, 1)),
            ("chain", None, spec(WorkType::WakeChain { depth: 3, pipe: true, work_iters: 500 }, 3)),
            ("schb", None, spec(WorkType::Schbench { workers: 2, request_us: 200, sleep_us: 1000 }, 3)),
        ],
    );
    std::thread::sleep(Duration::from_millis(1000));
    // smt-sibling-spin: each worker pinned itself to one CPU, the two to the two threads
    // of one core.
    let smt: Vec<u32> = pids(m, "smt").into_iter().map(|p| allowed_list(m, p).parse().unwrap_or(u32::MAX)).collect();
    assert!(smt.len() == 2 && smt[0] != smt[1] && smt[0] / 2 == smt[1] / 2, "not pinned to SMT siblings: {smt:?}");
    std::thread::sleep(Duration::from_millis(1000));
    let sm = end_step(m);
    for (cg, n) in [("alu", 1), ("smt", 2), ("ipc", 1), ("fan", 3), ("asym", 2), ("epoll", 3), ("herd", 4)] {
        all_worked(&sm, cg, n);
    }
    for (cg, n) in [("timer", 1), ("chain", 3), ("schb", 3)] {
        all_worked(&sm, cg, n);
    }
    // ... and ran there (the first sample may predate the pinning).
    let mut ran: Vec<u32> =
        workers(&sm, "smt").iter().map(|w| w.cpus.iter().max_by_key(|(_, n)| *n).map_or(u32::MAX, |c| c.0)).collect();
    let mut pinned = smt.clone();
    ran.sort_unstable();
    pinned.sort_unstable();
    assert_eq!(ran, pinned, "{:?}", workers(&sm, "smt"));
    // Wakees record wake-up latency; the wakers (position 0) do not.
    for cg in ["fan", "epoll", "herd", "schb"] {
        for w in workers(&sm, cg) {
            let lat = w.wake_latency.as_ref();
            if w.index == 0 {
                assert!(lat.is_none(), "{cg} waker: {w:?}");
            } else {
                let l = lat.unwrap_or_else(|| panic!("{cg} wakee {} has no wake latency: {w:?}", w.index));
                assert!(l.samples > 0 && l.p50_ns <= l.p99_ns && l.p99_ns <= l.max_ns, "{cg}: {l:?}");
            }
        }
    }
    assert!(workers(&sm, "asym")[1].wake_latency.is_some() && workers(&sm, "asym")[0].wake_latency.is_none());
    assert!(workers(&sm, "chain").iter().all(|w| w.wake_latency.as_ref().is_some_and(|l| l.samples > 0)));
    // timer-latency: one lateness sample per expiry, never more than the periods elapsed.
    let t = workers(&sm, "timer")[0];
    let l = t.wake_latency.clone().expect("timer lateness");
    eprintln!("timer-latency lateness: {l:?} over {} ms", t.wall_time_ns / 1_000_000);
    assert!(l.samples > 0 && l.samples <= t.wall_time_ns / 1_000_000 + 1, "{l:?} {t:?}");
    assert!(l.p50_ns <= l.p99_ns && l.p99_ns <= l.max_ns && l.max_ns < t.wall_time_ns, "{l:?}");
    // schbench: a request takes at least its 200 us of CPU, after the wake-up.
    for w in &workers(&sm, "schb")[1..] {
        let req = w.request_latency.clone().expect("schbench request latency");
        let wake = w.wake_latency.clone().unwrap();
        eprintln!("schbench worker {}: wake {wake:?} request {req:?}", w.index);
        assert!(req.samples > 0 && req.p50_ns >= 150_000 && req.max_ns >= wake.max_ns, "{req:?} {wake:?}");
    }

    // --- step 1: churn, contention, memory, sleep/cache, SCHED_DEADLINE ---
    let deadline = SchedPolicy::Deadline { runtime_us: 2000, deadline_us: 10_000, period_us: 10_000 };
    setup(
        m,
        &[
            ("nice", None, spec(WorkType::NiceSweep { period_us: 500 }, 1)),
            ("aff", None, spec(WorkType::AffinityChurn { period_us: 500 }, 1)),
            ("xaff", None, spec(WorkType::CrossAffinityChurn { period_us: 500 }, 2)),
            ("pol", None, spec(WorkType::PolicyChurn { period_us: 500 }, 1)),
            ("mutex", None, spec(WorkType::MutexContention { contenders: 3, hold_iters: 200, work_iters: 200 }, 3)),
            ("sig", None, spec(WorkType::SignalStorm, 2)),
            ("pc", None, spec(WorkType::ProducerConsumerImbalance { producers: 1, consumers: 2, work_iters: 200 }, 3)),
            ("pf", None, spec(WorkType::PageFaultChurn { size_kib: 256 }, 1)),
            ("idle", None, spec(WorkType::IdleChurn { spin_iters: 100, sleep_us: 50 }, 1)),
            ("cy", None, spec(WorkType::CacheYield { size_kib: 128 }, 1)),
            ("cp", None, spec(WorkType::CachePipe { size_kib: 128 }, 2)),
            ("dl", None, spec(WorkType::SpinWait, 1).policy(deadline)),
            ("cgc", None, spec(WorkType::CgroupChurn { period_us: 500 }, 1)),
            ("cga", None, spec(WorkType::CgroupAttachStorm { period_us: 500 }, 2)),
        ],
    );
    let nice = pids(m, "nice")[0];
    let nices = sample(m, nice, 3, |m, p| stat_field(m, p, 19));
    assert!(nices.len() >= 2 && nices.iter().all(|n| (-20..=19).contains(n)), "nice-sweep nice values: {nices:?}");
    let pol = pids(m, "pol")[0];
    let policies = sample(m, pol, 3, |m, p| stat_field(m, p, 41));
    assert!(policies.len() >= 2 && policies.iter().all(|p| [0, 1, 2, 3, 5].contains(p)), "policies: {policies:?}");
    let aff = pids(m, "aff")[0];
    let lists = sample(m, aff, 2, allowed_list);
    assert!(lists.len() >= 2, "affinity-churn allowed lists: {lists:?}");
    for p in pids(m, "xaff") {
        let lists = sample(m, p, 2, allowed_list);
        assert!(lists.len() >= 2, "cross-affinity-churn pid {p} allowed lists: {lists:?}");
    }
    let pf = pids(m, "pf")[0];
    let faults = sample(m, pf, 3, |m, p| stat_field(m, p, 10));
    assert!(faults.len() == 3, "page-fault-churn minflt grows: {faults:?}");
    let dl = pids(m, "dl")[0];
    assert_eq!(stat_field(m, dl, 41), 6, "the kernel accepted SCHED_DEADLINE");
    let dl_sched = read(m, &format!("/proc/{dl}/sched"));
    assert!(dl_sched.lines().any(|l| l.starts_with("dl.runtime")), "{dl_sched}");
    // cgroup-churn and cgroup-attach-storm: the kernel shows each worker in its own
    // cgroup and in the child it made (the step's teardown then removes both: no leftovers).
    for (cg, child) in [("cgc", "churn-0"), ("cga", "attach-storm")] {
        let pid = workers_of(m, cg, child);
        let at = sample(m, pid, 2, |m, p| read(m, &format!("/proc/{p}/cgroup")).trim().to_owned());
        let want: BTreeSet<String> =
            [format!("0::/schedbox/{cg}"), format!("0::/schedbox/{cg}/{child}")].into_iter().collect();
        assert_eq!(at, want, "{cg}: the cgroups its worker was seen in");
    }
    std::thread::sleep(Duration::from_millis(500));
    let sm = end_step(m);
    for (cg, n) in [("nice", 1), ("aff", 1), ("xaff", 2), ("pol", 1), ("mutex", 3), ("sig", 2), ("pc", 3)] {
        all_worked(&sm, cg, n);
    }
    for (cg, n) in [("pf", 1), ("idle", 1), ("cy", 1), ("cp", 2), ("dl", 1), ("cgc", 1), ("cga", 2)] {
        all_worked(&sm, cg, n);
    }
    assert!(workers(&sm, "aff")[0].cpus.len() >= 2, "affinity-churn ran on one CPU: {:?}", workers(&sm, "aff"));
    for w in workers(&sm, "mutex") {
        assert!(w.request_latency.as_ref().is_some_and(|l| l.samples >= w.work_units), "lock waits: {w:?}");
    }

    // --- step 2: real-time contention, each family on its own CPU ---
    let on = |cpu: u32| Some(CpusetSpec::exact([cpu]));
    setup(
        m,
        &[
            ("pre", on(0), spec(WorkType::PreemptStorm { period_us: 2000, burst_iters: 1000 }, 2)),
            ("pi", on(1), spec(WorkType::PriorityInversion { pi: true, hold_iters: 20_000 }, 3)),
            ("npi", on(2), spec(WorkType::PriorityInversion { pi: false, hold_iters: 20_000 }, 3)),
            ("rts", on(3), spec(WorkType::RtStarvation, 2)),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    for cg in ["pi", "npi"] {
        let mut prios: Vec<(i64, i64)> =
            pids(m, cg).into_iter().map(|p| (stat_field(m, p, 41), stat_field(m, p, 40))).collect();
        prios.sort_unstable();
        assert_eq!(prios, [(1, 10), (1, 20), (1, 30)], "{cg}: SCHED_FIFO 10, 20, 30");
    }
    let mut rts: Vec<i64> = pids(m, "rts").into_iter().map(|p| stat_field(m, p, 41)).collect();
    rts.sort_unstable();
    assert_eq!(rts, [0, 1], "rt-starvation: one normal, one SCHED_FIFO");
    std::thread::sleep(Duration::from_millis(1500));
    let sm = end_step(m);
    for (cg, n) in [("pre", 2), ("pi", 3), ("npi", 3)] {
        all_worked(&sm, cg, n);
    }
    for cg in ["pi", "npi"] {
        let high = workers(&sm, cg)[1];
        let l = high.request_latency.clone().unwrap_or_else(|| panic!("{cg}: high's lock wait: {high:?}"));
        eprintln!("{cg}: the high-priority worker's lock wait {l:?}");
        assert!(l.samples > 0, "{l:?}");
    }
    let pre = workers(&sm, "pre");
    assert!(pre[0].wake_latency.as_ref().is_some_and(|l| l.samples > 0), "preempt-storm timer: {:?}", pre[0]);
    let rts = workers(&sm, "rts");
    eprintln!("rt-starvation cpu ns: fifo {} normal {}", rts[0].cpu_time_ns, rts[1].cpu_time_ns);
    assert!(rts[0].work_units > 0 && rts[0].cpu_time_ns > rts[1].cpu_time_ns, "the FIFO spinner dominates: {rts:?}");
    assert!(rts[1].run_delay_ns > 0, "the normal spinner waited behind it: {:?}", rts[1]);

    ask(m, RequestBody::EndScenario);
    vm.power_off().unwrap();
}
