//! How workers start, in a real guest (qemu backend, or `SCHEDBOX_TEST_BACKEND=kvm`):
//! by default the worker parent (`sbx-zygote`) forks them without exec; with
//! `schedbox.workers=exec` on the kernel command line (the fallback when the worker
//! parent is gone) each is a fork and exec of the agent. Both ways the workers land in
//! their cgroup, pipe-io pairs exchange messages, and every worker counts work. With
//! `mode: thread` the workers of a spawn are the threads of one process.

use std::time::Duration;

use schedbox::machine::Machine;
use schedbox::op_model::*;
use schedbox::results::StepMetrics;
use schedbox_tests::guest::{ask, boot, end_step, try_read};
use schedbox_wire::{Owner, RequestBody, ResponseBody};

/// The `comm` of every user-space process in the guest's root cgroup, where the agent
/// and its worker parent live (kernel threads have no command line).
fn root_comms(m: &mut dyn Machine) -> Vec<String> {
    let procs = try_read(m, "/sys/fs/cgroup/cgroup.procs").expect("the root cgroup");
    let mut out = Vec::new();
    for pid in procs.lines().map(str::trim) {
        if try_read(m, &format!("/proc/{pid}/cmdline")).is_some_and(|c| !c.is_empty()) {
            out.extend(try_read(m, &format!("/proc/{pid}/comm")).map(|c| c.trim().to_owned()));
        }
    }
    out
}

/// Boots with `cmdline`, starts 2 pipe-io pairs and 2 spinners in cgroup `w`, and
/// returns the workers' argv[0]s, the guest's user processes and the step's metrics.
fn start_workers(cmdline: &str) -> (Vec<String>, Vec<String>, StepMetrics) {
    let mut vm = boot("1n1l2c1t", cmdline);
    let m = vm.as_mut();
    ask(m, RequestBody::BeginScenario { name: "worker-start".into() });
    ask(m, RequestBody::Setup { owner: Owner::Step, defs: vec![CgroupDef::named("w")] });
    for (work, n) in [(WorkType::PipeIo { burst_iters: 4 }, 4), (WorkType::SpinWait, 2)] {
        let op = Op::spawn(SpawnPlacement::cgroup("w"), WorkSpec::default().work(work.clone()).workers(n));
        match ask(m, RequestBody::Apply { owner: Owner::Step, op }) {
            ResponseBody::Applied(_) => {}
            other => panic!("spawning {work:?}: {other:?}"),
        }
    }
    let procs = try_read(m, "/sys/fs/cgroup/schedbox/w/cgroup.procs").expect("cgroup w");
    let argv0: Vec<String> = procs
        .lines()
        .map(|pid| {
            let cmdline = try_read(m, &format!("/proc/{}/cmdline", pid.trim())).unwrap_or_default();
            cmdline.split('\0').next().unwrap_or_default().to_owned()
        })
        .collect();
    let comms = root_comms(m);
    std::thread::sleep(Duration::from_millis(500));
    let sm = end_step(m);
    ask(m, RequestBody::EndScenario);
    vm.power_off().unwrap();
    (argv0, comms, sm)
}

#[test]
fn workers_start_from_the_worker_parent_and_by_exec_when_asked() {
    for (cmdline, exec) in [("", false), ("schedbox.workers=exec", true)] {
        let (argv0, comms, sm) = start_workers(cmdline);
        eprintln!("{cmdline:?}: argv0 {argv0:?}; user processes {comms:?}");
        assert_eq!(argv0.len(), 6, "six workers in cgroup w: {argv0:?}");
        let execd = argv0.iter().filter(|a| *a == "schedbox-worker").count();
        let parents = comms.iter().filter(|c| *c == "sbx-zygote").count();
        if exec {
            assert_eq!((execd, parents), (6, 0), "exec'd workers and no worker parent: {argv0:?} {comms:?}");
        } else {
            assert_eq!((execd, parents), (0, 1), "forked workers and one worker parent: {argv0:?} {comms:?}");
        }
        assert_eq!(sm.workers.len(), 6, "{sm:?}");
        for w in &sm.workers {
            assert!(w.alive && w.work_units > 0, "{cmdline:?}: every worker ran its loop: {w:?}");
        }
    }
}

/// `mode: thread` (spawn-threads): the workers of each spawn are the threads of one
/// process in the cgroup, each with its own task id, metrics and kernel view; the group
/// work types that share descriptors or signal a peer work between threads too.
#[test]
fn thread_workers_are_the_threads_of_one_process_per_spawn() {
    let mut vm = boot("1n1l2c1t", "");
    let m = vm.as_mut();
    ask(m, RequestBody::BeginScenario { name: "threads".into() });
    ask(m, RequestBody::Setup { owner: Owner::Step, defs: vec![CgroupDef::named("t")] });
    let spawns = [(WorkType::SpinWait, 4), (WorkType::EpollStorm { waiters: 2 }, 3), (WorkType::SignalStorm, 2)];
    for (work, n) in &spawns {
        let spec = WorkSpec::default().work(work.clone()).workers(*n).mode(WorkerMode::Thread);
        match ask(m, RequestBody::Apply { owner: Owner::Step, op: Op::spawn(SpawnPlacement::cgroup("t"), spec) }) {
            ResponseBody::Applied(_) => {}
            other => panic!("spawning {work:?} as threads: {other:?}"),
        }
    }
    let list = |m: &mut dyn Machine, file: &str| -> Vec<u32> {
        let text = try_read(m, &format!("/sys/fs/cgroup/schedbox/t/{file}")).expect(file);
        let mut v: Vec<u32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        v.sort_unstable();
        v
    };
    let (procs, threads) = (list(m, "cgroup.procs"), list(m, "cgroup.threads"));
    assert_eq!(procs.len(), 3, "one process per spawn: {procs:?}");
    let mut counts: Vec<u32> = procs
        .iter()
        .map(|p| {
            let status = try_read(m, &format!("/proc/{p}/status")).unwrap_or_default();
            status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
        })
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, [2, 3, 4], "threads per process");
    assert_eq!(threads.len(), 9, "nine worker threads in the cgroup: {threads:?}");
    std::thread::sleep(Duration::from_millis(700));
    let sm = end_step(m);
    let mut tids: Vec<u32> = sm.workers.iter().map(|w| w.tid).collect();
    tids.sort_unstable();
    assert_eq!(tids, threads, "each worker's tid is one of the cgroup's threads");
    for w in &sm.workers {
        eprintln!(
            "tid {} #{}: {} units, cpu {} ns, wake {:?}",
            w.tid, w.index, w.work_units, w.cpu_time_ns, w.wake_latency
        );
        assert!(w.alive && w.work_units > 0 && w.cpu_time_ns > 0, "every thread ran its loop: {w:?}");
    }
    let waiters = sm.workers.iter().filter(|w| w.wake_latency.as_ref().is_some_and(|l| l.samples > 0)).count();
    assert!(waiters >= 2, "the epoll-storm waiters (threads sharing the leader's eventfd) woke: {sm:?}");
    assert!(try_read(m, &format!("/proc/{}/status", procs[0])).is_none(), "the threads' processes are gone");
    ask(m, RequestBody::EndScenario);
    vm.power_off().unwrap();
}
