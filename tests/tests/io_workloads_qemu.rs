//! The block I/O work types in a real guest (qemu backend, or
//! `SCHEDBOX_TEST_BACKEND=kvm`): the first spawn brings up the kernel's null_blk device,
//! the workers' requests reach it (the kernel's `/sys/block/nullb0/stat` counts at least
//! the sectors the workers completed, `/proc/<pid>/io` counts each worker's bytes), and
//! every request took at least the device's 50 µs completion time (so none was served
//! from the page cache). No assertion on how fast anything ran.

use std::collections::BTreeMap;
use std::time::Duration;

use schedbox::machine::Machine;
use schedbox::op_model::*;
use schedbox::results::{StepMetrics, WorkerStat};
use schedbox_tests::guest::{ask, boot, end_step, read};
use schedbox_wire::{Owner, RequestBody, ResponseBody};

/// The floor of the latency bucket that holds 50 µs: quarter-octave buckets, so every
/// request of at least 50 µs reports a percentile of at least this.
const COMPLETION_FLOOR_NS: u64 = 49_152;

/// `/sys/block/nullb0/stat`: (sectors read, sectors written).
fn device_sectors(m: &mut dyn Machine) -> (u64, u64) {
    let stat = read(m, "/sys/block/nullb0/stat");
    let f: Vec<u64> = stat.split_whitespace().map(|v| v.parse().unwrap()).collect();
    (f[2], f[6])
}

/// `read_bytes` and `write_bytes` of `/proc/<pid>/io` for every worker of `cgroup`.
fn task_io(m: &mut dyn Machine, cgroup: &str) -> BTreeMap<u32, (u64, u64)> {
    let procs = read(m, &format!("/sys/fs/cgroup/schedbox/{cgroup}/cgroup.procs"));
    procs
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .map(|pid| {
            let io = read(m, &format!("/proc/{pid}/io"));
            let field = |k: &str| {
                io.lines()
                    .find_map(|l| l.strip_prefix(k).and_then(|v| v.trim().parse().ok()))
                    .unwrap_or_else(|| panic!("no {k} in /proc/{pid}/io:\n{io}"))
            };
            (pid, (field("read_bytes:"), field("write_bytes:")))
        })
        .collect()
}

#[test]
fn block_io_work_types_reach_the_guest_block_device() {
    let mut vm = boot("1n1l2c1t", "");
    let m = vm.as_mut();
    ask(m, RequestBody::BeginScenario { name: "io-workloads".into() });
    let work = [
        ("sw", WorkType::IoSyncWrite { block_kib: 4 }, 2),
        ("rr", WorkType::IoRandRead { block_kib: 64 }, 2),
        ("cv", WorkType::IoConvoy { readers: 3, write_kib: 256 }, 4),
    ];
    let defs = work.iter().map(|(cg, _, _)| CgroupDef::named(*cg)).collect();
    ask(m, RequestBody::Setup { owner: Owner::Step, defs });
    for (cg, work, n) in &work {
        let op = Op::spawn(SpawnPlacement::cgroup(*cg), WorkSpec::default().work(work.clone()).workers(*n));
        match ask(m, RequestBody::Apply { owner: Owner::Step, op }) {
            ResponseBody::Applied(_) => {}
            other => panic!("spawning {work:?}: {other:?}"),
        }
    }
    assert_eq!(read(m, "/sys/block/nullb0/queue/logical_block_size").trim(), "4096", "the null_blk device is up");
    std::thread::sleep(Duration::from_millis(1500));
    // Each worker's bytes as the kernel's task I/O accounting saw them.
    let (sw_io, rr_io, cv_io) = (task_io(m, "sw"), task_io(m, "rr"), task_io(m, "cv"));
    assert_eq!((sw_io.len(), rr_io.len(), cv_io.len()), (2, 2, 4), "{sw_io:?} {rr_io:?} {cv_io:?}");
    assert!(sw_io.values().all(|&(_, w)| w >= 4096), "io-sync-write wrote through the page cache: {sw_io:?}");
    assert!(rr_io.values().all(|&(r, w)| r >= 65536 && r % 65536 == 0 && w == 0), "io-rand-read: {rr_io:?}");
    let cv_readers = cv_io.values().filter(|&&(r, _)| r > 0).count();
    assert_eq!(cv_readers, 3, "three convoy readers read from the device: {cv_io:?}");

    let sm: StepMetrics = end_step(m);
    // After the teardown the device has completed at least every request a worker counted.
    let (read_sectors, written_sectors) = device_sectors(m);
    let of = |cg: &str| -> Vec<WorkerStat> { sm.workers.iter().filter(|w| w.cgroup == cg).cloned().collect() };
    let (sw, rr, cv) = (of("sw"), of("rr"), of("cv"));
    let units = |ws: &[WorkerStat]| ws.iter().map(|w| w.work_units).sum::<u64>();
    let (writer, readers): (Vec<WorkerStat>, Vec<WorkerStat>) = cv.iter().cloned().partition(|w| w.index == 0);
    eprintln!(
        "nullb0: {read_sectors} sectors read, {written_sectors} written; sync-write {} writes, rand-read {} reads, \
         convoy writer {} writes, readers {} reads",
        units(&sw),
        units(&rr),
        units(&writer),
        units(&readers)
    );
    for w in sw.iter().chain(&rr).chain(&cv) {
        let lat = w.request_latency.clone().unwrap_or_else(|| panic!("no request latency: {w:?}"));
        eprintln!("  {} #{}: {} requests, {lat:?}", w.cgroup, w.index, w.work_units);
        assert!(w.alive && w.work_units >= 1 && lat.samples >= 1, "every worker completed requests: {w:?}");
        // The device completes a request 50 µs after submission: faster means no device.
        assert!(lat.p50_ns >= COMPLETION_FLOOR_NS && lat.p50_ns <= lat.max_ns, "{w:?}");
    }
    assert!(read_sectors >= units(&rr) * 128 + units(&readers) * 8, "nullb0 read {read_sectors} sectors");
    assert!(written_sectors >= units(&sw) * 8 + units(&writer) * 512, "nullb0 wrote {written_sectors} sectors");
    assert!(units(&sw) >= 2 && units(&rr) >= 2 && units(&writer) >= 1);

    ask(m, RequestBody::EndScenario);
    vm.power_off().unwrap();
}
