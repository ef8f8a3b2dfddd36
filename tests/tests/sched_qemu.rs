//! sched_ext scheduler ops on the qemu backend (or `SCHEDBOX_TEST_BACKEND=kvm`), against the built-in fixture
//! scheduler (`host/fixture-scheduler`, staged by the host when
//! `cargo xtask build-scenarios` built it). Each test asserts what the kernel
//! shows: `/sys/kernel/sched_ext/state`, `/sys/kernel/sched_ext/root/ops`, the
//! workers' policy in `/proc/<pid>/sched`, the agent's descriptors in `/proc/1/fdinfo`.

use std::sync::Mutex;
use std::time::Duration;

use schedbox::machine::{self, parse_topology, BootRequest, Machine};
use schedbox::op_model::*;
use schedbox_tests::test_backend;
use schedbox_wire::{Owner, RequestBody, ResponseBody};

static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

fn boot() -> Box<dyn Machine> {
    boot_staged(vec![])
}

fn boot_staged(staged: Vec<(String, std::path::PathBuf)>) -> Box<dyn Machine> {
    let req = BootRequest { kernel: None, topology: parse_topology("1n1l2c1t").unwrap(), memory_mib: 512, staged };
    let spec = machine::prepare_boot(&req).unwrap_or_else(|e| panic!("prepare (run `cargo xtask setup`): {e:#}"));
    machine::boot(test_backend(), &spec).unwrap_or_else(|e| panic!("boot: {e}"))
}

fn ask(m: &mut dyn Machine, body: RequestBody) -> ResponseBody {
    let what = format!("{body:?}");
    m.request(body).unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn read(m: &mut dyn Machine, path: &str) -> String {
    match m.request(RequestBody::ReadFile { path: path.into() }) {
        Ok(ResponseBody::File(s)) => s.trim().to_owned(),
        other => panic!("reading {path}: {other:?}"),
    }
}

fn state(m: &mut dyn Machine) -> String {
    read(m, "/sys/kernel/sched_ext/state")
}

fn ops(m: &mut dyn Machine) -> String {
    read(m, "/sys/kernel/sched_ext/root/ops")
}

/// Applies `op` (owned by the step); its notes.
fn apply(m: &mut dyn Machine, op: Op) -> Vec<String> {
    match ask(m, RequestBody::Apply { owner: Owner::Step, op }) {
        ResponseBody::Applied(a) => {
            eprintln!("notes: {:?}", a.notes);
            a.notes
        }
        other => panic!("{other:?}"),
    }
}

fn apply_err(m: &mut dyn Machine, op: Op) -> String {
    match m.request(RequestBody::Apply { owner: Owner::Step, op: op.clone() }) {
        Ok(r) => panic!("{op:?} succeeded: {r:?}"),
        Err(e) => {
            eprintln!("refused: {e}");
            e.to_string()
        }
    }
}

fn pids(m: &mut dyn Machine, cgroup: &str) -> Vec<u32> {
    read(m, &format!("/sys/fs/cgroup/schedbox/{cgroup}/cgroup.procs")).lines().filter_map(|l| l.parse().ok()).collect()
}

fn ext_workers(m: &mut dyn Machine, cgroup: &str, n: u32) {
    ask(m, RequestBody::Setup { owner: Owner::Step, defs: vec![CgroupDef::named(cgroup)] });
    apply(m, Op::spawn(SpawnPlacement::cgroup(cgroup), WorkSpec::default().workers(n).policy(SchedPolicy::Ext)));
}

#[test]
fn the_fixture_attaches_runs_ext_workers_and_detaches() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut vm = boot();
    let m = vm.as_mut();
    assert_eq!(state(m), "disabled");
    ask(m, RequestBody::BeginScenario { name: "attach".into() });
    let err = apply_err(m, Op::detach_scheduler());
    assert!(err.contains("no scheduler is attached"), "{err}");

    let notes = apply(m, Op::attach_scheduler("fixture"));
    assert!(notes.iter().any(|n| n.starts_with("attached fixture (ops \"fixture\"")), "{notes:?}");
    assert_eq!((state(m), ops(m)), ("enabled".to_owned(), "fixture".to_owned()));

    // SCHED_EXT workers run under it.
    ext_workers(m, "ext", 2);
    std::thread::sleep(Duration::from_millis(1500));
    let p = pids(m, "ext");
    assert_eq!(p.len(), 2, "{p:?}");
    let sched = read(m, &format!("/proc/{}/sched", p[0]));
    let policy = sched.lines().find(|l| l.starts_with("policy")).unwrap_or_else(|| panic!("{sched}"));
    assert!(policy.trim_end().ends_with(" 7"), "SCHED_EXT is policy 7: {policy:?}");

    // The kernel runs one scheduler at a time.
    let err = apply_err(m, Op::attach_scheduler("fixture-alt"));
    assert!(err.contains("EBUSY") && err.contains("\"fixture\""), "{err}");
    assert_eq!(ops(m), "fixture", "the refused attach changed nothing");

    match ask(m, RequestBody::EndStep) {
        ResponseBody::Teardown(t) => {
            let w = t.workers.iter().find(|w| w.workers == 2).unwrap_or_else(|| panic!("{:?}", t.workers));
            assert!(w.iterations > 0, "the SCHED_EXT workers ran: {w:?}");
        }
        other => panic!("{other:?}"),
    }
    // The scheduler outlives the step.
    assert_eq!(state(m), "enabled");
    let notes = apply(m, Op::detach_scheduler());
    let detached = notes.iter().find(|n| n.starts_with("detached fixture")).unwrap_or_else(|| panic!("{notes:?}"));
    assert!(detached.contains("exit kind=unreg"), "{detached}");
    let dispatched = detached.split("dispatched=").nth(1).and_then(|s| s.split_whitespace().next());
    assert!(dispatched.is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n > 0)), "the fixture dispatched: {detached}");
    assert_eq!(state(m), "disabled");
    let err = apply_err(m, Op::detach_scheduler());
    assert!(err.contains("no scheduler is attached"), "{err}");
    ask(m, RequestBody::EndScenario);
    vm.power_off().unwrap();
}

#[test]
fn replace_and_restart_switch_ops_and_a_pinned_bss_survives() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut vm = boot();
    let m = vm.as_mut();
    ask(m, RequestBody::BeginScenario { name: "replace".into() });
    let err = apply_err(m, Op::replace_scheduler("fixture-alt"));
    assert!(err.contains("nothing to replace"), "{err}");
    apply(m, Op::attach_scheduler("fixture"));

    // Pin the outgoing scheduler's .bss (the object name "scx_fifo" + ".bss").
    let notes = apply(m, Op::pin_bpf_map("scx_fifo.bss"));
    let pinned = notes.first().unwrap_or_else(|| panic!("{notes:?}")).clone();
    let words: Vec<&str> = pinned.split_whitespace().collect();
    assert_eq!(&words[..3], ["pinned", "scx_fifo.bss", "id"], "{pinned}");
    let (id, fd) = (words[3].to_owned(), words[5].to_owned());
    let again = apply(m, Op::pin_bpf_map("scx_fifo.bss"));
    assert!(again[0].contains("already pinned") && again[0].contains(&format!("id {id} ")), "{again:?}");
    let err = apply_err(m, Op::pin_bpf_map("no_such_map"));
    assert!(err.contains("no BPF map is named") && err.contains("scx_fifo.bss"), "{err}");

    let notes = apply(m, Op::replace_scheduler("fixture-alt"));
    assert!(notes.iter().any(|n| n.starts_with("detached fixture")), "{notes:?}");
    assert!(notes.iter().any(|n| n.starts_with("attached fixture-alt")), "{notes:?}");
    assert!(notes.iter().any(|n| n.starts_with("no-scheduler window")), "{notes:?}");
    // Ops names allow no `-`: the built-in fixture-alt reports fixture_alt.
    assert_eq!((state(m), ops(m)), ("enabled".to_owned(), "fixture_alt".to_owned()));
    // The agent still holds the outgoing scheduler's map.
    let fdinfo = read(m, &format!("/proc/1/fdinfo/{fd}"));
    assert!(fdinfo.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["map_id:", id.as_str()]), "{fdinfo}");

    let notes = apply(m, Op::restart_scheduler());
    assert!(notes.iter().any(|n| n.starts_with("attached fixture-alt")), "restart starts the last one: {notes:?}");
    assert_eq!(ops(m), "fixture_alt");

    // EndScenario detaches the scheduler and releases the pinned map.
    match ask(m, RequestBody::EndScenario) {
        ResponseBody::Teardown(t) => assert_eq!((t.scheduler_exit, t.leftovers), (None, vec![])),
        other => panic!("{other:?}"),
    }
    assert_eq!(state(m), "disabled");
    assert!(m.request(RequestBody::ReadFile { path: format!("/proc/1/fdinfo/{fd}") }).is_err(), "the pin is closed");
    vm.power_off().unwrap();
}

#[test]
fn a_stalling_or_failing_scheduler_fails_the_next_request_with_the_kernels_reason() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut vm = boot();
    let m = vm.as_mut();
    ask(m, RequestBody::BeginScenario { name: "stall".into() });
    apply(m, Op::attach_scheduler("fixture-stall"));
    ext_workers(m, "ext", 2);
    // It stops dispatching after 1 s; its 1 s watchdog then ejects it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while state(m) == "enabled" && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    // The step's teardown still collects the workers' metrics.
    let err = match ask(m, RequestBody::EndStep) {
        ResponseBody::Teardown(t) => {
            assert!(t.workers.iter().any(|w| w.workers == 2 && w.iterations > 0), "{:?}", t.workers);
            t.scheduler_exit.unwrap_or_else(|| panic!("the step passed: {:?}", t.step))
        }
        other => panic!("{other:?}"),
    };
    eprintln!("end-step: {err}");
    assert!(err.contains("scheduler \"fixture-stall\" is no longer attached"), "{err}");
    assert!(err.contains("kernel:") && err.contains("stall"), "the kernel's reason: {err}");
    assert_eq!(state(m), "disabled");

    // An error exit from BPF is reported the same way; then a good scheduler attaches again.
    apply(m, Op::attach_scheduler("fixture-error"));
    ext_workers(m, "ext2", 1);
    std::thread::sleep(Duration::from_secs(3));
    let err = apply_err(m, Op::capture_cgroup_procs("x", "ext2"));
    assert!(err.contains("\"fixture-error\" is no longer attached") && err.contains("--exit-after elapsed"), "{err}");
    apply(m, Op::attach_scheduler("fixture"));
    assert_eq!(ops(m), "fixture");
    ask(m, RequestBody::EndScenario);
    assert_eq!(state(m), "disabled");
    vm.power_off().unwrap();
}

/// A scheduler the kernel ejects after the last step's end, while the Backdrop's workers
/// still run, is reported by the scenario's end (not taken for a clean detach); the
/// Backdrop's worker metrics come back with it.
#[test]
fn a_scheduler_that_dies_after_the_last_step_fails_the_scenarios_end() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut vm = boot();
    let m = vm.as_mut();
    ask(m, RequestBody::BeginScenario { name: "late-exit".into() });
    ask(m, RequestBody::Setup { owner: Owner::Backdrop, defs: vec![CgroupDef::named("bd")] });
    match ask(m, RequestBody::Apply { owner: Owner::Backdrop, op: Op::attach_scheduler("fixture-error") }) {
        ResponseBody::Applied(_) => {}
        other => panic!("{other:?}"),
    }
    let work = WorkSpec::default().workers(2).policy(SchedPolicy::Ext);
    ask(m, RequestBody::Apply { owner: Owner::Backdrop, op: Op::spawn(SpawnPlacement::cgroup("bd"), work) });
    // It exits through scx_bpf_error a second after it attached.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while state(m) == "enabled" && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(state(m), "disabled");
    let t = match ask(m, RequestBody::EndScenario) {
        ResponseBody::Teardown(t) => t,
        other => panic!("{other:?}"),
    };
    let err = t.scheduler_exit.unwrap_or_else(|| panic!("the death went unreported: {:?}", t.leftovers));
    assert!(err.contains("\"fixture-error\" is no longer attached") && err.contains("--exit-after elapsed"), "{err}");
    assert!(t.workers.iter().any(|w| w.cgroup == "bd" && w.iterations > 0), "{:?}", t.workers);
    assert!(t.leftovers.is_empty(), "{:?}", t.leftovers);
    let gone = m.request(RequestBody::ReadFile { path: "/sys/fs/cgroup/schedbox/bd/cgroup.procs".into() });
    assert!(gone.is_err(), "the Backdrop cgroup is removed: {gone:?}");
    // The next scenario starts clean and can attach again.
    ask(m, RequestBody::BeginScenario { name: "next".into() });
    apply(m, Op::attach_scheduler("fixture"));
    assert_eq!((state(m), ops(m)), ("enabled".to_owned(), "fixture".to_owned()));
    match ask(m, RequestBody::EndScenario) {
        ResponseBody::Teardown(t) => assert_eq!((t.scheduler_exit, t.leftovers), (None, vec![])),
        other => panic!("{other:?}"),
    }
    assert_eq!(state(m), "disabled");
    vm.power_off().unwrap();
}

#[test]
fn a_boot_scheduler_is_attached_for_the_whole_run_and_restart_starts_it_again() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut staged = Vec::new();
    let err = machine::stage_boot_scheduler("no-such", &mut staged, dir.path()).unwrap_err().to_string();
    assert!(err.contains("neither built in") && err.contains("--scheduler no-such=PATH"), "{err}");
    assert!(staged.is_empty());
    machine::stage_boot_scheduler("fixture", &mut staged, dir.path()).unwrap();
    let mut vm = boot_staged(staged);
    let m = vm.as_mut();
    // Attached before any scenario.
    assert_eq!((state(m), ops(m)), ("enabled".to_owned(), "fixture".to_owned()));
    let boot_pid = |m: &mut dyn Machine| -> Vec<String> {
        read(m, "/proc/1/task/1/children").split_whitespace().map(str::to_owned).collect()
    };
    let first = boot_pid(m);

    ask(m, RequestBody::BeginScenario { name: "swap-and-restart".into() });
    let err = apply_err(m, Op::attach_scheduler("fixture-alt"));
    assert!(err.contains("EBUSY") && err.contains("boot scheduler"), "{err}");
    apply(m, Op::replace_scheduler("fixture-alt"));
    assert_eq!(ops(m), "fixture_alt");
    // restart-scheduler starts the boot scheduler, not the one attached last.
    let notes = apply(m, Op::restart_scheduler());
    assert!(notes.iter().any(|n| n.starts_with("detached fixture-alt")), "{notes:?}");
    assert!(notes.iter().any(|n| n.starts_with("attached fixture ")), "{notes:?}");
    assert_eq!((state(m), ops(m)), ("enabled".to_owned(), "fixture".to_owned()));
    apply(m, Op::replace_scheduler("fixture-alt"));
    assert_eq!(ops(m), "fixture_alt");
    // The scenario's end restores the boot scheduler.
    match ask(m, RequestBody::EndScenario) {
        ResponseBody::Teardown(t) => assert!(t.leftovers.is_empty(), "{:?}", t.leftovers),
        other => panic!("{other:?}"),
    }
    assert_eq!((state(m), ops(m)), ("enabled".to_owned(), "fixture".to_owned()));
    assert_ne!(boot_pid(m), first, "a new boot scheduler process");

    // Detached by one scenario, it is back for the next one.
    ask(m, RequestBody::BeginScenario { name: "detach".into() });
    let notes = apply(m, Op::detach_scheduler());
    assert!(notes.iter().any(|n| n.starts_with("detached fixture ")), "{notes:?}");
    assert_eq!(state(m), "disabled");
    ask(m, RequestBody::EndScenario);
    assert_eq!((state(m), ops(m)), ("enabled".to_owned(), "fixture".to_owned()));
    ask(m, RequestBody::BeginScenario { name: "next".into() });
    assert_eq!(ops(m), "fixture");
    ask(m, RequestBody::EndScenario);
    vm.power_off().unwrap();
}

/// Real schedulers read `__kconfig` externs from `/boot/config-$(uname -r)`: the guest has
/// the kernel's own config there, and the fixture (which has a `CONFIG_HZ __kconfig` extern,
/// so libbpf refuses to load it without the config) attaches and reports the config's value.
/// The mounts schedulers expect are there too.
#[test]
fn the_guest_has_the_kernel_config_and_a_kconfig_scheduler_loads() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let host_config = schedbox::kernel::resolve_kernel(None)
        .ok()
        .and_then(|k| k.config)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .expect("the default kernel's config is cached (run `cargo xtask setup`)");
    let mut vm = boot();
    let m = vm.as_mut();
    let release = read(m, "/proc/sys/kernel/osrelease");
    let config = read(m, &format!("/boot/config-{release}"));
    assert_eq!(config, host_config.trim(), "the guest's /boot/config-{release} is the kernel cache's config");
    assert!(config.lines().any(|l| l == "CONFIG_SCHED_CLASS_EXT=y"));
    let hz = config.lines().find_map(|l| l.strip_prefix("CONFIG_HZ=")).expect("CONFIG_HZ is set").to_owned();

    let mounts = read(m, "/proc/mounts");
    for (at, fs) in [("/sys/fs/bpf", "bpf"), ("/run", "tmpfs"), ("/tmp", "tmpfs"), ("/sys/fs/cgroup", "cgroup2")] {
        assert!(mounts.lines().any(|l| l.split_whitespace().skip(1).take(2).eq([at, fs])), "{fs} on {at}: {mounts}");
    }

    ask(m, RequestBody::BeginScenario { name: "kconfig".into() });
    let notes = apply(m, Op::attach_scheduler("fixture"));
    assert!(notes.iter().any(|n| n.starts_with("attached fixture (ops \"fixture\"")), "{notes:?}");
    assert_eq!((state(m), ops(m)), ("enabled".to_owned(), "fixture".to_owned()));
    let notes = apply(m, Op::detach_scheduler());
    let detached = notes.iter().find(|n| n.starts_with("detached fixture")).unwrap_or_else(|| panic!("{notes:?}"));
    // The loader read CONFIG_HZ back from the BPF program, which got it from the config.
    assert!(detached.contains(&format!("attached fixture (CONFIG_HZ={hz})")), "{detached}");
    // The detach note carries the kernel's exit message.
    assert!(detached.contains("kernel: ") && detached.contains("sched_ext"), "{detached}");
    assert_eq!(state(m), "disabled");
    ask(m, RequestBody::EndScenario);
    vm.power_off().unwrap();
}
