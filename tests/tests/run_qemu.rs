//! End-to-end execution of guest-side ops on the qemu backend (or `SCHEDBOX_TEST_BACKEND=kvm`). Each test
//! asserts what the kernel shows (cpuset.cpus.effective, cgroup.procs,
//! cgroup.events, /proc/irq/N/smp_affinity_list), read back through the agent.

use std::sync::Mutex;

use schedbox::executor::{execute, PayloadDefaults};
use schedbox::machine::{self, parse_topology, BootRequest, Machine};
use schedbox::op_model::*;
use schedbox::results::{Outcome, StepStatus};
use schedbox::sandbox::SandboxLimits;
use schedbox_tests::{example, repo_root, test_backend, TestSandbox};
use schedbox_wire::{Owner, RequestBody, ResponseBody};

static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

fn boot(topology: &str, staged: Vec<(String, std::path::PathBuf)>) -> Box<dyn Machine> {
    let req = BootRequest { kernel: None, topology: parse_topology(topology).unwrap(), memory_mib: 512, staged };
    let spec = machine::prepare_boot(&req).unwrap_or_else(|e| panic!("prepare (run `cargo xtask setup`): {e:#}"));
    machine::boot(test_backend(), &spec).unwrap_or_else(|e| panic!("boot: {e}"))
}

fn ask(m: &mut dyn Machine, body: RequestBody) -> ResponseBody {
    let what = format!("{body:?}");
    m.request(body).unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn read(m: &mut dyn Machine, path: &str) -> Result<String, String> {
    match m.request(RequestBody::ReadFile { path: path.into() }) {
        Ok(ResponseBody::File(s)) => Ok(s.trim().to_owned()),
        Ok(other) => Err(format!("{other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

fn cg(m: &mut dyn Machine, name: &str, file: &str) -> String {
    read(m, &format!("/sys/fs/cgroup/schedbox/{name}/{file}")).unwrap_or_else(|e| panic!("{name}/{file}: {e}"))
}

fn pids(m: &mut dyn Machine, name: &str) -> Vec<u32> {
    cg(m, name, "cgroup.procs").lines().filter_map(|l| l.trim().parse().ok()).collect()
}

fn apply(m: &mut dyn Machine, op: Op) -> ResponseBody {
    ask(m, RequestBody::Apply { owner: Owner::Step, op })
}

fn assert_clean(m: &mut dyn Machine) {
    assert!(read(m, "/sys/fs/cgroup/schedbox/cgroup.procs").is_err(), "the managed parent cgroup is still there");
}

#[test]
fn every_cpuset_spec_resolves_against_the_real_topology() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut m = boot("1n2l2c1t", vec![]);
    ask(m.as_mut(), RequestBody::BeginScenario { name: "cpusets".into() });
    let cases = [
        ("llc1", CpusetSpec::llc(1), "2-3"),
        ("numa0", CpusetSpec::numa(0), "0-3"),
        ("range", CpusetSpec::range(0.0, 0.5), "0-1"),
        ("disjoint", CpusetSpec::disjoint(1, 2), "2-3"),
        ("overlap", CpusetSpec::overlap(0, 2, 0.5), "0-2"),
        ("exact", CpusetSpec::exact([3]), "3"),
    ];
    let defs = cases.iter().map(|(n, spec, _)| CgroupDef::named(*n).cpuset(spec.clone())).collect();
    ask(m.as_mut(), RequestBody::Setup { owner: Owner::Step, defs });
    for (name, _, want) in &cases {
        assert_eq!(cg(m.as_mut(), name, "cpuset.cpus.effective"), *want, "{name}");
    }
    // clear-cpuset inherits the parent's CPUs; swap-cpusets exchanges two.
    apply(m.as_mut(), Op::clear_cpuset("exact"));
    assert_eq!(cg(m.as_mut(), "exact", "cpuset.cpus.effective"), "0-3");
    apply(m.as_mut(), Op::swap_cpusets("llc1", "range"));
    assert_eq!(cg(m.as_mut(), "llc1", "cpuset.cpus.effective"), "0-1");
    assert_eq!(cg(m.as_mut(), "range", "cpuset.cpus.effective"), "2-3");
    ask(m.as_mut(), RequestBody::EndScenario);
    assert_clean(m.as_mut());
    m.power_off().unwrap();
}

#[test]
fn workers_spawn_move_freeze_stop_with_kernel_visible_effects() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut m = boot("1n2l2c1t", vec![]);
    let m = m.as_mut();
    ask(m, RequestBody::BeginScenario { name: "workers".into() });
    // Both on LLC 1: the workers' CPUs are then bounded for the whole step, also after
    // the move to `b` (which stop-cgroup ends only after they ran there a while).
    let defs = vec![CgroupDef::named("a").cpuset(CpusetSpec::llc(1)), CgroupDef::named("b").cpuset(CpusetSpec::llc(1))];
    ask(m, RequestBody::Setup { owner: Owner::Step, defs });
    apply(m, Op::spawn(SpawnPlacement::cgroup("a"), WorkSpec::default().workers(2).comm("spinner")));
    let a = pids(m, "a");
    assert_eq!(a.len(), 2, "two workers in a: {a:?}");
    assert_eq!(read(m, &format!("/proc/{}/comm", a[0])).unwrap(), "spinner");
    std::thread::sleep(std::time::Duration::from_millis(800));
    // Freeze: cgroup.events reaches frozen 1, then 0 after the thaw.
    apply(m, Op::freeze_cgroup("a"));
    assert!(cg(m, "a", "cgroup.events").contains("frozen 1"), "{}", cg(m, "a", "cgroup.events"));
    apply(m, Op::unfreeze_cgroup("a"));
    assert!(cg(m, "a", "cgroup.events").contains("frozen 0"));
    // capture-cgroup-procs reports what cgroup.procs holds.
    match apply(m, Op::capture_cgroup_procs("in-a", "a")) {
        ResponseBody::Applied(ap) => {
            let mut got = ap.captures[0].pids.clone();
            got.sort_unstable();
            let mut want = a.clone();
            want.sort_unstable();
            assert_eq!((ap.captures[0].tag.as_str(), got), ("in-a", want));
        }
        other => panic!("{other:?}"),
    }
    apply(m, Op::move_all_tasks("a", "b"));
    assert!(pids(m, "a").is_empty());
    assert_eq!(pids(m, "b").len(), 2);
    apply(m, Op::stop_cgroup("b"));
    assert!(pids(m, "b").is_empty(), "stop-cgroup leaves no task");
    match ask(m, RequestBody::EndStep) {
        ResponseBody::Teardown(t) => {
            let w = t.workers.iter().find(|w| w.workers == 2).unwrap_or_else(|| panic!("{:?}", t.workers));
            assert!(w.iterations > 0, "the workers ran: {w:?}");
            assert!(w.cpu_time_ns > 0, "{w:?}");
            // In `a` and `b` they could only run on LLC 1 (CPUs 2-3).
            assert!(w.cpus.iter().all(|(cpu, _)| *cpu == 2 || *cpu == 3), "ran outside LLC 1: {:?}", w.cpus);
            assert!(t.leftovers.is_empty(), "{:?}", t.leftovers);
        }
        other => panic!("{other:?}"),
    }
    assert!(read(m, "/sys/fs/cgroup/schedbox/a/cgroup.procs").is_err(), "step-local cgroup removed");
    ask(m, RequestBody::EndScenario);
    assert_clean(m);
}

/// CPU time of `pids` on a CPU, ns (`/proc/<pid>/schedstat`, first field).
fn cpu_ns(m: &mut dyn Machine, pids: &[u32]) -> u64 {
    pids.iter()
        .map(|p| {
            let s = read(m, &format!("/proc/{p}/schedstat")).unwrap_or_else(|e| panic!("pid {p}: {e}"));
            s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| panic!("{s:?}"))
        })
        .sum()
}

fn usage_usec(m: &mut dyn Machine, name: &str) -> u64 {
    let stat = cg(m, name, "cpu.stat");
    stat.lines().find_map(|l| l.strip_prefix("usage_usec ")?.parse().ok()).unwrap_or_else(|| panic!("{stat}"))
}

/// The reference's suspend/resume: a Backdrop cgroup frozen in one step stays frozen
/// into the next (the step's teardown does not thaw it) until an unfreeze-cgroup. Read
/// at the start of the next step, before any op: `frozen 1`, and neither the workers'
/// CPU time nor the cgroup's `usage_usec` grows while it stays frozen.
#[test]
fn a_freeze_lasts_into_the_next_step_until_unfreeze() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut m = boot("1n1l2c1t", vec![]);
    let m = m.as_mut();
    ask(m, RequestBody::BeginScenario { name: "freeze".into() });
    ask(m, RequestBody::Setup { owner: Owner::Backdrop, defs: vec![CgroupDef::named("bg").workers(2)] });
    let bg = pids(m, "bg");
    assert_eq!(bg.len(), 2, "{bg:?}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    apply(m, Op::freeze_cgroup("bg"));
    let end_of_freeze_step = match ask(m, RequestBody::EndStep) {
        ResponseBody::Teardown(t) => t.step.expect("EndStep reports the step's metrics"),
        other => panic!("{other:?}"),
    };
    let at_end = end_of_freeze_step.cgroups.iter().find(|c| c.name == "bg").expect("bg in the step metrics");
    assert!(at_end.frozen && at_end.backdrop, "{at_end:?}");
    // The next step has begun; no op of it ran yet.
    let events = cg(m, "bg", "cgroup.events");
    let (cpu0, usage0) = (cpu_ns(m, &bg), usage_usec(m, "bg"));
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let (cpu1, usage1) = (cpu_ns(m, &bg), usage_usec(m, "bg"));
    eprintln!(
        "frozen across the step boundary: {events:?}; worker CPU {cpu0} -> {cpu1} ns, usage_usec {usage0} -> {usage1}"
    );
    assert!(events.contains("frozen 1"), "the step's teardown thawed the Backdrop cgroup: {events:?}");
    assert_eq!(cpu1, cpu0, "the frozen workers ran across the step boundary");
    assert_eq!(usage1, usage0, "the frozen cgroup used CPU across the step boundary");
    // A step that does nothing keeps it frozen too; its metrics say so.
    let idle_step = match ask(m, RequestBody::EndStep) {
        ResponseBody::Teardown(t) => t.step.expect("step metrics"),
        other => panic!("{other:?}"),
    };
    let bg_idle = idle_step.cgroups.iter().find(|c| c.name == "bg").unwrap();
    assert!(bg_idle.frozen && bg_idle.usage_usec == usage0, "{bg_idle:?}");
    for w in &idle_step.workers {
        let before = end_of_freeze_step.workers.iter().find(|b| b.tid == w.tid).expect("same workers");
        assert_eq!((w.cpu_time_ns, w.work_units), (before.cpu_time_ns, before.work_units), "{w:?} vs {before:?}");
        assert!(w.off_cpu_ns >= 1_000_000_000, "frozen for the whole idle step (1 s): {w:?}");
    }
    // Unfreeze: they run again, and the freeze shows as each worker's longest gap.
    apply(m, Op::unfreeze_cgroup("bg"));
    assert!(cg(m, "bg", "cgroup.events").contains("frozen 0"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let resumed = match ask(m, RequestBody::EndStep) {
        ResponseBody::Teardown(t) => t.step.expect("step metrics"),
        other => panic!("{other:?}"),
    };
    let bg_resumed = resumed.cgroups.iter().find(|c| c.name == "bg").unwrap();
    assert!(!bg_resumed.frozen && bg_resumed.usage_usec > usage0, "{bg_resumed:?}");
    assert_eq!(bg_resumed.cpus_effective, [0, 1], "{bg_resumed:?}");
    assert_eq!(resumed.workers.len(), 2, "{:?}", resumed.workers);
    for w in &resumed.workers {
        assert!(w.alive && w.cgroup == "bg" && bg.contains(&w.tid), "{w:?}");
        assert!(w.cpu_time_ns > 0 && w.wall_time_ns > w.cpu_time_ns, "{w:?}");
        assert!(w.max_gap_ns >= 1_000_000_000, "the freeze (over 1 s) is the longest gap: {w:?}");
        assert!(w.max_gap_cpu <= 1 && w.max_gap_at_ns > 0 && !w.cpus.is_empty(), "{w:?}");
    }
    ask(m, RequestBody::EndScenario);
    assert_clean(m);
}

/// A cgroup still frozen when it goes is thawed before its tasks are drained: a
/// Backdrop cgroup frozen in a step and never unfrozen ends with the scenario, and one
/// removed while frozen goes at once; nothing is left and no task stays frozen.
#[test]
fn a_cgroup_still_frozen_at_its_removal_is_thawed_and_drained() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut m = boot("1n1l2c1t", vec![]);
    let m = m.as_mut();
    ask(m, RequestBody::BeginScenario { name: "frozen-at-end".into() });
    let defs = vec![CgroupDef::named("bg").workers(2), CgroupDef::named("gone").workers(1)];
    ask(m, RequestBody::Setup { owner: Owner::Backdrop, defs });
    apply(m, Op::freeze_cgroup("bg"));
    apply(m, Op::freeze_cgroup("gone"));
    ask(m, RequestBody::EndStep);
    assert!(cg(m, "bg", "cgroup.events").contains("frozen 1"));
    apply(m, Op::remove_cgroup("gone"));
    assert!(read(m, "/sys/fs/cgroup/schedbox/gone/cgroup.procs").is_err(), "the frozen cgroup was removed");
    match ask(m, RequestBody::EndScenario) {
        ResponseBody::Teardown(t) => {
            assert!(t.leftovers.is_empty(), "{:?}", t.leftovers);
            let bg = t.workers.iter().find(|w| w.cgroup == "bg").expect("bg's workers are reported");
            assert_eq!(bg.workers, 2, "{bg:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_clean(m);
    match ask(m, RequestBody::Reset) {
        ResponseBody::Reset(r) => {
            assert!(r.verified() && r.frozen.found.is_empty() && r.tasks.found.is_empty(), "{r:?}")
        }
        other => panic!("{other:?}"),
    }
}

/// The same through the executor: `results.step_metrics` has one entry per step, read at
/// its end; the frozen Backdrop cgroup stays frozen through a step without ops.
#[test]
fn step_metrics_follow_a_freeze_across_steps() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut m = boot("1n1l2c1t", vec![]);
    let info = ScenarioInfo {
        name: "freeze-steps".into(),
        summary: String::new(),
        topology: parse_topology("1n1l2c1t").unwrap(),
        kernel_features: vec![],
        payloads: vec![],
        schedulers: vec![],
        duration_ms: 1000,
    };
    let stream = OpStream {
        contract: CONTRACT_VERSION.into(),
        scenario: info,
        backdrop: Backdrop::new().push_cgroup(CgroupDef::named("bg").workers(2)),
        steps: vec![
            Step::with_defs(
                vec![CgroupDef::named("s").cpuset(CpusetSpec::exact([1]))],
                vec![],
                HoldSpec::fixed_ms(300),
            ),
            Step::new(vec![Op::freeze_cgroup("bg")], HoldSpec::fixed_ms(300)),
            Step::new(vec![], HoldSpec::fixed_ms(500)),
            Step::new(vec![Op::unfreeze_cgroup("bg")], HoldSpec::fixed_ms(300)),
        ],
    };
    schedbox::validate::validate_stream(&stream).unwrap();
    let exec = execute(m.as_mut(), &stream, &PayloadDefaults::new());
    assert!(exec.error.is_none() && exec.results.steps.iter().all(|s| s.status == StepStatus::Passed), "{exec:?}");
    let sm = &exec.results.step_metrics;
    assert_eq!(sm.iter().map(|s| s.step).collect::<Vec<_>>(), [0, 1, 2, 3]);
    let bg = |i: usize| sm[i].cgroups.iter().find(|c| c.name == "bg").unwrap().clone();
    // Step-local cgroups are read before their teardown, with their resolved cpuset.
    let s = sm[0].cgroups.iter().find(|c| c.name == "s").expect("step-local cgroup in step 0's metrics");
    assert_eq!((s.backdrop, s.cpus_effective.as_slice()), (false, &[1][..]), "{s:?}");
    assert!(sm[1].cgroups.iter().all(|c| c.name != "s"));
    assert!(!bg(0).frozen && bg(1).frozen && bg(2).frozen && !bg(3).frozen);
    eprintln!("bg usage_usec per step: {:?}", (0..4).map(|i| bg(i).usage_usec).collect::<Vec<_>>());
    assert_eq!(bg(2).usage_usec, bg(1).usage_usec, "frozen through step 2");
    assert!(bg(3).usage_usec > bg(2).usage_usec && bg(0).usage_usec > 0);
    assert_eq!((bg(2).metrics.workers, bg(2).metrics.iterations), (2, bg(1).metrics.iterations));
    assert!(sm.iter().all(|s| !s.sched_ext_state.is_empty() && s.workers.len() == 2), "{sm:?}");
    assert_clean(m.as_mut());
    m.power_off().unwrap();
}

#[test]
fn backdrop_cgroups_survive_a_step_and_cannot_be_stranded() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut m = boot("1n1l2c1t", vec![]);
    let m = m.as_mut();
    ask(m, RequestBody::BeginScenario { name: "backdrop".into() });
    ask(m, RequestBody::Setup { owner: Owner::Backdrop, defs: vec![CgroupDef::named("bg").workers(1)] });
    ask(m, RequestBody::Setup { owner: Owner::Step, defs: vec![CgroupDef::named("s")] });
    // The agent refuses Backdrop -> step-local moves too, not only the validator.
    let err = m.request(RequestBody::Apply { owner: Owner::Step, op: Op::move_all_tasks("bg", "s") }).unwrap_err();
    assert!(err.to_string().contains("Backdrop"), "{err}");
    ask(m, RequestBody::EndStep);
    assert_eq!(pids(m, "bg").len(), 1, "the Backdrop worker survives the step");
    assert!(read(m, "/sys/fs/cgroup/schedbox/s/cgroup.procs").is_err(), "the step-local cgroup is gone");
    ask(m, RequestBody::EndScenario);
    assert_clean(m);
}

#[test]
fn steer_irq_writes_smp_affinity_list() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut m = boot("1n1l2c1t", vec![]);
    let m = m.as_mut();
    let interrupts = read(m, "/proc/interrupts").unwrap();
    // The first numbered IRQ whose affinity can be set (the serial port's is).
    let irq: u32 = interrupts
        .lines()
        .filter_map(|l| l.trim().split(':').next()?.trim().parse().ok())
        .find(|n| read(m, &format!("/proc/irq/{n}/smp_affinity_list")).is_ok())
        .expect("a steerable IRQ");
    let file = format!("/proc/irq/{irq}/smp_affinity_list");
    let original = read(m, &file).unwrap();
    assert_ne!(original, "1", "steering to CPU 1 must change it");
    ask(m, RequestBody::BeginScenario { name: "irq".into() });
    apply(m, Op::steer_irq(IrqSelector::ByNumber(irq), 1));
    assert_eq!(read(m, &file).unwrap(), "1");
    let err = m.request(RequestBody::Apply { owner: Owner::Step, op: Op::steer_irq(IrqSelector::ByNumber(irq), 9) });
    assert!(err.unwrap_err().to_string().contains('9'), "an offline CPU is named");
    // The step's metrics show the IRQ where it was steered.
    match ask(m, RequestBody::EndStep) {
        ResponseBody::Teardown(t) => {
            let irqs = t.step.expect("step metrics").irqs;
            assert_eq!(irqs.iter().map(|i| (i.irq, i.affinity.clone())).collect::<Vec<_>>(), [(irq, vec![1])]);
        }
        other => panic!("{other:?}"),
    }
    // A scenario abandoned mid-way (no EndScenario): the between-scenario reset puts the
    // IRQ back and verifies it.
    match ask(m, RequestBody::Reset) {
        ResponseBody::Reset(r) => {
            assert!(r.verified(), "{r:?}");
            assert_eq!(r.irqs.found.len(), 1, "{r:?}");
            assert!(r.irqs.found[0].contains(&format!("IRQ {irq}")) && r.irqs.remaining.is_empty(), "{r:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(read(m, &file).unwrap(), original, "the reset restores the IRQ's affinity");
    // steer-irq-cpus takes a CPU set (here: both CPUs, as a scenario restores `0-N` itself).
    ask(m, RequestBody::BeginScenario { name: "irq-set".into() });
    apply(m, Op::steer_irq(IrqSelector::ByNumber(irq), 1));
    apply(m, Op::steer_irq_cpus(IrqSelector::ByNumber(irq), [0, 1]));
    assert_eq!(read(m, &file).unwrap(), "0-1");
    let err = m
        .request(RequestBody::Apply { owner: Owner::Step, op: Op::steer_irq_cpus(IrqSelector::ByNumber(irq), [0, 9]) });
    assert!(err.unwrap_err().to_string().contains("CPU 9 is not online"), "an offline CPU of the set is named");
    ask(m, RequestBody::EndScenario);
    assert_eq!(read(m, &file).unwrap(), original);
    // A scenario that ends normally puts it back too, so the next one starts as this one did.
    ask(m, RequestBody::BeginScenario { name: "irq-again".into() });
    apply(m, Op::steer_irq(IrqSelector::ByNumber(irq), 1));
    assert_eq!(read(m, &file).unwrap(), "1");
    ask(m, RequestBody::EndScenario);
    assert_eq!(read(m, &file).unwrap(), original, "the scenario's end restores the IRQ's affinity");
    match ask(m, RequestBody::Reset) {
        ResponseBody::Reset(r) => assert!(r.verified() && r.irqs.found.is_empty(), "{r:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn examples_pass_their_checks_in_a_real_guest() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let sb = TestSandbox::new(SandboxLimits::default());
    let mut m = boot("1n2l2c1t", vec![]);
    let cases = [
        ("rust", "cpuset-split"),
        ("rust", "dynamic-add"),
        ("rust", "freeze-resume"),
        ("rust", "move-tasks"),
        // The C versions emit the same streams; their checks must agree with the kernel too.
        ("c", "cpuset-split"),
        ("c", "freeze-resume"),
    ];
    for (lang, name) in cases {
        let loaded = sb.load_file(&example(lang, name)).unwrap();
        let plan = sb.plan(&loaded).unwrap();
        let exec = execute(m.as_mut(), &plan.stream, &PayloadDefaults::new());
        assert_eq!(exec.error, None, "{lang} {name}");
        assert!(exec.results.steps.iter().all(|s| s.status == StepStatus::Passed), "{name}: {:?}", exec.results.steps);
        let verdict = sb.check(&loaded, name, exec.results.clone()).unwrap();
        assert_eq!(verdict.outcome, Outcome::Pass, "{name}: {:?}", verdict.messages);
        assert_clean(m.as_mut());
    }
    m.power_off().unwrap();
}

#[test]
fn a_failing_op_fails_its_step_skips_the_rest_and_leaves_nothing() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut m = boot("1n1l2c1t", vec![]);
    let info = ScenarioInfo {
        name: "fails".into(),
        summary: String::new(),
        topology: parse_topology("1n1l2c1t").unwrap(),
        kernel_features: vec![],
        payloads: vec![],
        schedulers: vec![],
        duration_ms: 100,
    };
    let stream = OpStream {
        contract: CONTRACT_VERSION.into(),
        scenario: info,
        backdrop: Backdrop::new().push_cgroup(CgroupDef::named("bg").workers(1)),
        steps: vec![
            Step::with_defs(vec![CgroupDef::named("ok").workers(1)], vec![], HoldSpec::fixed_ms(50)),
            Step::with_defs(
                vec![CgroupDef::named("doomed").workers(1)],
                // An op on a cgroup that does not exist (the validator would refuse this
                // stream; the guest must still fail cleanly on it).
                vec![Op::freeze_cgroup("ghost")],
                HoldSpec::fixed_ms(50),
            ),
            Step::new(vec![Op::add_cgroup("never")], HoldSpec::fixed_ms(50)),
        ],
    };
    assert!(schedbox::validate::validate_stream(&stream).is_err(), "the validator knows `ghost` is missing");
    let exec = execute(m.as_mut(), &stream, &PayloadDefaults::new());
    // The IRQ label case: only the guest can know no IRQ carries it.
    let mut by_label = stream.clone();
    by_label.steps[1].ops = vec![Op::steer_irq(IrqSelector::ByLabel("no-such-device".into()), 0)];
    let irq = execute(m.as_mut(), &by_label, &PayloadDefaults::new());
    let irq_err = irq.results.steps[1].error.as_deref().unwrap_or_default();
    assert!(irq_err.starts_with("step 1, op 0 (steer-irq): ") && irq_err.contains("no-such-device"), "{irq_err}");
    let st: Vec<StepStatus> = exec.results.steps.iter().map(|s| s.status).collect();
    assert_eq!(st, [StepStatus::Passed, StepStatus::Failed, StepStatus::Skipped]);
    let err = exec.results.steps[1].error.as_deref().unwrap();
    assert!(err.starts_with("step 1, op 0 (freeze-cgroup): "), "{err}");
    assert!(err.contains("ghost"), "{err}");
    assert!(exec.leftovers.is_empty() && exec.error.is_none(), "{exec:?}");
    assert_clean(m.as_mut());
    // No worker survived: the agent and its worker parent (`sbx-zygote`, which forks
    // the workers) are the only user-space processes left (kernel threads share the
    // root cgroup; they have no command line).
    let root_procs = read(m.as_mut(), "/sys/fs/cgroup/cgroup.procs").unwrap();
    let mut user: Vec<String> = Vec::new();
    for pid in root_procs.lines() {
        if !read(m.as_mut(), &format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty()) {
            continue;
        }
        let comm = read(m.as_mut(), &format!("/proc/{pid}/comm")).unwrap_or_default();
        user.push(if pid == "1" { "agent".to_owned() } else { format!("{pid} {}", comm.trim()) });
    }
    let zygote = user.iter().filter(|u| u.ends_with(" sbx-zygote")).count();
    assert!(zygote <= 1, "more than one worker parent: {user:?}");
    let others: Vec<&String> = user.iter().filter(|u| *u != "agent" && !u.ends_with(" sbx-zygote")).collect();
    assert!(user.first().is_some_and(|u| u == "agent") && others.is_empty(), "user processes left: {user:?}");
    m.power_off().unwrap();
}

#[test]
fn a_payload_runs_with_its_args_and_its_exit_code_is_reported() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let bin = repo_root().join("target/x86_64-unknown-linux-musl/release/payload-exit");
    assert!(bin.is_file(), "build it with `cargo xtask build-scenarios`");
    // /bin/false is dynamically linked: its loader and libc are staged with it.
    let staged =
        vec![("/staging/payloads/exiter".into(), bin), ("/staging/payloads/false".into(), "/bin/false".into())];
    let mut m = boot("1n1l2c1t", staged);
    let m = m.as_mut();
    ask(m, RequestBody::BeginScenario { name: "payload".into() });
    ask(m, RequestBody::Setup { owner: Owner::Step, defs: vec![CgroupDef::named("p")] });
    apply(m, Op::run_payload("exiter", vec!["7".into(), "hello".into()], Some("p".into())));
    match apply(m, Op::wait_payload("exiter", None)) {
        ResponseBody::Applied(ap) => {
            let p = &ap.payloads[0];
            assert_eq!((p.name.as_str(), p.exit_code, p.cgroup.as_deref()), ("exiter", Some(7), Some("p")));
            assert!(p.stdout_tail.contains("payload-exit args: 7 hello"), "{p:?}");
            assert!(p.stderr_tail.contains("payload-exit on stderr"), "{p:?}");
        }
        other => panic!("{other:?}"),
    }
    apply(m, Op::run_payload("false", vec![], None));
    match apply(m, Op::wait_payload("false", None)) {
        ResponseBody::Applied(ap) => assert_eq!(ap.payloads[0].exit_code, Some(1), "{:?}", ap.payloads[0]),
        other => panic!("{other:?}"),
    }
    let err = m.request(RequestBody::Apply { owner: Owner::Step, op: Op::wait_payload("exiter", None) }).unwrap_err();
    assert!(err.to_string().contains("exiter"), "a consumed payload is named: {err}");
    ask(m, RequestBody::EndScenario);
}

#[test]
fn knobs_affinity_removal_and_kill_show_in_the_kernel() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let bin = repo_root().join("target/x86_64-unknown-linux-musl/release/payload-exit");
    // /bin/sleep is a payload that runs until killed (dynamic; its libraries come along).
    let staged =
        vec![("/staging/payloads/exiter".into(), bin), ("/staging/payloads/sleep".into(), "/bin/sleep".into())];
    let mut m = boot("1n2l2c1t", staged);
    let m = m.as_mut();
    ask(m, RequestBody::BeginScenario { name: "knobs".into() });
    // add-cgroup-def with knobs and workers-pct (50% of a 2-CPU cpuset = 1 worker).
    let mut def = CgroupDef::named("k").cpuset(CpusetSpec::llc(0)).work(WorkSpec::default().workers_pct(50.0));
    def.cpu_weight = Some(250);
    def.memory_max = Some(256 << 20);
    def.pids_max = Some(64);
    def.cpu_max = Some(CpuMax { quota_us: 50_000, period_us: 100_000 });
    apply(m, Op::add_cgroup_def(def));
    assert_eq!(cg(m, "k", "cpu.weight"), "250");
    assert_eq!(cg(m, "k", "memory.max"), (256u64 << 20).to_string());
    assert_eq!(cg(m, "k", "pids.max"), "64");
    assert_eq!(cg(m, "k", "cpu.max"), "50000 100000");
    let k = pids(m, "k");
    assert_eq!(k.len(), 1, "workers-pct 50 of 2 CPUs: {k:?}");
    // set-affinity single-cpu pins the worker to one CPU of its cpuset.
    apply(m, Op::set_affinity("k", AffinityIntent::SingleCpu));
    let status = read(m, &format!("/proc/{}/status", k[0])).unwrap();
    let allowed = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")).unwrap();
    assert!(allowed.ends_with("\t0") || allowed.ends_with("\t1"), "{allowed}");
    // kill-payload reaps a running payload and reports the signal.
    apply(m, Op::run_payload("sleep", vec!["600".into()], Some("k".into())));
    assert_eq!(pids(m, "k").len(), 2);
    match apply(m, Op::kill_payload("sleep", Some("k".into()))) {
        ResponseBody::Applied(ap) => assert_eq!(ap.payloads[0].signal, Some(9), "{:?}", ap.payloads[0]),
        other => panic!("{other:?}"),
    }
    // remove-cgroup stops the workers and removes the directory.
    apply(m, Op::remove_cgroup("k"));
    assert!(read(m, "/sys/fs/cgroup/schedbox/k/cgroup.procs").is_err(), "k removed");
    assert!(read(m, &format!("/proc/{}/status", k[0])).is_err(), "its worker is gone");
    ask(m, RequestBody::EndScenario);
    assert_clean(m);
}

/// The Go twins of the Rust examples (`example-scenarios/go/`, same op streams) run in a real
/// guest too, and their checks agree with what the kernel did. The user's compiled-component
/// cache spares compiling each Go runtime again (`golden_go` compiled them).
#[test]
fn go_examples_pass_their_checks_in_a_real_guest() {
    let _vm = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let sb = schedbox::sandbox::Sandbox::new(schedbox::sandbox::SandboxConfig::default()).unwrap();
    let mut m = boot("1n2l2c1t", vec![]);
    for name in ["cpuset-split", "freeze-resume", "kernel-reads"] {
        let loaded = sb.load_file(&example("go", name)).unwrap();
        let plan = sb.plan(&loaded).unwrap();
        let exec = execute(m.as_mut(), &plan.stream, &PayloadDefaults::new());
        assert_eq!(exec.error, None, "go {name}");
        assert!(
            exec.results.steps.iter().all(|s| s.status == StepStatus::Passed),
            "go {name}: {:?}",
            exec.results.steps
        );
        let verdict = sb.check(&loaded, name, exec.results.clone()).unwrap();
        assert_eq!(verdict.outcome, Outcome::Pass, "go {name}: {:?}", verdict.messages);
        assert_clean(m.as_mut());
    }
    m.power_off().unwrap();
}
