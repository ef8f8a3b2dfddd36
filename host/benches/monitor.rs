//! Monitor costs on a booted guest: page-table walks over the guest's live page
//! tables, kva reads, freeze rendezvous and watchpoint hit → snapshot latency.
//! Prints a table for docs/BENCHMARKS.md.
//!
//! `cargo bench -p schedbox --bench monitor` (after `schedbox kernel fetch --modules`);
//! `SCHEDBOX_BENCH_BACKEND=kvm` measures the kvm backend (hardware KVM, or nested:
//! `schedbox nested --env SCHEDBOX_BENCH_BACKEND=kvm --exec target/release/deps/monitor-HASH -- --bench`).

use std::time::{Duration, Instant};

use schedbox::machine::{self, parse_topology, BackendKind, BootRequest, Machine};
use schedbox::monitor::{translate, Monitor, WatchLog};
use schedbox::op_model::*;

fn row(name: &str, mut v: Vec<Duration>, per: u32) {
    v.sort_unstable();
    let ns = |d: Duration| d.as_secs_f64() * 1e9 / f64::from(per);
    let (med, p99) = (ns(v[v.len() / 2]), ns(v[v.len() * 99 / 100]));
    let fmt = |x: f64| if x >= 10_000.0 { format!("{:.0} µs", x / 1e3) } else { format!("{x:.0} ns") };
    println!("| {name} | {} | {} | {} |", fmt(med), fmt(p99), v.len() as u32 * per);
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

/// [`timed`] with the guest left running for `gap` before each sample (untimed), so a
/// freeze meets vCPUs back in the guest rather than threads still parked from the last one.
fn timed_apart(n: usize, gap: Duration, mut f: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            std::thread::sleep(gap);
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

/// Guest run time between two freezes of a row.
const FREEZE_GAP: Duration = Duration::from_millis(5);

fn main() {
    let topology = parse_topology("1n2l2c1t").unwrap();
    let spec = machine::prepare_boot(&BootRequest { kernel: None, topology, memory_mib: 512, staged: vec![] })
        .expect("prepare the boot (kernel fetched? agent built?)");
    let backend = match std::env::var("SCHEDBOX_BENCH_BACKEND").as_deref() {
        Ok("kvm") => BackendKind::Kvm,
        Ok("qemu") | Err(_) => BackendKind::Qemu,
        Ok(other) => panic!("SCHEDBOX_BENCH_BACKEND={other}: qemu or kvm"),
    };
    let mut vm = machine::boot(backend, &spec).expect("boot");
    let m: &mut dyn Machine = vm.as_mut();
    let mut monitor = Monitor::new(m.vmlinux().to_owned());
    let syms = monitor.symbols(m, &["linux_banner", "init_task"]).unwrap();
    let (banner, init_task) = (syms[0].unwrap(), syms[1].unwrap());
    let rq = monitor.resolve(m, &KernelTarget::per_cpu_field("runqueues", "cpu", 1)).unwrap().kva;
    // A vmalloc'd address: the kernel stack of the first process after init_task.
    let btf = schedbox::monitor::KernelBtf::from_vmlinux(m.vmlinux()).unwrap();
    let off = |f: &str| btf.field("task_struct", f).unwrap().offset;
    let u64_at = |mon: &mut Monitor, m: &mut dyn Machine, t: KernelTarget| match mon
        .read(m, &t, &KernelValueWidth::U64)
        .unwrap()
    {
        KernelValue::U64(v) => v,
        other => panic!("{other:?}"),
    };
    let next = u64_at(&mut monitor, m, KernelTarget::kva(init_task + off("tasks")));
    let stack = u64_at(&mut monitor, m, KernelTarget::direct(next - off("tasks") + off("stack")));

    m.pause().unwrap();
    let regs = m.paging_registers().unwrap();
    let la57 = regs[0].cr4 & schedbox::monitor::pagewalk::CR4_LA57 != 0;
    let kernel_cr3 = regs.iter().find(|r| r.rip >= 0xff00_0000_0000_0000).map_or(0, |r| r.cr3);
    let pgd = monitor.resolve(m, &KernelTarget::symbol("init_top_pgt")).unwrap().gpa;
    let ram = m.guest_ram();
    let levels = if la57 { 5 } else { 4 };
    println!("{backend:?} backend, 1n2l2c1t, 512 MiB; guest paging: {levels}-level (CR4.LA57 = {la57})");
    println!("| what | median | p99 | n |");
    println!("|---|---|---|---|");
    const BATCH: u32 = 1000;
    for (name, kva) in [
        ("image (`linux_banner`)", banner),
        ("direct map (`runqueues` CPU 1)", rq),
        ("vmalloc (a kernel stack)", stack),
    ] {
        let t = translate(ram, pgd, la57, kva).unwrap();
        let label = format!("page walk from `init_top_pgt`, {name}, {} KiB page", t.page_size >> 10);
        row(
            &label,
            timed(200, || {
                for _ in 0..BATCH {
                    std::hint::black_box(translate(ram, pgd, la57, std::hint::black_box(kva)).unwrap());
                }
            }),
            BATCH,
        );
    }
    if kernel_cr3 != 0 {
        row(
            "page walk from a vCPU's CR3, vmalloc",
            timed(200, || {
                for _ in 0..BATCH {
                    std::hint::black_box(translate(ram, kernel_cr3, la57, stack).unwrap());
                }
            }),
            BATCH,
        );
    }
    m.resume().unwrap();
    let kva = KernelTarget::kva(stack);
    row(
        "hot read, kva target (resolve: walk + read u32, guest running)",
        timed(10_000, || drop(monitor.read(m, &kva, &KernelValueWidth::U32).unwrap())),
        1,
    );
    let sym = KernelTarget::symbol("jiffies_64");
    row(
        "hot read, symbol target `jiffies_64` (u64, guest running)",
        timed(10_000, || drop(monitor.read(m, &sym, &KernelValueWidth::U64).unwrap())),
        1,
    );

    row(
        "freeze rendezvous (pause + read `jiffies_64` + resume), no watch, 5 ms apart",
        timed_apart(200, FREEZE_GAP, || {
            m.pause().unwrap();
            drop(monitor.read(m, &sym, &KernelValueWidth::U64).unwrap());
            m.resume().unwrap();
        }),
        1,
    );

    // Watchpoint on jiffies_64 (written every tick): hit → snapshot, on the gdb worker thread.
    let log = WatchLog::default();
    let (addr, plan) = monitor.watch_plan(m, "jiffies_64").unwrap();
    let t0 = Instant::now();
    m.arm_watchpoint(addr, 4, plan.handler(log.clone())).unwrap();
    let armed_at = Instant::now();
    let arm = armed_at - t0;
    // Freezes while the watch fires: QMP and the gdbstub share the guest.
    let freezes = timed_apart(200, FREEZE_GAP, || {
        m.pause().unwrap();
        drop(monitor.read(m, &sym, &KernelValueWidth::U64).unwrap());
        m.resume().unwrap();
    });
    std::thread::sleep(Duration::from_secs(3));
    let disarm_at = Instant::now();
    m.disarm_watchpoints().unwrap();
    let disarm = disarm_at.elapsed();
    let lat = log.latencies();
    let hits = log.hits("jiffies_64");
    if lat.is_empty() {
        println!("| watchpoint hit → snapshot | no hit in 3 s | | 0 |");
    } else {
        row("watchpoint hit → snapshot (registers, 2 + 2×CPUs RAM reads)", lat, 1);
    }
    row("freeze rendezvous (pause + read + resume) with the watch armed, 5 ms apart", freezes, 1);
    println!(
        "\narm (first: gdb connect + Z2) {:.1} ms, disarm {:.1} ms; {hits} hits in {:.1} s",
        arm.as_secs_f64() * 1e3,
        disarm.as_secs_f64() * 1e3,
        (disarm_at - armed_at).as_secs_f64(),
    );
    vm.power_off().ok();
}
