//! Host-side ops on the qemu backend (or `SCHEDBOX_TEST_BACKEND=kvm`): kernel memory read and written through
//! guest RAM mapped in the host, cold accesses inside a freeze rendezvous.

use std::sync::Mutex;

use schedbox::executor::{execute, execute_observed, NoProgress, PayloadDefaults};
use schedbox::machine::{self, parse_topology, BootRequest, Machine};
use schedbox::monitor::KernelBtf;
use schedbox::op_model::*;
use schedbox::results::{Outcome, Snapshot, StepStatus};
use schedbox::sandbox::SandboxLimits;
use schedbox_tests::{example, test_backend, TestSandbox};
use schedbox_wire::{Owner, RequestBody, ResponseBody};

static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

fn boot(topology: &str) -> Box<dyn Machine> {
    let req =
        BootRequest { kernel: None, topology: parse_topology(topology).unwrap(), memory_mib: 512, staged: vec![] };
    let spec = machine::prepare_boot(&req).unwrap_or_else(|e| panic!("prepare (run `cargo xtask setup`): {e:#}"));
    machine::boot(test_backend(), &spec).unwrap_or_else(|e| panic!("boot: {e}"))
}

fn stream(steps: Vec<Step>) -> OpStream {
    OpStream {
        contract: CONTRACT_VERSION.into(),
        scenario: ScenarioInfo {
            name: "monitor".into(),
            summary: String::new(),
            topology: parse_topology("1n2l2c1t").unwrap(),
            kernel_features: vec![],
            payloads: vec![],
            schedulers: vec![],
            duration_ms: 1000,
        },
        backdrop: Backdrop::new(),
        steps,
    }
}

fn u64_of(v: &KernelValue) -> u64 {
    match v {
        KernelValue::U64(x) => *x,
        KernelValue::U32(x) => u64::from(*x),
        other => panic!("{other:?}"),
    }
}

#[test]
fn btf_gives_runqueue_field_offsets() {
    let k = schedbox::kernel::resolve_kernel(None).expect("a fetched kernel");
    let btf = KernelBtf::from_vmlinux(&k.vmlinux).unwrap();
    let clock = btf.field("rq", "clock").unwrap();
    assert_eq!(clock.size, Some(8));
    let nested = btf.field("rq", "scx.flags").unwrap();
    assert!(nested.offset > clock.offset.min(1), "{nested:?}");
    let err = btf.field("rq", "no_such_field").unwrap_err();
    assert!(err.contains("no member \"no_such_field\""), "{err}");
}

#[test]
fn cold_reads_advance_and_per_cpu_clocks_differ() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut m = boot("1n2l2c1t");
    let jiffies = || Op::read_kernel_cold("j", KernelTarget::symbol("jiffies_64"), KernelValueWidth::U64);
    let clocks: Vec<Op> = (0..4)
        .map(|c| {
            Op::read_kernel_cold(
                format!("clock{c}"),
                KernelTarget::per_cpu_field("runqueues", "clock", c),
                KernelValueWidth::U64,
            )
        })
        .collect();
    let mut second = vec![jiffies()];
    second.extend(clocks);
    second.extend((0..4).map(|c| {
        Op::read_kernel_cold(
            format!("cpu{c}"),
            KernelTarget::per_cpu_field("runqueues", "cpu", c),
            KernelValueWidth::U32,
        )
    }));
    second.push(Op::capture_snapshot("snap"));
    let s = stream(vec![Step::new(vec![jiffies()], HoldSpec::fixed_ms(300)), Step::new(second, HoldSpec::fixed_ms(0))]);
    let exec = execute(m.as_mut(), &s, &PayloadDefaults::new());
    assert!(exec.results.steps.iter().all(|st| st.status == StepStatus::Passed), "{:?}", exec.results.steps);
    let reads = &exec.results.kernel_reads;
    let (j0, j1) = (u64_of(&reads[0].value), u64_of(&reads[1].value));
    assert!(j1 > j0, "jiffies_64 advanced across a 300 ms hold: {j0} -> {j1}");
    let clocks: Vec<u64> = reads[2..6].iter().map(|r| u64_of(&r.value)).collect();
    assert!(clocks.iter().all(|c| *c > 0), "{clocks:?}");
    // Two idle CPUs can stop their clocks at the same instant, so "differ" is shown by
    // the runqueue's own `cpu` field, which must name the CPU each read resolved to.
    let distinct: std::collections::BTreeSet<_> = clocks.iter().collect();
    assert!(distinct.len() >= 2, "rq clocks of different CPUs: {clocks:?}");
    let own: Vec<u64> = reads[6..10].iter().map(|r| u64_of(&r.value)).collect();
    assert_eq!(own, [0, 1, 2, 3], "runqueues.cpu per CPU");
    assert_eq!(exec.rendezvous, 11, "one rendezvous per cold read and one for the snapshot");
    let snap = &exec.results.snapshots[0];
    assert_eq!(snap.vcpus.len(), 4);
    // A vCPU may be in user space (the agent answering); the others idle in the kernel.
    assert!(snap.vcpus.iter().all(|v| v.rip != 0 && v.cr3 != 0), "{:?}", snap.vcpus);
    assert!(snap.vcpus.iter().filter(|v| v.rip >= 0xffff_8000_0000_0000).count() >= 2, "{:?}", snap.vcpus);
    assert_eq!(snap.sched_ext_state, "disabled");
    assert!(snap.values.iter().any(|(n, _)| n == "cpu3.rq.clock"));
    // A per-cpu field is read at its own width: `rq.nr_running` is 4 bytes, so a u64
    // read (which would take 4 bytes of the next field) fails its step; u32 works.
    let nr_running = |w| Op::read_kernel_cold("nr", KernelTarget::per_cpu_field("runqueues", "nr_running", 1), w);
    let wide = execute(
        m.as_mut(),
        &stream(vec![Step::new(vec![nr_running(KernelValueWidth::U64)], HoldSpec::fixed_ms(0))]),
        &PayloadDefaults::new(),
    );
    let err = wide.results.steps[0].error.clone().unwrap_or_default();
    assert!(err.starts_with("step 0, op 0 (read-kernel-cold): "), "{err}");
    assert!(err.contains("runqueues.nr_running") && err.contains("4 bytes wide, not 8: access it as u32"), "{err}");
    assert!(wide.results.kernel_reads.is_empty(), "{:?}", wide.results.kernel_reads);
    let exact = execute(
        m.as_mut(),
        &stream(vec![Step::new(vec![nr_running(KernelValueWidth::U32)], HoldSpec::fixed_ms(0))]),
        &PayloadDefaults::new(),
    );
    assert!(exact.results.steps[0].status == StepStatus::Passed, "{:?}", exact.results.steps);
    assert!(matches!(exact.results.kernel_reads[0].value, KernelValue::U32(_)), "{:?}", exact.results.kernel_reads);
    m.power_off().unwrap();
}

#[test]
fn a_cold_write_batch_is_one_rendezvous_and_the_guest_sees_it() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut m = boot("1n1l2c1t");
    let read_sysctl = |m: &mut dyn Machine, name: &str| match m
        .request(RequestBody::ReadFile { path: format!("/proc/sys/kernel/{name}") })
    {
        Ok(ResponseBody::File(s)) => s.trim().to_owned(),
        other => panic!("{other:?}"),
    };
    let w = |sym: &str, v| Op::write_kernel_cold(vec![KernelWrite { target: KernelTarget::symbol(sym), value: v }]);
    // Three adjacent cold writes, merged into one rendezvous and applied in order:
    // 0, then OR 2 (read-modify-write under the freeze) gives 2.
    let ops = vec![
        w("dmesg_restrict", KernelValue::U32(0)),
        w("dmesg_restrict", KernelValue::OrU32(2)),
        w("kptr_restrict", KernelValue::U32(1)),
    ];
    let exec = execute(m.as_mut(), &stream(vec![Step::new(ops, HoldSpec::fixed_ms(0))]), &PayloadDefaults::new());
    assert!(exec.error.is_none() && exec.results.steps[0].status == StepStatus::Passed, "{exec:?}");
    assert_eq!(exec.rendezvous, 1, "adjacent cold writes share one rendezvous");
    assert_eq!(read_sysctl(m.as_mut(), "dmesg_restrict"), "2", "the guest sees the cold writes, in order");
    assert_eq!(read_sysctl(m.as_mut(), "kptr_restrict"), "1");
    // An unknown symbol fails the step with the name.
    let bad = vec![Op::read_kernel_hot("x", KernelTarget::symbol("no_such_symbol_here"), KernelValueWidth::U64)];
    let exec = execute(m.as_mut(), &stream(vec![Step::new(bad, HoldSpec::fixed_ms(0))]), &PayloadDefaults::new());
    let err = exec.results.steps[0].error.clone().unwrap();
    assert!(err.contains("no_such_symbol_here") && err.contains("kallsyms"), "{err}");
    m.power_off().unwrap();
}

#[test]
fn the_kernel_reads_example_passes_its_check() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let sb = TestSandbox::new(SandboxLimits::default());
    let loaded = sb.load_file(&example("rust", "kernel-reads")).unwrap();
    let plan = sb.plan(&loaded).unwrap();
    let mut m = boot(&plan.info.topology.to_string());
    let exec = execute(m.as_mut(), &plan.stream, &PayloadDefaults::new());
    assert_eq!(exec.error, None);
    let v = sb.check(&loaded, "kernel-reads", exec.results).unwrap();
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.messages);
    m.power_off().unwrap();
}

fn read_file(m: &mut dyn Machine, path: &str) -> String {
    match m.request(RequestBody::ReadFile { path: path.into() }) {
        Ok(ResponseBody::File(s)) => s,
        other => panic!("reading {path}: {other:?}"),
    }
}

/// The runtime address of a kernel symbol, from the guest's kallsyms.
fn symbol_kva(m: &mut dyn Machine, name: &str) -> u64 {
    let mut monitor = schedbox::monitor::Monitor::new(m.vmlinux().to_owned());
    monitor.symbols(m, &[name]).unwrap()[0].unwrap_or_else(|| panic!("{name} is not in kallsyms"))
}

fn value<'a>(snap: &'a Snapshot, name: &str) -> &'a KernelValue {
    snap.values.iter().find(|(n, _)| n == name).map(|(_, v)| v).unwrap_or_else(|| panic!("{name} in {snap:?}"))
}

#[test]
fn a_watchpoint_on_jiffies_64_fires_while_freezes_come_and_go() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut m = boot("1n1l2c1t");
    let jiffies = || Op::read_kernel_cold("j", KernelTarget::symbol("jiffies_64"), KernelValueWidth::U64);
    // The watch is armed first; QMP freezes (cold reads, a snapshot) then run while it fires.
    let mut ops = vec![Op::watch_snapshot("jiffies_64")];
    ops.extend((0..10).map(|_| jiffies()));
    ops.push(Op::capture_snapshot("frozen"));
    let s = stream(vec![Step::new(ops, HoldSpec::fixed_ms(500)), Step::new(vec![jiffies()], HoldSpec::fixed_ms(0))]);
    let exec = execute(m.as_mut(), &s, &PayloadDefaults::new());
    assert_eq!(exec.error, None);
    assert!(exec.results.steps.iter().all(|st| st.status == StepStatus::Passed), "{:?}", exec.results.steps);
    assert_eq!(exec.rendezvous, 12, "ten cold reads, the snapshot and the read of step 1 each froze once");
    let watched = exec.results.snapshots.iter().find(|s| s.name == "jiffies_64").expect("a snapshot tagged jiffies_64");
    let hits = u64_of(value(watched, "watch.hits"));
    assert!(hits >= 10, "jiffies_64 is written every tick (HZ=250): {hits} hits in 500 ms");
    assert_eq!(u64_of(value(watched, "watch.address")), symbol_kva(m.as_mut(), "jiffies_64"));
    // The snapshot is the latest hit's (the watch lasts the scenario): it saw every cold read's value.
    let at_hit = u64_of(value(watched, "jiffies_64"));
    let reads: Vec<u64> = exec.results.kernel_reads.iter().map(|r| u64_of(&r.value)).collect();
    assert!(at_hit > reads[0] && at_hit >= reads[10], "{at_hit} after {reads:?}");
    assert_eq!(watched.vcpus.len(), 2);
    assert!(watched.vcpus.iter().any(|v| v.rip >= 0xffff_8000_0000_0000), "the writer runs in the kernel: {watched:?}");
    assert!(exec.results.snapshots.iter().any(|s| s.name == "frozen"));

    // The watch is gone with its scenario: the guest runs on, and no snapshot is taken.
    let again = stream(vec![
        Step::new(vec![jiffies()], HoldSpec::fixed_ms(200)),
        Step::new(vec![jiffies()], HoldSpec::fixed_ms(0)),
    ]);
    let exec = execute(m.as_mut(), &again, &PayloadDefaults::new());
    assert_eq!(exec.error, None);
    assert!(exec.results.snapshots.is_empty(), "{:?}", exec.results.snapshots);
    let reads: Vec<u64> = exec.results.kernel_reads.iter().map(|r| u64_of(&r.value)).collect();
    assert!(reads[1] > reads[0], "{reads:?}");
    m.power_off().unwrap();
}

/// A data symbol of the kernel image at an address that is not 4-byte aligned
/// (picked from the guest's kallsyms, so no address is assumed).
fn misaligned_data_symbol(m: &mut dyn Machine) -> (String, u64) {
    let all = read_file(m, "/proc/kallsyms");
    let mut seen = std::collections::HashMap::<&str, u32>::new();
    let mut candidates = Vec::new();
    for line in all.lines() {
        let mut f = line.split_whitespace();
        let (Some(addr), Some(kind), Some(name), None) = (f.next(), f.next(), f.next(), f.next()) else { continue };
        *seen.entry(name).or_default() += 1;
        let addr = u64::from_str_radix(addr, 16).unwrap_or(0);
        if matches!(kind, "d" | "D" | "b" | "B") && addr & 3 != 0 && addr >= 0xffff_ffff_8000_0000 {
            candidates.push((name, addr));
        }
    }
    let (name, addr) = candidates.into_iter().find(|(n, _)| seen[n] == 1).expect("a misaligned data symbol");
    (name.to_owned(), addr)
}

#[test]
fn a_fourth_watch_and_a_misaligned_one_are_refused() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut m = boot("1n1l2c1t");
    // Four aligned, rarely written variables: the validator and the executor both refuse the 4th.
    let watches: Vec<Op> = ["kptr_restrict", "dmesg_restrict", "panic_timeout", "panic_on_oops"]
        .iter()
        .map(|s| Op::watch_snapshot(*s))
        .collect();
    let s = stream(vec![Step::new(watches, HoldSpec::fixed_ms(0))]);
    let err = schedbox::validate::validate_stream(&s).unwrap_err().to_string();
    assert!(err.contains("op 3 (watch-snapshot)") && err.contains("more than 3 watch-snapshot"), "{err}");
    let exec = execute(m.as_mut(), &s, &PayloadDefaults::new());
    let step = &exec.results.steps[0];
    let err = step.error.clone().unwrap_or_default();
    assert_eq!(step.status, StepStatus::Failed);
    assert!(
        err.contains("op 3 (watch-snapshot)") && err.contains("\"panic_on_oops\"") && err.contains("at most 3"),
        "{err}"
    );
    assert_eq!(exec.error, None, "the three armed watches were removed at the scenario's end");

    let (name, addr) = misaligned_data_symbol(m.as_mut());
    let s = stream(vec![Step::new(vec![Op::watch_snapshot(name.clone())], HoldSpec::fixed_ms(0))]);
    let exec = execute(m.as_mut(), &s, &PayloadDefaults::new());
    let err = exec.results.steps[0].error.clone().unwrap_or_default();
    assert!(err.contains(&format!("{addr:#x}")) && err.contains("4-byte aligned") && err.contains(&name), "{err}");
    // Nothing was armed: the guest still answers and its clock runs.
    let j = || Op::read_kernel_hot("j", KernelTarget::symbol("jiffies_64"), KernelValueWidth::U64);
    let s = stream(vec![Step::new(vec![j()], HoldSpec::fixed_ms(100)), Step::new(vec![j()], HoldSpec::fixed_ms(0))]);
    let exec = execute(m.as_mut(), &s, &PayloadDefaults::new());
    let r: Vec<u64> = exec.results.kernel_reads.iter().map(|r| u64_of(&r.value)).collect();
    assert!(r.len() == 2 && r[1] > r[0], "{r:?}");
    m.power_off().unwrap();
}

fn read_ok(out: &schedbox::executor::HostOpsOutcome) -> Vec<&KernelValue> {
    for o in &out.outcomes {
        assert!(o.is_ok(), "{o:?}");
    }
    out.results.kernel_reads.iter().map(|r| &r.value).collect()
}

#[test]
fn kva_targets_walk_the_guest_page_tables() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut m = boot("1n2l2c1t");
    let k = schedbox::kernel::resolve_kernel(None).expect("a fetched kernel");
    let btf = KernelBtf::from_vmlinux(&k.vmlinux).unwrap();
    let off = |f: &str| btf.field("task_struct", f).unwrap().offset;
    let banner = symbol_kva(m.as_mut(), "linux_banner");
    let init_task = symbol_kva(m.as_mut(), "init_task");
    let mut monitor = schedbox::monitor::Monitor::new(m.vmlinux().to_owned());
    let rq_cpu3 = monitor.resolve(m.as_mut(), &KernelTarget::per_cpu_field("runqueues", "cpu", 3)).unwrap().kva;
    let bytes = KernelValueWidth::Bytes(64);
    // Image (kernel text/data mapping), direct map (a per-CPU runqueue), hot and cold.
    let ops = vec![
        Op::read_kernel_hot("banner", KernelTarget::symbol("linux_banner"), bytes.clone()),
        Op::read_kernel_hot("banner-kva", KernelTarget::kva(banner), bytes.clone()),
        Op::read_kernel_cold("banner-kva-cold", KernelTarget::kva(banner), bytes.clone()),
        Op::read_kernel_hot("rq3.cpu", KernelTarget::kva(rq_cpu3), KernelValueWidth::U32),
        Op::read_kernel_cold("rq3.cpu-cold", KernelTarget::kva(rq_cpu3), KernelValueWidth::U32),
        Op::read_kernel_hot("init.tasks.next", KernelTarget::kva(init_task + off("tasks")), KernelValueWidth::U64),
        Op::read_kernel_hot("page_offset_base", KernelTarget::symbol("page_offset_base"), KernelValueWidth::U64),
    ];
    let out = schedbox::executor::run_host_ops(m.as_mut(), &ops);
    let v = read_ok(&out);
    let KernelValue::Bytes(b) = v[0] else { panic!("{v:?}") };
    assert!(b.starts_with(b"Linux version "), "{}", String::from_utf8_lossy(b));
    assert_eq!((v[1], v[2]), (v[0], v[0]), "the walk lands on the symbol's bytes");
    assert_eq!((u64_of(v[3]), u64_of(v[4])), (3, 3), "runqueues.cpu of CPU 3 through the direct map");
    assert_eq!(out.rendezvous, 2);

    // A vmalloc'd address (4 KiB pages): the first process's kernel stack ends in STACK_END_MAGIC.
    let task1 = u64_of(v[5]) - off("tasks");
    let ops = vec![
        Op::read_kernel_hot("pid", KernelTarget::direct(task1 + off("pid")), KernelValueWidth::U32),
        Op::read_kernel_hot("stack", KernelTarget::direct(task1 + off("stack")), KernelValueWidth::U64),
    ];
    let out = schedbox::executor::run_host_ops(m.as_mut(), &ops);
    let v2 = read_ok(&out);
    assert_eq!(u64_of(v2[0]), 1, "init_task.tasks.next is PID 1");
    let stack = u64_of(v2[1]);
    let ops = vec![
        Op::read_kernel_hot("magic", KernelTarget::kva(stack), KernelValueWidth::U32),
        Op::read_kernel_cold("magic-cold", KernelTarget::kva(stack), KernelValueWidth::U32),
    ];
    let out = schedbox::executor::run_host_ops(m.as_mut(), &ops);
    let magic: Vec<u64> = read_ok(&out).into_iter().map(u64_of).collect();
    assert_eq!(magic, [0x57ac_6e9d, 0x57ac_6e9d], "STACK_END_MAGIC at the end of PID 1's stack ({stack:#x})");

    // Far beyond the 512 MiB of RAM the direct map covers: unmapped, named with the level.
    let hole = u64_of(v[6]) + (64 << 30);
    let ops = vec![
        Op::read_kernel_hot("hole", KernelTarget::kva(hole), KernelValueWidth::U64),
        Op::read_kernel_cold("hole-cold", KernelTarget::kva(hole), KernelValueWidth::U64),
        Op::write_kernel_cold(vec![KernelWrite { target: KernelTarget::kva(hole), value: KernelValue::U64(1) }]),
    ];
    let out = schedbox::executor::run_host_ops(m.as_mut(), &ops);
    for (i, o) in out.outcomes.iter().enumerate() {
        let err = o.clone().unwrap_err();
        assert!(err.starts_with(&format!("op {i} (")), "{err}");
        assert!(err.contains(&format!("kva {hole:#x} is not mapped")) && err.contains("(level "), "{err}");
    }
    m.power_off().unwrap();
}

/// `/proc/<pid>/stat` fields, 1-based as proc(5) numbers them.
fn stat_field(stat: &str, n: usize) -> u64 {
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split_whitespace().nth(n - 3).unwrap().parse().unwrap()
}

/// `se.vruntime` from `/proc/<pid>/sched`, in ns (printed as ms with six decimals).
fn sched_vruntime(sched: &str) -> u64 {
    let line = sched.lines().find(|l| l.starts_with("se.vruntime")).unwrap_or_else(|| panic!("{sched}"));
    let v = line.split(':').nth(1).unwrap().trim();
    let (ms, frac) = v.split_once('.').unwrap();
    ms.parse::<u64>().unwrap() * 1_000_000 + frac.parse::<u64>().unwrap()
}

#[test]
fn task_fields_match_procfs_and_a_dsq_vtime_write_reads_back() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut vm = boot("1n1l2c1t");
    let m = vm.as_mut();
    let ask = |m: &mut dyn Machine, body: RequestBody| m.request(body).unwrap_or_else(|e| panic!("{e}"));
    ask(m, RequestBody::BeginScenario { name: "task-field".into() });
    ask(m, RequestBody::Apply { owner: Owner::Step, op: Op::attach_scheduler("fixture") });
    let defs = vec![CgroupDef::named("sleepers"), CgroupDef::named("spinners"), CgroupDef::named("cfs")];
    ask(m, RequestBody::Setup { owner: Owner::Step, defs });
    let sleepers = WorkSpec::default().work(WorkType::WaitOnFutex).workers(2).policy(SchedPolicy::Ext).nice(5);
    ask(m, RequestBody::Apply { owner: Owner::Step, op: Op::spawn(SpawnPlacement::cgroup("sleepers"), sleepers) });
    let spinner = WorkSpec::default().workers(1).policy(SchedPolicy::Ext);
    ask(m, RequestBody::Apply { owner: Owner::Step, op: Op::spawn(SpawnPlacement::cgroup("spinners"), spinner) });
    let cfs = WorkSpec::default().work(WorkType::WaitOnFutex).workers(1);
    ask(m, RequestBody::Apply { owner: Owner::Step, op: Op::spawn(SpawnPlacement::cgroup("cfs"), cfs) });
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pids = |m: &mut dyn Machine, cg: &str| -> Vec<u32> {
        read_file(m, &format!("/sys/fs/cgroup/schedbox/{cg}/cgroup.procs"))
            .lines()
            .map(|l| l.parse().unwrap())
            .collect()
    };
    let pid = pids(m, "sleepers")[0];
    let spinner = pids(m, "spinners")[0];
    let stat = read_file(m, &format!("/proc/{pid}/stat"));
    let start_ns = |stat: &str| stat_field(stat, 22) * 10_000_000;
    let start = start_ns(&stat);
    let vruntime = sched_vruntime(&read_file(m, &format!("/proc/{pid}/sched")));
    let tf = |pid, start, field: &str| KernelTarget::task_field(pid, start, field);
    let seed = 30 * 86_400 * 1_000_000_000u64;
    let ops = vec![
        Op::read_kernel_cold("pid", tf(pid, start, "pid"), KernelValueWidth::U32),
        Op::read_kernel_cold("prio", tf(pid, start, "prio"), KernelValueWidth::U32),
        Op::read_kernel_hot("se.vruntime", tf(pid, start, "se.vruntime"), KernelValueWidth::U64),
        Op::write_kernel_cold(vec![KernelWrite {
            target: tf(pid, start, "scx.dsq_vtime"),
            value: KernelValue::U64(seed),
        }]),
        Op::read_kernel_cold("dsq_vtime", tf(pid, start, "scx.dsq_vtime"), KernelValueWidth::U64),
    ];
    let out = schedbox::executor::run_host_ops(m, &ops);
    let v: Vec<u64> = read_ok(&out).into_iter().map(u64_of).collect();
    assert_eq!(v[0], u64::from(pid));
    assert_eq!(v[1], stat_field(&stat, 18) + 100, "prio = procfs priority + MAX_RT_PRIO (nice 5: 125)");
    assert_eq!(v[1], 125);
    assert_eq!(v[2], vruntime, "se.vruntime as /proc/{pid}/sched prints it");
    assert_eq!(v[3], seed, "scx.dsq_vtime reads back what was written");

    // The gates: PID reuse, a task on a runqueue, a task outside sched_ext, no such task or field.
    let cfs = pids(m, "cfs")[0];
    let cfs_start = start_ns(&read_file(m, &format!("/proc/{cfs}/stat")));
    let spinner_start = start_ns(&read_file(m, &format!("/proc/{spinner}/stat")));
    let bad = vec![
        Op::read_kernel_cold("reused", tf(pid, start + 1_000_000_000, "prio"), KernelValueWidth::U32),
        Op::read_kernel_cold("running", tf(spinner, spinner_start, "prio"), KernelValueWidth::U32),
        Op::read_kernel_cold("cfs", tf(cfs, cfs_start, "prio"), KernelValueWidth::U32),
        Op::read_kernel_hot("gone", tf(999_999, 0, "prio"), KernelValueWidth::U32),
        Op::read_kernel_hot("field", tf(pid, start, "no_such_field"), KernelValueWidth::U32),
    ];
    let out = schedbox::executor::run_host_ops(m, &bad);
    let errs: Vec<String> = out.outcomes.iter().map(|o| o.clone().unwrap_err()).collect();
    let expect = [
        (pid, "pid was reused"),
        (spinner, "the task is"),
        (cfs, "not on the sched_ext class"),
        (999_999, "no such task"),
        (pid, "no member \"no_such_field\""),
    ];
    for (err, (p, why)) in errs.iter().zip(expect) {
        assert!(err.contains(&format!("task-field pid {p} ")) && err.contains(why), "{err}");
    }
    assert!(errs[1].contains("on_rq") || errs[1].contains("DSQ"), "a spinning task is runnable: {}", errs[1]);
    ask(m, RequestBody::EndScenario);
    vm.power_off().unwrap();
}

/// A shell payload in the guest asks the agent (`/init host-op`, the client of the
/// agent's host-ops socket) for a snapshot, a cold read of `jiffies_64` and a guest-side
/// op; the executor services the first two during the hold with the scenario's own
/// host-side code, the third is refused.
#[test]
fn guest_initiated_host_ops_land_in_the_results_and_answer_the_client() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // /bin/sh is dynamically linked: its loader and libc are staged with it.
    let req = BootRequest {
        kernel: None,
        topology: parse_topology("1n2l2c1t").unwrap(),
        memory_mib: 512,
        staged: vec![("/staging/payloads/sh".into(), "/bin/sh".into())],
    };
    let spec = machine::prepare_boot(&req).unwrap_or_else(|e| panic!("prepare (run `cargo xtask setup`): {e:#}"));
    let mut m = machine::boot(test_backend(), &spec).unwrap_or_else(|e| panic!("boot: {e}"));
    let jiffies = |tag: &str| Op::read_kernel_cold(tag, KernelTarget::symbol("jiffies_64"), KernelValueWidth::U64);
    let script = "/init host-op capture-snapshot guest-snap && \
                  /init host-op read-kernel-cold guest-j jiffies_64 u64; \
                  /init host-op json '{\"op\":\"add-cgroup\",\"name\":\"x\"}'; echo refused-exit=$?; \
                  /init host-op json '{\"op\":\"write-kernel-hot\",\"writes\":[{\"target\":{\"symbol\":\"sbx_none\"},\
                  \"value\":{\"u32\":1}}]}'; echo write-exit=$?";
    let mut s = stream(vec![
        // The payload asks while the step holds.
        Step::new(vec![], HoldSpec::fixed_ms(5000)),
        Step::new(vec![Op::wait_payload("sh", None), jiffies("after")], HoldSpec::fixed_ms(0)),
    ]);
    // Backdrop-owned, so the step's teardown does not kill it; started after the first read.
    s.backdrop.ops = vec![jiffies("before"), Op::run_payload("sh", vec!["-c".into(), script.into()], None)];
    let exec = execute(m.as_mut(), &s, &PayloadDefaults::new());
    assert_eq!(exec.error, None, "{exec:?}");
    assert!(exec.results.steps.iter().all(|st| st.status == StepStatus::Passed), "{:?}", exec.results.steps);
    let p = exec.results.payloads.iter().find(|p| p.name == "sh").expect("the payload was reaped");
    assert!(p.stdout_tail.contains("refused-exit=1"), "{p:?}");
    assert!(p.stderr_tail.contains("add-cgroup is not a host-side op"), "{p:?}");
    // Kernel writes stay with the scenario's own (policy-checked) op stream.
    assert!(p.stdout_tail.contains("write-exit=1"), "{p:?}");
    assert!(p.stderr_tail.contains("write-kernel-hot is refused from the guest"), "{p:?}");

    // The snapshot, under its name, from one rendezvous, with kernel RIPs.
    let snap = exec.results.snapshots.iter().find(|s| s.name == "guest-snap").expect("guest snapshot in results");
    assert_eq!(snap.vcpus.len(), 4);
    assert!(snap.vcpus.iter().filter(|v| v.rip >= 0xffff_8000_0000_0000).count() >= 2, "{:?}", snap.vcpus);
    assert!(snap.values.iter().any(|(n, _)| n == "jiffies_64"), "{:?}", snap.values);
    // before, the guest's snapshot, the guest's read, after.
    assert_eq!(exec.rendezvous, 4, "{:?}", exec.notes);

    // The guest's read sits between the host's reads taken before and after.
    let read = |tag: &str| {
        let r = exec.results.kernel_reads.iter().find(|r| r.tag == tag);
        u64_of(&r.unwrap_or_else(|| panic!("no read {tag}: {:?}", exec.results.kernel_reads)).value)
    };
    let (before, guest, after) = (read("before"), read("guest-j"), read("after"));
    assert!(before <= guest && guest <= after && before < after, "{before} <= {guest} <= {after}");

    // The client printed the value it was given.
    let line = p.stdout_tail.lines().find(|l| l.contains("guest-j")).unwrap_or_else(|| panic!("{p:?}"));
    let reply: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(reply["ok"]["reads"][0]["value"]["u64"].as_u64(), Some(guest), "{line}");
    assert_eq!(reply["ok"]["rendezvous"].as_u64(), Some(1), "{line}");
    let snap_line = p.stdout_tail.lines().find(|l| l.contains("guest-snap")).unwrap_or_else(|| panic!("{p:?}"));
    assert!(snap_line.starts_with("{\"ok\""), "{snap_line}");

    // The report marks them guest-initiated.
    let notes = exec.notes.join("\n");
    assert!(notes.contains("guest-initiated capture-snapshot") && notes.contains("guest-initiated read-kernel-cold"));
    assert!(notes.contains("snapshot \"guest-snap\""), "{notes}");
    m.power_off().unwrap();
}

/// Guest requests the host cannot serve are answered at once, on one guest:
/// - a payload that asks while the host waits on it (`wait-payload`) cannot be served
///   until it exits, so the agent refuses instead of letting the two wait on each other;
/// - a read asked for under a policy with `reads = false` (an untrusted component)
///   is refused by the executor with the policy's reason, and nothing is read.
#[test]
fn guest_requests_refused_by_wait_payload_or_the_policy_answer_at_once() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let req = BootRequest {
        kernel: None,
        topology: parse_topology("1n1l2c1t").unwrap(),
        memory_mib: 512,
        staged: vec![("/staging/payloads/sh".into(), "/bin/sh".into())],
    };
    let spec = machine::prepare_boot(&req).unwrap_or_else(|e| panic!("prepare (run `cargo xtask setup`): {e:#}"));
    let mut m = machine::boot(test_backend(), &spec).unwrap_or_else(|e| panic!("boot: {e}"));
    // The sleep lets the host reach wait-payload before the client asks.
    let script = "sleep 1; /init host-op capture-snapshot late; echo exit=$?";
    let s = stream(vec![Step::new(
        vec![Op::run_payload("sh", vec!["-c".into(), script.into()], None), Op::wait_payload("sh", None)],
        HoldSpec::fixed_ms(0),
    )]);
    let t0 = std::time::Instant::now();
    let exec = execute(m.as_mut(), &s, &PayloadDefaults::new());
    let took = t0.elapsed();
    assert_eq!(exec.error, None, "{exec:?}");
    assert!(exec.results.steps.iter().all(|st| st.status == StepStatus::Passed), "{:?}", exec.results.steps);
    let p = exec.results.payloads.iter().find(|p| p.name == "sh").expect("the payload was reaped");
    assert!(p.stdout_tail.contains("exit=1"), "{p:?}");
    assert!(p.stderr_tail.contains("the host is waiting on wait-payload"), "{p:?}");
    assert!(exec.results.snapshots.is_empty() && exec.rendezvous == 0, "{exec:?}");
    assert!(took < std::time::Duration::from_secs(20), "refused at once, not after a timeout: {took:?}");

    // The same guest, a component the policy does not let read the kernel.
    let mut policy = schedbox::policy::Policy::from_toml("[kernel]\nreads = false\n").unwrap();
    policy.source = Some("closed.toml".into());
    let grants = policy
        .guest_grants(schedbox::policy::Subject { label: "closed.wasm", digest: &[9; 32], signature: None }, "monitor");
    let script = "/init host-op read-kernel-cold guest-j jiffies_64 u64; echo read-exit=$?; \
                  /init host-op capture-snapshot guest-snap; echo snap-exit=$?";
    let mut s = stream(vec![
        Step::new(vec![], HoldSpec::fixed_ms(3000)),
        Step::new(vec![Op::wait_payload("sh", None)], HoldSpec::fixed_ms(0)),
    ]);
    s.backdrop.ops = vec![Op::run_payload("sh", vec!["-c".into(), script.into()], None)];
    let exec = execute_observed(m.as_mut(), &s, &PayloadDefaults::new(), &grants, &mut NoProgress);
    assert_eq!(exec.error, None, "{exec:?}");
    assert!(exec.results.steps.iter().all(|st| st.status == StepStatus::Passed), "{:?}", exec.results.steps);
    let p = exec.results.payloads.iter().find(|p| p.name == "sh").expect("the payload was reaped");
    assert!(p.stdout_tail.contains("read-exit=1") && p.stdout_tail.contains("snap-exit=1"), "{p:?}");
    for op in ["read-kernel-cold", "capture-snapshot"] {
        let line = format!("{op} is refused from the guest: closed.toml sets `reads = false` in [kernel]");
        assert!(p.stderr_tail.contains(&line), "{line}\n{p:?}");
    }
    assert!(p.stderr_tail.contains("closed.wasm is not trusted"), "{p:?}");
    assert!(exec.results.kernel_reads.is_empty() && exec.results.snapshots.is_empty(), "{exec:?}");
    assert_eq!(exec.rendezvous, 0, "{exec:?}");
    let notes = exec.notes.join("\n");
    assert!(notes.contains("guest-initiated read-kernel-cold (request"), "{notes}");
    assert!(notes.contains("refused: read-kernel-cold is refused from the guest"), "{notes}");
    m.power_off().unwrap();
}
