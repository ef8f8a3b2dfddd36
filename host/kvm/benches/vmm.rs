//! VMM benchmarks (numbers go to docs/BENCHMARKS.md):
//! - setup: process start → first guest instruction (a child process creates
//!   a 1-vCPU VM whose first instruction is an OUT; the exit's CLOCK_MONOTONIC
//!   time minus the parent's time just before spawning it);
//! - rendezvous: latency of pausing 2 spinning vCPUs (kick → both parked).
//!
//! `cargo bench -p schedbox-kvm --bench vmm`. Prints why and exits 0 without /dev/kvm.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kvm_bindings::kvm_regs;
use schedbox_kvm::x86::{set_long_mode_entry, set_real_mode_entry, write_long_mode_tables};
use schedbox_kvm::{BusDevice, DeviceAction, KvmKind, Vm, VmConfig};

const CHILD_ENV: &str = "SCHEDBOX_KVM_BENCH_CHILD";
const SETUP_RUNS: usize = 30;
const PAUSES: usize = 1000;

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Records the CLOCK_MONOTONIC time of the first write it sees.
struct FirstWrite(Arc<Mutex<Option<u64>>>);

impl BusDevice for FirstWrite {
    fn read(&mut self, _: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write(&mut self, _: u64, _: &[u8]) -> DeviceAction {
        self.0.lock().unwrap().get_or_insert_with(monotonic_ns);
        DeviceAction::None
    }
}

/// Child: build the VM, run to the first OUT, print the phase times
/// (main entered, VM created, first guest instruction).
fn child() {
    let main = monotonic_ns();
    let at = Arc::new(Mutex::new(None));
    let mut vm = Vm::new(VmConfig { vcpus: 1, memory: 0x10000, irqchip: false }).expect("VM");
    // out 0x80, al; hlt
    vm.memory().write(0x1000, &[0xe6, 0x80, 0xf4]).unwrap();
    vm.add_pio(0x80, 1, Arc::new(Mutex::new(FirstWrite(at.clone())))).unwrap();
    let created = monotonic_ns();
    vm.start(|_, fd| set_real_mode_entry(fd, 0x1000, kvm_regs::default())).unwrap();
    vm.next_event(Duration::from_secs(10)).expect("HLT");
    let first = at.lock().unwrap().expect("first OUT seen");
    println!("{main} {created} {first}");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{name}: n={} median={:?} p99={:?} min={:?} max={:?}",
        v.len(),
        percentile(&v, 0.5),
        percentile(&v, 0.99),
        v[0],
        v[v.len() - 1]
    );
}

fn setup() {
    let exe = std::env::current_exe().unwrap();
    let names = [
        "exec -> main",
        "main -> VM, memory and device created",
        "-> vCPU created, registers set, thread running the first instruction",
    ];
    let mut phases: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    let mut total = Vec::new();
    for _ in 0..SETUP_RUNS {
        let t0 = monotonic_ns();
        let out = std::process::Command::new(&exe).env(CHILD_ENV, "1").output().expect("spawn child");
        assert!(out.status.success(), "child failed: {}", String::from_utf8_lossy(&out.stderr));
        let times: Vec<u64> =
            String::from_utf8_lossy(&out.stdout).split_whitespace().map(|t| t.parse().expect("child time")).collect();
        let mut prev = t0;
        for (phase, t) in phases.iter_mut().zip(&times) {
            phase.push(Duration::from_nanos(t - prev));
            prev = *t;
        }
        total.push(Duration::from_nanos(prev - t0));
    }
    report("setup (process start -> first guest instruction)", total);
    for (name, v) in names.iter().zip(phases) {
        report(&format!("  {name}"), v);
    }
}

fn rendezvous(long_mode: bool) {
    let mut vm = Vm::new(VmConfig { vcpus: 2, memory: 0x10000, irqchip: false }).expect("VM");
    if long_mode {
        // inc dword [rbx]; jmp back
        vm.memory().write(0x1000, &[0xff, 0x03, 0xeb, 0xfc]).unwrap();
        write_long_mode_tables(vm.memory()).unwrap();
        vm.start(|i, fd| {
            set_long_mode_entry(fd, kvm_regs { rip: 0x1000, rbx: 0x500 + 4 * i as u64, ..Default::default() })
        })
        .unwrap();
    } else {
        // inc dword [bx]; jmp back
        vm.memory().write(0x1000, &[0x66, 0xff, 0x07, 0xeb, 0xfb]).unwrap();
        vm.start(|i, fd| set_real_mode_entry(fd, 0x1000, kvm_regs { rbx: 0x500 + 4 * i as u64, ..Default::default() }))
            .unwrap();
    }
    let counters = |vm: &Vm| [vm.memory().read_u32(0x500).unwrap(), vm.memory().read_u32(0x504).unwrap()];
    let mut lat = Vec::with_capacity(PAUSES);
    for _ in 0..PAUSES {
        // Both vCPUs must be back in the guest before the next pause.
        let before = counters(&vm);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = counters(&vm);
            if now[0] != before[0] && now[1] != before[1] {
                break;
            }
            assert!(Instant::now() < deadline, "vCPUs stopped making progress");
            std::thread::yield_now();
        }
        lat.push(vm.pause().expect("pause").latency);
        vm.resume().unwrap();
    }
    let mode = if long_mode { "long mode" } else { "real mode" };
    report(&format!("freeze rendezvous, 2 vCPUs spinning in {mode} (pause request -> both parked)"), lat);
}

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child();
    }
    let kind = schedbox_kvm::detect();
    if let KvmKind::Unavailable(why) = &kind {
        println!("skipped: {why}");
        return;
    }
    println!("/dev/kvm: {kind:?}");
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    setup();
    rendezvous(true);
    rendezvous(false);
}
