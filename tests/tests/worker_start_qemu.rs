//! How workers start, in a real guest (qemu backend, or `SCHEDBOX_TEST_BACKEND=kvm`):
//! by default the worker parent (`sbx-zygote`) forks them without exec; with
//! `schedbox.workers=exec` on the kernel command line (the fallback when the worker
//! parent is gone) each is a fork and exec of the agent. Both ways the workers land in
//! their cgroup, pipe-io pairs exchange messages, and every worker counts work.

use std::time::Duration;

use schedbox::machine::Machine;
use schedbox::op_model::*;
use schedbox::results::StepMetrics;
use schedbox_tests::guest::{ask, boot, try_read};
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
    let sm = match ask(m, RequestBody::EndStep) {
        ResponseBody::Teardown(t) => {
            assert!(t.leftovers.is_empty(), "{:?}", t.leftovers);
            t.step.expect("EndStep reports the step metrics")
        }
        other => panic!("{other:?}"),
    };
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
