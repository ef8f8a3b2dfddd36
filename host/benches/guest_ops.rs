//! Guest-side op round trips on a booted guest (qemu backend): a ping, a
//! cheap op (capture-cgroup-procs), an empty scenario end to end, and the
//! reset between scenarios. Prints a table for docs/BENCHMARKS.md.
//!
//! `cargo bench -p schedbox --bench guest_ops` (after `cargo xtask build-scenarios`
//! and `schedbox kernel fetch --modules`); `SCHEDBOX_OPS` sets the op count.

use std::time::{Duration, Instant};

use schedbox::executor::{execute, PayloadDefaults};
use schedbox::machine::{self, parse_topology, BackendKind, BootRequest, Machine};
use schedbox::op_model::*;
use schedbox_wire::{Owner, RequestBody};

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let total: Duration = v.iter().sum();
    println!(
        "| {name} | {:.0} µs | {:.0} µs | {:.0} /s | {} |",
        us(v[v.len() / 2]),
        us(v[v.len() * 99 / 100]),
        v.len() as f64 / total.as_secs_f64(),
        v.len()
    );
}

fn timed(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

fn main() {
    let n: usize = std::env::var("SCHEDBOX_OPS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let topology = parse_topology("1n2l2c1t").unwrap();
    let spec = machine::prepare_boot(&BootRequest { kernel: None, topology, memory_mib: 512, staged: vec![] })
        .expect("prepare the boot (kernel fetched? agent built?)");
    let mut m = machine::boot(BackendKind::Qemu, &spec).expect("boot");
    let m: &mut dyn Machine = m.as_mut();
    println!("qemu backend, microvm TCG, 1n2l2c1t, {n} iterations each");
    println!("| what | median | p99 | rate | n |");
    println!("|---|---|---|---|---|");
    stats("ping (host → agent → host)", timed(n, || drop(m.request(RequestBody::Ping).unwrap())));
    m.request(RequestBody::BeginScenario { name: "bench".into() }).unwrap();
    m.request(RequestBody::Setup { owner: Owner::Step, defs: vec![CgroupDef::named("c")] }).unwrap();
    let cheap = Op::capture_cgroup_procs("t", "c");
    stats(
        "cheap op: capture-cgroup-procs",
        timed(n, || drop(m.request(RequestBody::Apply { owner: Owner::Step, op: cheap.clone() }).unwrap())),
    );
    stats(
        "set-cpuset (cgroup file write)",
        timed(n, || {
            let op = Op::set_cpuset("c", CpusetSpec::llc(1));
            drop(m.request(RequestBody::Apply { owner: Owner::Step, op }).unwrap())
        }),
    );
    m.request(RequestBody::EndScenario).unwrap();
    let reset = timed(n / 10, || {
        m.request(RequestBody::BeginScenario { name: "r".into() }).unwrap();
        m.request(RequestBody::EndScenario).unwrap();
    });
    stats("reset between scenarios (begin + end)", reset);
    let info = ScenarioInfo {
        name: "empty".into(),
        summary: String::new(),
        topology,
        kernel_features: vec![],
        payloads: vec![],
        schedulers: vec![],
        duration_ms: 1,
    };
    let stream = OpStream {
        contract: CONTRACT_VERSION.into(),
        scenario: info,
        backdrop: Backdrop::new(),
        steps: vec![Step::new(vec![], HoldSpec::fixed_ms(0))],
    };
    stats(
        "empty scenario end to end (executor, booted guest)",
        timed(n / 10, || assert!(execute(m, &stream, &PayloadDefaults::new()).error.is_none())),
    );
    let with_workers = OpStream {
        steps: vec![Step::with_defs(vec![CgroupDef::named("w").workers(4)], vec![], HoldSpec::fixed_ms(0))],
        ..stream.clone()
    };
    stats(
        "one step with 4 workers: spawn + teardown",
        timed(n / 20, || assert!(execute(m, &with_workers, &PayloadDefaults::new()).error.is_none())),
    );
    // Freeze rendezvous: park every vCPU (QMP stop), one guest-memory read, resume.
    let mut monitor = schedbox::monitor::Monitor::new(m.vmlinux().to_owned());
    let jiffies = KernelTarget::symbol("jiffies_64");
    monitor.prefetch(m, &[&jiffies]).unwrap();
    stats(
        "freeze rendezvous: pause + read jiffies_64 + resume",
        timed(n / 2, || {
            m.pause().unwrap();
            drop(monitor.read(m, &jiffies, &KernelValueWidth::U64).unwrap());
            m.resume().unwrap();
        }),
    );
    stats(
        "hot read of jiffies_64 (symbol resolved, no pause)",
        timed(n, || drop(monitor.read(m, &jiffies, &KernelValueWidth::U64).unwrap())),
    );
    m.request(RequestBody::PowerOff).ok();
}
