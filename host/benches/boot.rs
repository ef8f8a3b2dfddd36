//! Boot benchmark, qemu backend: process start → agent Ready, beside the same
//! QEMU command booting a trivial init that powers off at once, in one run.
//! Prints a table (median and all runs) for docs/BENCHMARKS.md.
//!
//! `cargo bench -p schedbox --bench boot` (after `cargo xtask build-scenarios`
//! and `schedbox kernel fetch --modules`); `SCHEDBOX_BOOT_RUNS` sets the runs.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use schedbox::initramfs::{build_cached, InitramfsSpec};
use schedbox::machine::qemu::{qemu_args, qemu_program, QemuMachine, VmPaths};
use schedbox::machine::{host_tsc_khz, parse_topology, prepare_boot, BootRequest, Machine};

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn trivial_init(agent: &std::path::Path) -> PathBuf {
    let p = agent.with_file_name("trivial-init");
    assert!(p.is_file(), "{} is missing: run `cargo xtask build-scenarios`", p.display());
    p
}

fn main() {
    // `cargo bench` passes --bench; a filter argument could follow. Nothing to parse.
    let runs: usize = std::env::var("SCHEDBOX_BOOT_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let topology = parse_topology("1n2l2c1t").expect("valid");
    let req = BootRequest { kernel: None, topology, memory_mib: 512, staged: vec![] };
    let spec = prepare_boot(&req).expect("prepare the boot (kernel fetched? agent built?)");
    let agent = schedbox::machine::find_agent().expect("agent");
    let cache = std::env::temp_dir().join("schedbox-boot-bench");
    let modules: Vec<PathBuf> = Vec::from_iter(
        schedbox::kernel::resolve_kernel(None)
            .ok()
            .and_then(|k| k.modules_dir)
            .map(|d| d.join("kernel/drivers/virtio/virtio_mmio.ko.xz"))
            .filter(|p| p.is_file()),
    );
    let trivial_spec = {
        let initramfs =
            build_cached(&InitramfsSpec { agent: trivial_init(&agent), modules, ..Default::default() }, &cache)
                .unwrap();
        let mut s = spec.clone();
        s.initramfs = initramfs;
        s
    };
    let khz = host_tsc_khz();
    let (mut trivial, mut ready, mut setup, mut kernel) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        // Trivial init: the same command line, only /init differs.
        let dir = tempfile::tempdir().unwrap();
        let paths = VmPaths::new(dir.path(), dir.path(), 1);
        let start = Instant::now();
        let status = Command::new(qemu_program())
            .args(qemu_args(&trivial_spec, &paths, khz))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("qemu runs");
        assert!(status.success(), "trivial init boot failed: {status}");
        trivial.push(start.elapsed().as_millis() as u64);

        let m = QemuMachine::boot(&spec).expect("agent boot");
        let t = m.boot_times();
        ready.push(t.agent_ready_ms);
        setup.push(t.setup_ms);
        kernel.push(t.kernel_ms);
        Box::new(m).power_off().expect("power off");
        std::thread::sleep(Duration::from_millis(100));
    }
    let all = |v: &Vec<u64>| v.iter().map(u64::to_string).collect::<Vec<_>>().join(" / ");
    println!("qemu backend, microvm TCG, topology 1n2l2c1t (4 vCPUs), 512 MiB, {runs} runs, ms");
    println!("| what | median | runs |");
    println!("|---|---|---|");
    println!(
        "| trivial init: process start → QEMU exited (power-off) | {} | {} |",
        median(&mut trivial.clone()),
        all(&trivial)
    );
    println!("| agent: process start → Ready | {} | {} |", median(&mut ready.clone()), all(&ready));
    println!("| … of which VMM set-up (start → QMP up) | {} | {} |", median(&mut setup.clone()), all(&setup));
    println!("| … guest boot → agent Ready (guest clock) | {} | {} |", median(&mut kernel.clone()), all(&kernel));
    let ratio = median(&mut ready.clone()) as f64 / median(&mut trivial.clone()) as f64;
    println!("ratio agent Ready / trivial init exit: {ratio:.2} (goal ≤ 1.10); goal Ready ≤ 2500 ms");
}
