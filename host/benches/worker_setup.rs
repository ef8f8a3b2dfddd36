//! Worker set-up on a booted guest (qemu backend): the round trip of one `spawn` of N
//! `spin-wait` workers (every worker forked, set up, reported, and released through the
//! start barrier before the agent answers) and the step's teardown, with the worker
//! parent (default), with a fork and exec of the agent per worker
//! (`schedbox.workers=exec`), and as the threads of one process (`spawn-threads`), on
//! the same machine in one run. Prints a table for
//! docs/BENCHMARKS.md.
//!
//! `cargo bench -p schedbox --bench worker_setup` (after `cargo xtask build-scenarios`
//! and `schedbox kernel fetch --modules`); `SCHEDBOX_WORKERS` (default `4,64,512`) sets
//! the counts, `SCHEDBOX_REPS` (default 3) the spawns per count.

use std::time::{Duration, Instant};

use schedbox::machine::{self, parse_topology, BackendKind, BootRequest, Machine};
use schedbox::op_model::*;
use schedbox_wire::{Owner, RequestBody, ResponseBody};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

/// (set-up, teardown) of each of `reps` spawns of `n` spinners.
fn measure(m: &mut dyn Machine, n: u32, reps: usize, mode: WorkerMode) -> Vec<(Duration, Duration)> {
    (0..reps)
        .map(|_| {
            m.request(RequestBody::Setup { owner: Owner::Step, defs: vec![CgroupDef::named("w")] }).unwrap();
            let op = Op::spawn(SpawnPlacement::cgroup("w"), WorkSpec::default().workers(n).mode(mode));
            let t = Instant::now();
            match m.request(RequestBody::Apply { owner: Owner::Step, op }).unwrap() {
                ResponseBody::Applied(_) => {}
                other => panic!("spawning {n}: {other:?}"),
            }
            let setup = t.elapsed();
            let t = Instant::now();
            match m.request(RequestBody::EndStep).unwrap() {
                ResponseBody::Teardown(td) => assert!(td.leftovers.is_empty(), "{:?}", td.leftovers),
                other => panic!("{other:?}"),
            }
            (setup, t.elapsed())
        })
        .collect()
}

fn main() {
    let counts: Vec<u32> = std::env::var("SCHEDBOX_WORKERS")
        .unwrap_or_else(|_| "4,64,512".into())
        .split(',')
        .map(|s| s.trim().parse().expect("SCHEDBOX_WORKERS: counts like 4,64,512"))
        .collect();
    let reps: usize = std::env::var("SCHEDBOX_REPS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let topology = parse_topology("1n1l2c1t").unwrap();
    let base = machine::prepare_boot(&BootRequest { kernel: None, topology, memory_mib: 512, staged: vec![] })
        .expect("prepare the boot (kernel fetched? agent built?)");
    let mut rows: Vec<(u32, Vec<String>)> = counts.iter().map(|&n| (n, Vec::new())).collect();
    let columns = [("schedbox.workers=exec", WorkerMode::Process), ("", WorkerMode::Process), ("", WorkerMode::Thread)];
    for (cmdline, mode) in columns {
        let mut spec = base.clone();
        spec.extra_cmdline = cmdline.into();
        spec.request_timeout = Duration::from_secs(120);
        let mut vm = machine::boot(BackendKind::Qemu, &spec).expect("boot");
        let m: &mut dyn Machine = vm.as_mut();
        m.request(RequestBody::BeginScenario { name: "bench".into() }).unwrap();
        for (n, cells) in rows.iter_mut() {
            let runs = measure(m, *n, reps, mode);
            let setup = median(runs.iter().map(|r| r.0).collect());
            let teardown = median(runs.iter().map(|r| r.1).collect());
            let (lo, hi) = runs.iter().fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(ms(r.0)), hi.max(ms(r.0))));
            cells.push(format!("{:.0} ms ({lo:.0}–{hi:.0}), teardown {:.0} ms", ms(setup), ms(teardown)));
        }
        m.request(RequestBody::EndScenario).unwrap();
        vm.power_off().unwrap();
    }
    println!("qemu backend, microvm TCG, 1n1l2c1t, 512 MiB; spawn round trip, median (range) of {reps}");
    println!("| N spinners | fork + exec per worker | worker parent (default) | threads of one process |");
    println!("|---|---|---|---|");
    for (n, cells) in rows {
        println!("| {n} | {} |", cells.join(" | "));
    }
}
