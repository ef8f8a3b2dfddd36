//! The NUMA work types in a real 2-node guest (qemu backend, or
//! `SCHEDBOX_TEST_BACKEND=kvm`): the guest kernel shows two nodes with memory, the
//! migration-churn worker's allowed CPUs and working set alternate between the nodes,
//! the working-set-sweep worker's mapping is bound to one node and then the other, and
//! `/proc/vmstat` counts the migrated pages. No assertion on how fast anything ran.

use std::collections::BTreeSet;
use std::time::Duration;

use schedbox::machine::Machine;
use schedbox::op_model::*;
use schedbox::results::StepMetrics;
use schedbox_tests::guest::{ask, boot, end_step, read};
use schedbox_wire::{Owner, RequestBody, ResponseBody};

fn vmstat(m: &mut dyn Machine, key: &str) -> u64 {
    let s = read(m, "/proc/vmstat");
    s.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/vmstat:\n{s}"))
}

fn worker_pid(m: &mut dyn Machine, cgroup: &str) -> u32 {
    let procs = read(m, &format!("/sys/fs/cgroup/schedbox/{cgroup}/cgroup.procs"));
    procs.lines().find_map(|l| l.trim().parse().ok()).unwrap_or_else(|| panic!("no worker in {cgroup}"))
}

/// Reads `what` of `pid` every 50 ms until it showed `want` distinct values (at most
/// 200 reads: a loaded TCG guest may not run the worker for a while): the values seen.
fn sample(
    m: &mut dyn Machine,
    pid: u32,
    want: usize,
    what: impl Fn(&mut dyn Machine, u32) -> BTreeSet<String>,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        seen.extend(what(m, pid));
        if seen.len() >= want {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    seen
}

#[test]
fn numa_work_types_move_workers_and_pages_between_the_guest_nodes() {
    // Two nodes of one CPU each: node 0 = CPU 0, node 1 = CPU 1, 256 MiB each.
    let mut vm = boot("2n1l1c1t", "");
    let m = vm.as_mut();
    assert_eq!(read(m, "/sys/devices/system/node/online").trim(), "0-1", "the guest sees two NUMA nodes");
    assert_eq!(read(m, "/sys/devices/system/node/has_memory").trim(), "0-1", "both nodes have memory");
    for (node, cpu) in [(0, "0"), (1, "1")] {
        assert_eq!(read(m, &format!("/sys/devices/system/node/node{node}/cpulist")).trim(), cpu);
    }
    ask(m, RequestBody::BeginScenario { name: "numa-workloads".into() });
    let migrated_before = vmstat(m, "pgmigrate_success");

    let churn = WorkType::NumaMigrationChurn { period_ms: 20, size_kib: 256 };
    let sweep = WorkType::NumaWorkingSetSweep { size_kib: 1024, passes: 4 };
    ask(m, RequestBody::Setup { owner: Owner::Step, defs: vec![CgroupDef::named("mig"), CgroupDef::named("sweep")] });
    for (cg, work) in [("mig", churn), ("sweep", sweep)] {
        let op = Op::spawn(SpawnPlacement::cgroup(cg), WorkSpec::default().work(work.clone()));
        match ask(m, RequestBody::Apply { owner: Owner::Step, op }) {
            ResponseBody::Applied(_) => {}
            other => panic!("spawning {work:?}: {other:?}"),
        }
    }

    // numa-migration-churn: pinned to one node's CPU, then the other's (the first read
    // may predate its first pinning: "0-1", not counted) ...
    let mig = worker_pid(m, "mig");
    let allowed = sample(m, mig, 2, |m, p| {
        let status = read(m, &format!("/proc/{p}/status"));
        status
            .lines()
            .filter_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|v| v.trim().to_owned())
            .filter(|v| v.parse::<u32>().is_ok())
            .collect()
    });
    assert_eq!(allowed, ["0", "1"].map(String::from).into(), "numa-migration-churn allowed CPUs");
    // ... and its 256 KiB working set (64 pages) wholly on one node, then the other.
    let homes = sample(m, mig, 2, |m, p| {
        let maps = read(m, &format!("/proc/{p}/numa_maps"));
        maps.lines()
            .filter(|l| l.contains(" anon=64 "))
            .flat_map(|l| ["N0=64 ", "N1=64 "].into_iter().filter(|n| l.contains(*n)).map(String::from))
            .collect()
    });
    assert_eq!(homes, ["N0=64 ", "N1=64 "].map(String::from).into(), "numa-migration-churn working set nodes");
    // numa-working-set-sweep: its mapping bound (MPOL_BIND) to node 0, then node 1.
    let sweep_pid = worker_pid(m, "sweep");
    let binds = sample(m, sweep_pid, 2, |m, p| {
        let maps = read(m, &format!("/proc/{p}/numa_maps"));
        maps.lines()
            .filter_map(|l| l.split_whitespace().nth(1).filter(|pol| pol.starts_with("bind:")).map(String::from))
            .collect()
    });
    assert_eq!(binds, ["bind:0", "bind:1"].map(String::from).into(), "numa-working-set-sweep policies");
    let sweep_status = read(m, &format!("/proc/{sweep_pid}/status"));
    assert!(sweep_status.contains("Cpus_allowed_list:\t0\n"), "the sweep runs from node 0: {sweep_status}");

    let sm: StepMetrics = end_step(m);
    let migrated = vmstat(m, "pgmigrate_success") - migrated_before;
    let w = |cg: &str| sm.workers.iter().find(|w| w.cgroup == cg).unwrap_or_else(|| panic!("{cg}: {sm:?}")).clone();
    let (mig_w, sweep_w) = (w("mig"), w("sweep"));
    let pass = sweep_w.request_latency.clone().expect("numa-working-set-sweep records its pass times");
    eprintln!(
        "pgmigrate_success +{migrated}; migration-churn {} moves on CPUs {:?}; sweep {} passes, pass time {pass:?}",
        mig_w.work_units, mig_w.cpus, sweep_w.work_units
    );
    // Both moves of the churn's 64 pages were seen above, and the sweep moved its 256.
    assert!(migrated >= 2 * 64 + 256, "pgmigrate_success grew by only {migrated}");
    assert!(mig_w.alive && mig_w.work_units >= 2, "{mig_w:?}");
    let ran_on: BTreeSet<u32> = mig_w.cpus.iter().map(|c| c.0).collect();
    assert_eq!(ran_on, [0, 1].into(), "numa-migration-churn ran on both nodes' CPUs: {mig_w:?}");
    assert!(sweep_w.alive && sweep_w.work_units >= 8, "{sweep_w:?}");
    assert!(pass.samples >= sweep_w.work_units.min(8) && pass.p50_ns <= pass.max_ns, "{pass:?}");

    ask(m, RequestBody::EndScenario);
    vm.power_off().unwrap();
}
