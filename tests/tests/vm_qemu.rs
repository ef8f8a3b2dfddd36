//! End-to-end: a real sched_ext kernel booted under the qemu backend, with
//! assertions on what the guest itself reports.
//!
//! Needs QEMU, a fetched kernel (+ modules) and the agent: `cargo xtask test`
//! provides all three. Tests run one VM at a time (2-core CI machines).

use std::sync::Mutex;
use std::time::Duration;

use schedbox::machine::{self, parse_topology, BackendKind, BootRequest, BootSpec, Machine, MachineError};
use schedbox_wire::{RequestBody, ResponseBody};

static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

fn spec(topology: &str) -> BootSpec {
    let req =
        BootRequest { kernel: None, topology: parse_topology(topology).unwrap(), memory_mib: 512, staged: vec![] };
    machine::prepare_boot(&req).unwrap_or_else(|e| panic!("cannot prepare a boot (run `cargo xtask setup`): {e:#}"))
}

fn boot(spec: &BootSpec) -> Box<dyn Machine> {
    machine::boot(BackendKind::Qemu, spec).unwrap_or_else(|e| panic!("boot failed: {e}"))
}

fn read(m: &mut dyn Machine, path: &str) -> String {
    match m.request(RequestBody::ReadFile { path: path.into() }).unwrap_or_else(|e| panic!("{path}: {e}")) {
        ResponseBody::File(s) => s,
        other => panic!("{path}: unexpected answer {other:?}"),
    }
}

fn process_gone(pid: u32) -> bool {
    for _ in 0..200 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            // A zombie is reaped by its parent (us) in Drop; give it a moment.
            Ok(s) if s.contains(") Z ") => {}
            Ok(_) => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn boots_to_ready_with_the_requested_llc_topology() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut m = boot(&spec("1n2l2c1t"));
    let f = m.facts().clone();
    assert_eq!(f.cpus_online, vec![0, 1, 2, 3]);
    assert_eq!(f.llc_groups, vec![vec![0, 1], vec![2, 3]], "two LLCs of two cores each");
    assert_eq!(f.sched_ext_state, "disabled");
    for c in ["cpuset", "cpu", "memory", "pids"] {
        assert!(f.cgroup_controllers.iter().any(|x| x == c), "controller {c} not enabled: {:?}", f.cgroup_controllers);
    }
    // kallsyms is read right after Ready; a Facts request waits for it.
    match m.request(RequestBody::Facts).unwrap() {
        ResponseBody::Facts(now) => {
            assert!(now.kallsyms > 10_000, "kallsyms read: {}", now.kallsyms);
            assert_eq!(now.llc_groups, f.llc_groups);
        }
        other => panic!("{other:?}"),
    }
    // The same facts, read back through the agent from the kernel's own files.
    assert_eq!(read(m.as_mut(), "/sys/kernel/sched_ext/state").trim(), "disabled");
    assert_eq!(read(m.as_mut(), "/sys/devices/system/cpu/cpu3/cache/index3/shared_cpu_list").trim(), "2-3");
    assert!(m.boot_times().agent_ready_ms > 0);
    m.power_off().unwrap();
}

#[test]
fn two_numa_nodes_show_up_in_the_guest() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let m = boot(&spec("2n1l2c1t"));
    assert_eq!(m.facts().numa_nodes, vec![vec![0, 1], vec![2, 3]]);
    assert_eq!(m.facts().cpus_online.len(), 4);
    m.power_off().unwrap();
}

#[test]
fn power_off_leaves_no_process_behind_and_guest_ram_is_mapped() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let s = spec("1n1l2c1t");
    let mut m = machine::qemu::QemuMachine::boot(&s).unwrap_or_else(|e| panic!("{e}"));
    let pid = m.pid();
    // The kernel's banner sits in guest RAM, read through our own mapping.
    let banner = m.guest_ram().find(b"Linux version ", 64 << 20).expect("kernel banner in guest memory");
    let mut buf = [0u8; 64];
    m.guest_ram().read(banner, &mut buf).unwrap();
    let release = m.facts().kernel_release.clone();
    assert!(String::from_utf8_lossy(&buf).contains(&release), "{:?} vs {release}", String::from_utf8_lossy(&buf));
    // Let the guest go idle: a Facts answer waits for the agent's post-Ready kallsyms
    // read, after which nothing runs in user space (the agent blocks in read()).
    assert!(matches!(m.request(RequestBody::Facts), Ok(ResponseBody::Facts(_))));
    std::thread::sleep(std::time::Duration::from_millis(200));
    // Pause and resume through QMP; the agent answers afterwards.
    m.pause().unwrap();
    assert_eq!(m.status().unwrap(), "paused");
    // Registers of every vCPU, read while parked: the guest idles in the kernel.
    let regs = m.vcpu_registers().unwrap();
    assert_eq!(regs.iter().map(|r| r.cpu).collect::<Vec<_>>(), vec![0, 1]);
    for r in &regs {
        assert!(r.rip >= 0xffff_8000_0000_0000, "vCPU {} RIP {:#x} is not a kernel address", r.cpu, r.rip);
        assert_ne!(r.cr3, 0);
    }
    m.resume().unwrap();
    assert!(m.vcpu_registers().is_err(), "registers need a paused guest");
    assert!(matches!(m.request(RequestBody::Ping), Ok(ResponseBody::Pong)));
    Box::new(m).power_off().unwrap();
    assert!(process_gone(pid), "QEMU (pid {pid}) still runs after power-off");
}

#[test]
fn a_kernel_panic_is_detected_with_the_console() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut m = boot(&spec("1n1l2c1t"));
    let err = m.request(RequestBody::Crash).and_then(|_| m.request(RequestBody::Ping)).unwrap_err();
    match err {
        MachineError::KernelPanic { panic, console, .. } => {
            assert!(panic.contains("Kernel panic - not syncing: sysrq triggered crash"), "{panic}");
            assert!(
                console.contains("Kernel Offset") || console.contains("</TASK>"),
                "the console tail shows the trace: {console}"
            );
        }
        other => panic!("expected a kernel panic, got {other}"),
    }
}

#[test]
fn a_hung_agent_hits_the_request_watchdog() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut s = spec("1n1l2c1t");
    s.request_timeout = Duration::from_secs(3);
    let mut m = boot(&s);
    m.request(RequestBody::Hang).unwrap();
    let err = m.request(RequestBody::Ping).unwrap_err();
    assert!(matches!(err, MachineError::AgentTimeout { .. }), "{err}");
    assert!(err.to_string().contains("did not answer"), "{err}");
    // Later requests fail at once instead of waiting again.
    let again = m.request(RequestBody::Ping).unwrap_err();
    assert!(again.to_string().contains("link is down"), "{again}");
}

#[test]
fn a_boot_that_never_reaches_ready_hits_the_boot_watchdog() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut s = spec("1n1l1c1t");
    // init= a path that does not exist: the kernel finds no init and the agent never starts.
    s.extra_cmdline = "rdinit=/does-not-exist".into();
    s.boot_timeout = Duration::from_secs(40);
    let err = machine::boot(BackendKind::Qemu, &s).err().expect("no agent, no Ready");
    let text = err.to_string();
    assert!(
        matches!(err, MachineError::KernelPanic { .. } | MachineError::BootTimeout { .. }),
        "expected a panic or the boot watchdog: {text}"
    );
    assert!(text.contains("console lines"), "{text}");
}
