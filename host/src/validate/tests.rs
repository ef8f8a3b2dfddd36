//! One test per validation rule: each asserts where the error points (section,
//! op index, op kind) and that it says what to do.

use super::*;
use crate::op_model::*;

fn info() -> ScenarioInfo {
    ScenarioInfo {
        name: "t".into(),
        summary: "test".into(),
        topology: Topology { numa_nodes: 1, llcs_per_node: 2, cores_per_llc: 2, threads_per_core: 1 },
        kernel_features: vec![],
        payloads: vec!["stress".into()],
        schedulers: vec!["fixture".into()],
        duration_ms: 1000,
    }
}

fn stream(backdrop: Backdrop, steps: Vec<Step>) -> OpStream {
    OpStream { contract: CONTRACT_VERSION.into(), scenario: info(), backdrop, steps }
}

/// Validates one step holding `ops` (after a setup cgroup "a"), expecting a
/// rejection of op `index`; returns the error's text.
fn reject_at(ops: Vec<Op>, index: usize, kind: OpKind, needle: &str) -> String {
    let s = stream(Backdrop::new(), vec![Step::with_defs(vec![CgroupDef::named("a")], ops, HoldSpec::FULL)]);
    let e = validate_stream(&s).expect_err("must be rejected");
    assert_eq!(e.section, Some(Section::Step(0)), "{e}");
    assert_eq!(e.op_index, Some(index), "{e}");
    assert_eq!(e.op, Some(kind), "{e}");
    let text = e.to_string();
    assert!(text.contains(needle), "{text:?} lacks {needle:?}");
    assert!(text.contains(&format!("step 0, op {index} ({})", kind.wit_name())), "{text}");
    assert!(text.contains("fix: ") && !e.fix.is_empty(), "{text}");
    text
}

#[test]
fn valid_stream_passes() {
    let backdrop = Backdrop::new()
        .push_cgroup(CgroupDef::named("bg").workers(2))
        .push_op(Op::set_cpuset("bg", CpusetSpec::llc(1)));
    let steps = vec![
        Step::with_defs(
            vec![CgroupDef::named("a").cpuset(CpusetSpec::disjoint(0, 2))],
            vec![
                Op::spawn(SpawnPlacement::cgroup("a"), WorkSpec::default().workers_pct(50.0)),
                Op::move_all_tasks("a", "bg"),
                Op::run_payload("stress", vec![], Some("a".into())),
                Op::wait_payload("stress", None),
                Op::capture_cgroup_procs("after", "bg"),
                Op::attach_scheduler("fixture"),
            ],
            HoldSpec::frac(0.5),
        ),
        Step::new(vec![Op::add_cgroup("a"), Op::freeze_cgroup("bg")], HoldSpec::fixed_ms(10)),
    ];
    validate_stream(&stream(backdrop, steps)).unwrap();
}

#[test]
fn self_move_rejected() {
    let t = reject_at(vec![Op::move_all_tasks("a", "a")], 0, OpKind::MoveAllTasks, "onto itself");
    assert!(t.contains("name two different cgroups"));
}

#[test]
fn empty_pair_move_rejected() {
    reject_at(vec![Op::move_all_tasks("", "")], 0, OpKind::MoveAllTasks, "onto itself");
}

#[test]
fn empty_names_and_tags_rejected() {
    reject_at(vec![Op::add_cgroup("")], 0, OpKind::AddCgroup, "cgroup name is empty");
    reject_at(vec![Op::capture_cgroup_procs("", "a")], 0, OpKind::CaptureCgroupProcs, "capture tag is empty");
    reject_at(
        vec![Op::read_kernel_cold("", KernelTarget::symbol("jiffies_64"), KernelValueWidth::U64)],
        0,
        OpKind::ReadKernelCold,
        "read tag is empty",
    );
    reject_at(vec![Op::capture_snapshot("")], 0, OpKind::CaptureSnapshot, "snapshot name is empty");
}

#[test]
fn nan_and_out_of_range_fractions_rejected() {
    reject_at(vec![Op::set_cpuset("a", CpusetSpec::range(f64::NAN, 0.5))], 0, OpKind::SetCpuset, "range start NaN");
    reject_at(vec![Op::set_cpuset("a", CpusetSpec::range(0.5, 1.5))], 0, OpKind::SetCpuset, "range end 1.5");
    reject_at(vec![Op::set_cpuset("a", CpusetSpec::range(0.6, 0.2))], 0, OpKind::SetCpuset, "not below end");
    reject_at(vec![Op::set_cpuset("a", CpusetSpec::overlap(0, 2, -0.1))], 0, OpKind::SetCpuset, "overlap frac");
    reject_at(
        vec![Op::spawn(SpawnPlacement::cgroup("a"), WorkSpec::default().workers_pct(f64::NAN))],
        0,
        OpKind::Spawn,
        "workers_pct NaN",
    );
    let s = stream(Backdrop::new(), vec![Step::new(vec![], HoldSpec::frac(f64::NAN))]);
    let e = validate_stream(&s).unwrap_err();
    assert!(e.to_string().contains("hold: hold frac NaN"), "{e}");
    assert_eq!(e.op_index, None);
}

#[test]
fn disjoint_and_overlap_index_rejected() {
    let t = reject_at(
        vec![Op::set_cpuset("a", CpusetSpec::disjoint(2, 2))],
        0,
        OpKind::SetCpuset,
        "disjoint index 2 is not below of=2",
    );
    assert!(t.contains("use an index in 0..2"));
    reject_at(vec![Op::set_cpuset("a", CpusetSpec::overlap(3, 3, 0.1))], 0, OpKind::SetCpuset, "overlap index 3");
    reject_at(vec![Op::set_cpuset("a", CpusetSpec::disjoint(0, 0))], 0, OpKind::SetCpuset, "of=0");
}

#[test]
fn cpus_outside_declared_topology_rejected() {
    reject_at(vec![Op::set_cpuset("a", CpusetSpec::llc(2))], 0, OpKind::SetCpuset, "llc index 2 does not exist");
    reject_at(vec![Op::set_cpuset("a", CpusetSpec::exact([0, 4]))], 0, OpKind::SetCpuset, "names CPU 4");
    reject_at(vec![Op::steer_irq(IrqSelector::ByNumber(4), 9)], 0, OpKind::SteerIrq, "steer-irq to CPU 9");
}

#[test]
fn fourth_watch_rejected() {
    let ops = (0..4).map(|i| Op::watch_snapshot(format!("sym{i}"))).collect();
    let t = reject_at(ops, 3, OpKind::WatchSnapshot, "more than 3 watch-snapshot ops");
    assert!(t.contains("capture-snapshot"));
}

#[test]
fn watch_cap_counts_across_steps() {
    let step = |n: usize| Step::new((0..n).map(|i| Op::watch_snapshot(format!("s{i}"))).collect(), HoldSpec::FULL);
    let e = validate_stream(&stream(Backdrop::new(), vec![step(2), step(2)])).unwrap_err();
    assert_eq!((e.section, e.op_index), (Some(Section::Step(1)), Some(1)));
}

#[test]
fn misaligned_and_wrong_width_targets_rejected() {
    let w = |t, v| KernelWrite { target: t, value: v };
    let t = reject_at(
        vec![Op::write_kernel_hot(vec![w(KernelTarget::direct(0xffff_8880_0000_0002), KernelValue::U32(1))])],
        0,
        OpKind::WriteKernelHot,
        "0xffff888000000002 is not 4-byte aligned",
    );
    assert!(t.contains("cold variant"));
    reject_at(
        vec![Op::write_kernel_hot(vec![w(KernelTarget::symbol("x"), KernelValue::OrU32(1))])],
        0,
        OpKind::WriteKernelHot,
        "or-u32",
    );
    reject_at(
        vec![Op::read_kernel_hot("t", KernelTarget::kva(0xffff_c900_0000_0004), KernelValueWidth::U64)],
        0,
        OpKind::ReadKernelHot,
        "not 8-byte aligned",
    );
    reject_at(
        vec![Op::read_kernel_cold("t", KernelTarget::symbol("jiffies_64"), KernelValueWidth::Bytes(0))],
        0,
        OpKind::ReadKernelCold,
        "read width of 0 bytes",
    );
    reject_at(
        vec![Op::write_kernel_cold(vec![w(KernelTarget::direct(0x1000), KernelValue::U64(1))])],
        0,
        OpKind::WriteKernelCold,
        "not a kernel (upper-half) virtual address",
    );
    reject_at(
        vec![Op::read_kernel_cold("t", KernelTarget::per_cpu_field("init_task", "pid", 0), KernelValueWidth::U32)],
        0,
        OpKind::ReadKernelCold,
        "per-cpu symbol \"init_task\" is not supported",
    );
    // Cold misaligned writes are allowed: they land under the freeze.
    let ok = stream(
        Backdrop::new(),
        vec![Step::new(
            vec![Op::write_kernel_cold(vec![w(KernelTarget::direct(0xffff_8880_0000_0002), KernelValue::U32(1))])],
            HoldSpec::FULL,
        )],
    );
    validate_stream(&ok).unwrap();
}

#[test]
fn workers_pct_with_runner_cgroup_rejected() {
    let t = reject_at(
        vec![Op::spawn(SpawnPlacement::runner_cgroup(), WorkSpec::default().workers_pct(50.0))],
        0,
        OpKind::Spawn,
        "workers-pct with runner-cgroup placement",
    );
    assert!(t.contains("explicit worker count"));
}

#[test]
fn undeclared_payload_and_scheduler_rejected() {
    let t =
        reject_at(vec![Op::run_payload("fio", vec![], None)], 0, OpKind::RunPayload, "payload \"fio\" is not declared");
    assert!(t.contains("--payload fio=PATH"));
    reject_at(
        vec![Op::attach_scheduler("scx_rusty")],
        0,
        OpKind::AttachScheduler,
        "scheduler \"scx_rusty\" is not declared",
    );
    reject_at(vec![Op::replace_scheduler("other")], 0, OpKind::ReplaceScheduler, "not declared");
}

#[test]
fn ops_on_cgroups_never_created_rejected() {
    let t = reject_at(vec![Op::freeze_cgroup("ghost")], 0, OpKind::FreezeCgroup, "cgroup \"ghost\" does not exist");
    assert!(t.contains("live cgroups: a"));
    reject_at(
        vec![Op::add_cgroup("b"), Op::set_cpuset("c", CpusetSpec::llc(0))],
        1,
        OpKind::SetCpuset,
        "\"c\" does not exist",
    );
    reject_at(
        vec![Op::spawn(SpawnPlacement::cgroup("x"), WorkSpec::default())],
        0,
        OpKind::Spawn,
        "\"x\" does not exist",
    );
    reject_at(vec![Op::remove_cgroup("a"), Op::stop_cgroup("a")], 1, OpKind::StopCgroup, "\"a\" does not exist");
}

#[test]
fn step_local_cgroups_die_at_teardown() {
    let steps = vec![
        Step::with_defs(vec![CgroupDef::named("a")], vec![], HoldSpec::FULL),
        Step::new(vec![Op::freeze_cgroup("a")], HoldSpec::FULL),
    ];
    let e = validate_stream(&stream(Backdrop::new(), steps)).unwrap_err();
    assert_eq!((e.section, e.op_index), (Some(Section::Step(1)), Some(0)));
}

#[test]
fn backdrop_to_step_move_rejected() {
    let backdrop = Backdrop::new().push_cgroup(CgroupDef::named("bg"));
    let steps = vec![Step::with_defs(vec![CgroupDef::named("a")], vec![Op::move_all_tasks("bg", "a")], HoldSpec::FULL)];
    let e = validate_stream(&stream(backdrop, steps)).unwrap_err();
    let t = e.to_string();
    assert_eq!(e.op_index, Some(0));
    assert!(t.contains("moves Backdrop tasks into a step-local cgroup"), "{t}");
    assert!(t.contains("declare \"a\" in the Backdrop too"), "{t}");
}

#[test]
fn backdrop_setup_is_exempt_from_the_backdrop_to_step_rule() {
    let backdrop = Backdrop::new()
        .push_cgroup(CgroupDef::named("bg"))
        .push_op(Op::add_cgroup("bg2"))
        .push_op(Op::move_all_tasks("bg", "bg2"));
    validate_stream(&stream(backdrop, vec![Step::new(vec![], HoldSpec::FULL)])).unwrap();
}

#[test]
fn duplicate_cgroup_names_rejected() {
    let backdrop = Backdrop::new().push_cgroup(CgroupDef::named("bg"));
    let steps = vec![Step::with_defs(vec![CgroupDef::named("bg")], vec![], HoldSpec::FULL)];
    let e = validate_stream(&stream(backdrop, steps)).unwrap_err();
    assert!(e.to_string().contains("already exists (owned by the Backdrop)"), "{e}");
    reject_at(vec![Op::add_cgroup_def(CgroupDef::named("a"))], 0, OpKind::AddCgroupDef, "already exists");
}

#[test]
fn payload_lookup_rules() {
    reject_at(vec![Op::wait_payload("stress", None)], 0, OpKind::WaitPayload, "never started, or already waited");
    let t = reject_at(
        vec![
            Op::add_cgroup("b"),
            Op::run_payload("stress", vec![], Some("a".into())),
            Op::run_payload("stress", vec![], Some("b".into())),
            Op::kill_payload("stress", None),
        ],
        3,
        OpKind::KillPayload,
        "ambiguous",
    );
    assert!(t.contains("name the cgroup"));
    reject_at(
        vec![
            Op::run_payload("stress", vec![], None),
            Op::wait_payload("stress", None),
            Op::wait_payload("stress", None),
        ],
        2,
        OpKind::WaitPayload,
        "already waited for or killed",
    );
}

#[test]
fn structure_errors_located() {
    let mut v = Validator::new(&info()).unwrap();
    let e = v.op(&Op::add_cgroup("x")).unwrap_err();
    assert!(e.to_string().contains("outside any step"), "{e}");
    v.open_step(&[]).unwrap();
    let e = v.open_step(&[]).unwrap_err();
    assert!(e.to_string().contains("step 0 is still open"), "{e}");
    let e = v.open_backdrop(&[]).unwrap_err();
    assert!(e.to_string().contains("before the first step"), "{e}");
    let e = Validator::new(&info()).unwrap().finish().unwrap_err();
    assert!(e.to_string().contains("no steps"), "{e}");
}

#[test]
fn bad_describe_rejected() {
    let mut i = info();
    i.topology.cores_per_llc = 0;
    let e = Validator::new(&i).unwrap_err();
    assert!(e.to_string().starts_with("scenario \"t\", describe: topology 1n2l0c1t"), "{e}");
    let mut i = info();
    i.duration_ms = 0;
    assert!(Validator::new(&i).is_err());
}

#[test]
fn cgroup_def_knobs_checked() {
    let mut def = CgroupDef::named("k");
    def.cpu_weight = Some(0);
    let s = stream(Backdrop::new(), vec![Step::with_defs(vec![def], vec![], HoldSpec::FULL)]);
    let e = validate_stream(&s).unwrap_err();
    assert!(e.to_string().contains("setup cgroup: cgroup \"k\": cpu-weight 0 is outside 1..=10000"), "{e}");
    reject_at(vec![Op::add_cgroup("a/b")], 0, OpKind::AddCgroup, "not a single path component");
    reject_at(
        vec![Op::spawn(SpawnPlacement::cgroup("a"), WorkSpec::default().comm("a-very-long-comm-name"))],
        0,
        OpKind::Spawn,
        "the kernel keeps 15",
    );
    reject_at(vec![Op::pin_bpf_map("scx_fifo_sched.bss")], 0, OpKind::PinBpfMap, "the kernel keeps 15");
}

#[test]
fn json_round_trip_preserves_the_stream() {
    let s = stream(
        Backdrop::new().push_cgroup(CgroupDef::named("bg").workers(1)),
        vec![Step::new(
            vec![
                Op::write_kernel_cold(vec![KernelWrite {
                    target: KernelTarget::symbol("jiffies_64"),
                    value: KernelValue::OrU32(2),
                }]),
                Op::detach_scheduler(),
                Op::steer_irq(IrqSelector::ByLabel("virtio1".into()), 1),
            ],
            HoldSpec::loop_ms(5),
        )],
    );
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains(r#""op":"write-kernel-cold""#), "{json}");
    let back: OpStream = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
}

#[test]
fn a_freeze_lasts_across_steps_until_unfreeze() {
    let backdrop = Backdrop::new().push_cgroup(CgroupDef::named("bg").workers(1));
    let spawn = || Op::spawn(SpawnPlacement::cgroup("bg"), WorkSpec::default().workers(1));
    // Freeze in step 0, unfreeze in step 1 (the reference's suspend/resume), then spawn: valid.
    let ok = vec![
        Step::new(vec![Op::freeze_cgroup("bg")], HoldSpec::FULL),
        Step::new(vec![Op::unfreeze_cgroup("bg"), spawn()], HoldSpec::FULL),
    ];
    validate_stream(&stream(backdrop.clone(), ok)).unwrap();
    // Still frozen in step 1: starting a task there is refused at that op.
    let frozen = vec![
        Step::new(vec![Op::freeze_cgroup("bg")], HoldSpec::FULL),
        Step::new(vec![Op::add_cgroup("x"), spawn()], HoldSpec::FULL),
    ];
    let e = validate_stream(&stream(backdrop.clone(), frozen)).unwrap_err();
    assert_eq!((e.section, e.op_index, e.op), (Some(Section::Step(1)), Some(1), Some(OpKind::Spawn)));
    let t = e.to_string();
    assert!(t.contains("\"bg\" is frozen") && t.contains("unfreeze-cgroup \"bg\""), "{t}");
    let payload = vec![
        Step::new(vec![Op::freeze_cgroup("bg")], HoldSpec::FULL),
        Step::new(vec![Op::run_payload("stress", vec![], Some("bg".into()))], HoldSpec::FULL),
    ];
    let e = validate_stream(&stream(backdrop, payload)).unwrap_err();
    assert_eq!((e.section, e.op_index, e.op), (Some(Section::Step(1)), Some(0), Some(OpKind::RunPayload)));
    // A removed cgroup's freeze ends with it: a new cgroup of the same name is not frozen.
    reject_at(vec![Op::freeze_cgroup("a"), spawn_in("a")], 1, OpKind::Spawn, "is frozen");
    let s = stream(
        Backdrop::new(),
        vec![Step::new(
            vec![
                Op::add_cgroup("c"),
                Op::freeze_cgroup("c"),
                Op::remove_cgroup("c"),
                Op::add_cgroup("c"),
                spawn_in("c"),
            ],
            HoldSpec::FULL,
        )],
    );
    validate_stream(&s).unwrap();
}

fn spawn_in(cg: &str) -> Op {
    Op::spawn(SpawnPlacement::cgroup(cg), WorkSpec::default().workers(1))
}

/// One valid spec of every workload family beyond the basic loops (the VM tests run them).
pub(crate) fn every_new_work_type() -> Vec<WorkType> {
    vec![
        WorkType::AluHot,
        WorkType::SmtSiblingSpin,
        WorkType::IpcVariance { phase_ms: 5, size_kib: 512 },
        WorkType::FanOutCompute { fan_out: 2, compute_iters: 1000 },
        WorkType::AsymmetricWaker { waker_iters: 100, wakee_iters: 10_000 },
        WorkType::EpollStorm { waiters: 2 },
        WorkType::ThunderingHerd { waiters: 3, work_iters: 1000 },
        WorkType::TimerLatency { period_us: 1000 },
        WorkType::WakeChain { depth: 3, pipe: true, work_iters: 500 },
        WorkType::Schbench { workers: 2, request_us: 200, sleep_us: 1000 },
        WorkType::NiceSweep { period_us: 500 },
        WorkType::AffinityChurn { period_us: 500 },
        WorkType::CrossAffinityChurn { period_us: 500 },
        WorkType::PolicyChurn { period_us: 500 },
        WorkType::CgroupChurn { period_us: 500 },
        WorkType::CgroupAttachStorm { period_us: 500 },
        WorkType::MutexContention { contenders: 3, hold_iters: 100, work_iters: 100 },
        WorkType::PriorityInversion { pi: true, hold_iters: 10_000 },
        WorkType::PriorityInversion { pi: false, hold_iters: 10_000 },
        WorkType::RtStarvation,
        WorkType::PreemptStorm { period_us: 2000, burst_iters: 1000 },
        WorkType::SignalStorm,
        WorkType::ProducerConsumerImbalance { producers: 1, consumers: 2, work_iters: 100 },
        WorkType::PageFaultChurn { size_kib: 256 },
        WorkType::IoSyncWrite { block_kib: 4 },
        WorkType::IoRandRead { block_kib: 64 },
        WorkType::IoConvoy { readers: 3, write_kib: 256 },
        WorkType::IdleChurn { spin_iters: 100, sleep_us: 50 },
        WorkType::CacheYield { size_kib: 256 },
        WorkType::CachePipe { size_kib: 256 },
    ]
}

#[test]
fn new_work_types_validate_and_their_bounds_are_checked() {
    for work in every_new_work_type() {
        let spec = WorkSpec::default().work(work.clone()).workers(work.group_size());
        let s = stream(
            Backdrop::new(),
            vec![Step::with_defs(
                vec![CgroupDef::named("a")],
                vec![Op::spawn(SpawnPlacement::cgroup("a"), spec)],
                HoldSpec::FULL,
            )],
        );
        validate_stream(&s).unwrap_or_else(|e| panic!("{work:?}: {e}"));
    }
    let spawn = |w: WorkType| vec![Op::spawn(SpawnPlacement::cgroup("a"), WorkSpec::default().work(w))];
    reject_at(spawn(WorkType::TimerLatency { period_us: 0 }), 0, OpKind::Spawn, "timer-latency period_us 0 us");
    reject_at(
        spawn(WorkType::EpollStorm { waiters: 0 }),
        0,
        OpKind::Spawn,
        "epoll-storm waiters 0 is outside 1..=1023",
    );
    reject_at(
        spawn(WorkType::Schbench { workers: 2000, request_us: 1, sleep_us: 1 }),
        0,
        OpKind::Spawn,
        "schbench workers",
    );
    reject_at(
        spawn(WorkType::MutexContention { contenders: 0, hold_iters: 1, work_iters: 1 }),
        0,
        OpKind::Spawn,
        "mutex-contention contenders 0",
    );
    reject_at(spawn(WorkType::PageFaultChurn { size_kib: 0 }), 0, OpKind::Spawn, "page-fault-churn size_kib 0 KiB");
    let t = reject_at(
        vec![Op::spawn(
            SpawnPlacement::cgroup("a"),
            WorkSpec::default().work(WorkType::Schbench { workers: 3, request_us: 1, sleep_us: 1 }).workers(6),
        )],
        0,
        OpKind::Spawn,
        "schbench runs in groups of 4 workers; 6 is not a multiple of 4",
    );
    assert!(t.contains("spawn a multiple of 4 workers"), "{t}");
    reject_at(
        vec![Op::spawn(
            SpawnPlacement::runner_cgroup(),
            WorkSpec::default().work(WorkType::CgroupChurn { period_us: 100 }),
        )],
        0,
        OpKind::Spawn,
        "make child cgroups of their own",
    );
    reject_at(
        spawn(WorkType::IpcVariance { phase_ms: 0, size_kib: 1 }),
        0,
        OpKind::Spawn,
        "ipc-variance phase_ms is 0",
    );
    let t = reject_at(
        vec![Op::spawn(
            SpawnPlacement::cgroup("a"),
            WorkSpec::default().work(WorkType::RtStarvation).policy(SchedPolicy::Batch),
        )],
        0,
        OpKind::Spawn,
        "rt-starvation sets its workers' policies itself",
    );
    assert!(t.contains("leave the policy normal"), "{t}");
}

#[test]
fn deadline_policy_parameters_and_pinning_checked() {
    let dl = |r, d, p| SchedPolicy::Deadline { runtime_us: r, deadline_us: d, period_us: p };
    let spawn = |spec: WorkSpec| vec![Op::spawn(SpawnPlacement::cgroup("a"), spec)];
    let ok = stream(
        Backdrop::new(),
        vec![Step::with_defs(
            vec![CgroupDef::named("a")],
            spawn(WorkSpec::default().policy(dl(2000, 10_000, 10_000))),
            HoldSpec::FULL,
        )],
    );
    validate_stream(&ok).unwrap();
    for (r, d, p) in [
        (0, 10, 100),
        (1, 10, 100),
        (2000, 1000, 10_000),
        (2000, 20_000, 10_000),
        (20, 50, 50),
        (1000, 1000, 5_000_000),
    ] {
        reject_at(spawn(WorkSpec::default().policy(dl(r, d, p))), 0, OpKind::Spawn, "is invalid");
    }
    let t = reject_at(
        spawn(WorkSpec::default().policy(dl(2000, 10_000, 10_000)).affinity(AffinityIntent::SingleCpu)),
        0,
        OpKind::Spawn,
        "a SCHED_DEADLINE worker cannot be pinned",
    );
    assert!(t.contains("affinity inherit"), "{t}");
    reject_at(
        spawn(WorkSpec::default().policy(dl(2000, 10_000, 10_000)).work(WorkType::AffinityChurn { period_us: 100 })),
        0,
        OpKind::Spawn,
        "cannot be pinned",
    );
    reject_at(
        spawn(WorkSpec::default().policy(dl(2000, 10_000, 10_000)).work(WorkType::ForkExit)),
        0,
        OpKind::Spawn,
        "cannot fork",
    );
}

#[test]
fn new_work_types_keep_their_json_shape() {
    // The op stream's JSON: kebab-case variant names, snake_case fields; a wake chain
    // written before pipe mode still reads (and writes back the same).
    let old: WorkType = serde_json::from_str(r#"{"wake-chain":{"depth":3}}"#).unwrap();
    assert_eq!(old, WorkType::WakeChain { depth: 3, pipe: false, work_iters: 0 });
    assert_eq!(serde_json::to_string(&old).unwrap(), r#"{"wake-chain":{"depth":3}}"#);
    assert_eq!(
        serde_json::to_string(&WorkType::TimerLatency { period_us: 500 }).unwrap(),
        r#"{"timer-latency":{"period_us":500}}"#
    );
    assert_eq!(serde_json::to_string(&WorkType::AluHot).unwrap(), r#""alu-hot""#);
    let dl: SchedPolicy =
        serde_json::from_str(r#"{"deadline":{"runtime_us":1,"deadline_us":2,"period_us":3}}"#).unwrap();
    assert_eq!(dl, SchedPolicy::Deadline { runtime_us: 1, deadline_us: 2, period_us: 3 });
    for w in every_new_work_type() {
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(serde_json::from_str::<WorkType>(&json).unwrap(), w, "{json}");
    }
}

#[test]
fn steer_irq_cpus_takes_cpus_of_the_declared_topology() {
    let ok = stream(
        Backdrop::new(),
        vec![Step::new(vec![Op::steer_irq_cpus(IrqSelector::ByNumber(4), [0, 1, 2, 3])], HoldSpec::FULL)],
    );
    validate_stream(&ok).unwrap();
    let t = reject_at(
        vec![Op::steer_irq_cpus(IrqSelector::ByNumber(4), [1, 9])],
        0,
        OpKind::SteerIrqCpus,
        "CPU 9, but the scenario declares 4 vCPUs",
    );
    assert!(t.contains("steer to CPUs in 0..4"), "{t}");
    reject_at(vec![Op::steer_irq_cpus(IrqSelector::ByNumber(4), [])], 0, OpKind::SteerIrqCpus, "no CPU");
}

#[test]
fn a_spawn_above_the_per_spawn_limit_is_rejected_naming_it() {
    let max = crate::op_model::MAX_WORKERS_PER_SPAWN;
    let at_max = Op::spawn(SpawnPlacement::cgroup("a"), WorkSpec::default().workers(max));
    let s = stream(Backdrop::new(), vec![Step::with_defs(vec![CgroupDef::named("a")], vec![at_max], HoldSpec::FULL)]);
    validate_stream(&s).expect("the limit itself is allowed");
    let t = reject_at(
        vec![Op::spawn(SpawnPlacement::cgroup("a"), WorkSpec::default().workers(max + 1))],
        0,
        OpKind::Spawn,
        &format!("worker count {} exceeds the limit of {max} workers per spawn", max + 1),
    );
    assert!(t.contains(&format!("spawn at most {max} workers")), "{t}");
}

#[test]
fn numa_work_types_need_two_nodes_and_bounded_parameters() {
    let numa = [
        WorkType::NumaMigrationChurn { period_ms: 20, size_kib: 256 },
        WorkType::NumaWorkingSetSweep { size_kib: 1024, passes: 4 },
    ];
    for work in &numa {
        // The test topology (1n2l2c1t) has one node: refused, naming the fix.
        let t = reject_at(
            vec![Op::spawn(SpawnPlacement::cgroup("a"), WorkSpec::default().work(work.clone()))],
            0,
            OpKind::Spawn,
            "needs 2 or more NUMA nodes; the topology has 1",
        );
        assert!(t.contains("e.g. 2n1l2c1t"), "{t}");
        // On two nodes it validates.
        let mut s = stream(
            Backdrop::new(),
            vec![Step::with_defs(
                vec![CgroupDef::named("a")],
                vec![Op::spawn(SpawnPlacement::cgroup("a"), WorkSpec::default().work(work.clone()))],
                HoldSpec::FULL,
            )],
        );
        s.scenario.topology.numa_nodes = 2;
        validate_stream(&s).unwrap_or_else(|e| panic!("{work:?}: {e}"));
        let json = serde_json::to_string(work).unwrap();
        assert_eq!(serde_json::from_str::<WorkType>(&json).unwrap(), *work, "{json}");
    }
    assert_eq!(serde_json::to_string(&numa[1]).unwrap(), r#"{"numa-working-set-sweep":{"size_kib":1024,"passes":4}}"#);
    let two_nodes = |work: WorkType| {
        let mut s = stream(
            Backdrop::new(),
            vec![Step::with_defs(
                vec![CgroupDef::named("a")],
                vec![Op::spawn(SpawnPlacement::cgroup("a"), WorkSpec::default().work(work))],
                HoldSpec::FULL,
            )],
        );
        s.scenario.topology.numa_nodes = 2;
        validate_stream(&s).expect_err("must be rejected").to_string()
    };
    let t = two_nodes(WorkType::NumaMigrationChurn { period_ms: 0, size_kib: 256 });
    assert!(t.contains("numa-migration-churn period_ms 0 is outside 1..=10000"), "{t}");
    let t = two_nodes(WorkType::NumaMigrationChurn { period_ms: 10, size_kib: 0 });
    assert!(t.contains("numa-migration-churn size_kib 0 KiB"), "{t}");
    let t = two_nodes(WorkType::NumaWorkingSetSweep { size_kib: 64, passes: 0 });
    assert!(t.contains("numa-working-set-sweep passes is 0"), "{t}");
}

#[test]
fn block_io_sizes_are_whole_4_kib_blocks_up_to_1_mib() {
    let refused = |work: WorkType| {
        let n = work.group_size();
        reject_at(
            vec![Op::spawn(SpawnPlacement::cgroup("a"), WorkSpec::default().work(work).workers(n))],
            0,
            OpKind::Spawn,
            "",
        )
    };
    for (work, says) in [
        (WorkType::IoSyncWrite { block_kib: 0 }, "io-sync-write block_kib 0 KiB is not a multiple of 4 in 4..=1024"),
        (WorkType::IoRandRead { block_kib: 6 }, "io-rand-read block_kib 6 KiB is not a multiple of 4"),
        (WorkType::IoRandRead { block_kib: 2048 }, "io-rand-read block_kib 2048 KiB"),
        (WorkType::IoConvoy { readers: 1, write_kib: 1028 }, "io-convoy write_kib 1028 KiB"),
        (WorkType::IoConvoy { readers: 0, write_kib: 64 }, "io-convoy readers 0 is outside 1..=255"),
    ] {
        let t = refused(work);
        assert!(t.contains(says), "{t}");
    }
    // A convoy is one writer and its readers: a count that is not whole groups is refused.
    let t = reject_at(
        vec![Op::spawn(
            SpawnPlacement::cgroup("a"),
            WorkSpec::default().work(WorkType::IoConvoy { readers: 3, write_kib: 64 }).workers(6),
        )],
        0,
        OpKind::Spawn,
        "runs in groups of 4 workers; 6 is not a multiple of 4",
    );
    assert!(t.contains("e.g. 4"), "{t}");
    assert_eq!(
        serde_json::to_string(&WorkType::IoConvoy { readers: 3, write_kib: 64 }).unwrap(),
        r#"{"io-convoy":{"readers":3,"write_kib":64}}"#
    );
    assert!(WorkType::IoRandRead { block_kib: 4 }.is_block_io());
    assert!(!WorkType::PageFaultChurn { size_kib: 4 }.is_block_io());
}

#[test]
fn thread_workers_refuse_work_types_that_act_on_their_own_process() {
    let threads = |work: WorkType| WorkSpec::default().work(work).mode(WorkerMode::Thread);
    for work in [
        WorkType::PipeIo { burst_iters: 4 },
        WorkType::CgroupChurn { period_us: 500 },
        WorkType::CgroupAttachStorm { period_us: 500 },
    ] {
        let n = work.group_size();
        let t = reject_at(
            vec![Op::spawn(SpawnPlacement::cgroup("a"), threads(work).workers(n))],
            0,
            OpKind::Spawn,
            "acts on its own process, so its workers cannot be threads",
        );
        assert!(t.contains("spawn these workers as processes (spawn-work)"), "{t}");
    }
    for work in every_new_work_type().into_iter().filter(|w| !w.needs_own_process()) {
        let n = work.group_size();
        let s = stream(
            Backdrop::new(),
            vec![Step::with_defs(
                vec![CgroupDef::named("a")],
                vec![Op::spawn(SpawnPlacement::cgroup("a"), threads(work.clone()).workers(n))],
                HoldSpec::FULL,
            )],
        );
        validate_stream(&s).unwrap_or_else(|e| panic!("{work:?} as threads: {e}"));
    }
    // In a stream: `"mode":"thread"`, absent for processes (streams written before it read).
    let json = serde_json::to_string(&threads(WorkType::SpinWait)).unwrap();
    assert!(json.ends_with(r#","mode":"thread"}"#), "{json}");
    assert!(!serde_json::to_string(&WorkSpec::default()).unwrap().contains("mode"));
}

#[test]
fn holds_over_the_one_hour_ceiling_are_rejected_at_their_step() {
    let at = |hold: HoldSpec, duration_ms: u64| {
        let mut s = stream(Backdrop::new(), vec![Step::new(vec![], HoldSpec::fixed_ms(10)), Step::new(vec![], hold)]);
        s.scenario.duration_ms = duration_ms;
        validate_stream(&s)
    };
    validate_stream(&stream(Backdrop::new(), vec![Step::new(vec![], HoldSpec::fixed_ms(MAX_HOLD_MS))])).unwrap();
    for (hold, duration, said) in [
        (HoldSpec::fixed_ms(u64::MAX), 1000, "a fixed hold holds 18446744073709551615 ms"),
        (HoldSpec::fixed_ms(MAX_HOLD_MS + 1), 1000, "a fixed hold holds 3600001 ms"),
        (HoldSpec::frac(1.0), 7_200_000, "frac 1 of the 7200000 ms duration holds 7200000 ms"),
        (HoldSpec::loop_ms(10), 7_200_000, "a loop, which runs for the whole duration, holds 7200000 ms"),
        (HoldSpec::loop_ms(MAX_HOLD_MS + 1), 1000, "loop interval 3600001 ms is above"),
    ] {
        let e = at(hold.clone(), duration).expect_err("over the ceiling");
        assert_eq!(e.section, Some(Section::Step(1)), "{e}");
        assert_eq!(e.op_index, None);
        let text = e.to_string();
        assert!(text.starts_with("scenario \"t\", step 1: hold: "), "{text}");
        assert!(text.contains(said), "{hold:?}: {text}");
        assert!(text.contains("fix: ") && text.contains("at most 3600000 ms"), "{text}");
    }
    // Within the ceiling: half of a 2 h scenario.
    at(HoldSpec::frac(0.5), 7_200_000).unwrap();
}

#[test]
fn cgroup_names_of_controller_interface_files_are_rejected() {
    for (i, (bad, prefix)) in [
        ("cpu.max", "cpu"),
        ("cgroup.procs", "cgroup"),
        ("memory.high", "memory"),
        ("cpuset.cpus", "cpuset"),
        ("io.weight", "io"),
        ("pids.max", "pids"),
        ("hugetlb.2MB.max", "hugetlb"),
        ("irq.pressure", "irq"),
    ]
    .into_iter()
    .enumerate()
    {
        let text = reject_at(vec![Op::add_cgroup(bad)], 0, OpKind::AddCgroup, &format!("{prefix}.* interface files"));
        assert!(text.contains(&format!("does not start with \"{prefix}.\"")), "{i}: {text}");
    }
    // A setup cgroup is checked too, and names that merely share a prefix pass.
    let s =
        stream(Backdrop::new(), vec![Step::with_defs(vec![CgroupDef::named("memory.low")], vec![], HoldSpec::FULL)]);
    let e = validate_stream(&s).expect_err("setup cgroup memory.low");
    assert!(e.to_string().contains("setup cgroup: cgroup name \"memory.low\""), "{e}");
    let ok =
        Step::new(vec![Op::add_cgroup("cpu"), Op::add_cgroup("cpux.y"), Op::add_cgroup("memory-hog")], HoldSpec::FULL);
    validate_stream(&stream(Backdrop::new(), vec![ok])).unwrap();
}

#[test]
fn payload_and_scheduler_names_with_a_slash_are_rejected_everywhere_with_one_message() {
    let fix = |flag: &str| format!("use a name without '/' (and not \".\" or \"..\"), the NAME of {flag} NAME=PATH");
    for (op, kind, what, flag) in [
        (Op::run_payload("bin/stress", vec![], None), OpKind::RunPayload, "payload name", "--payload"),
        (Op::wait_payload("../stress", None), OpKind::WaitPayload, "payload name", "--payload"),
        (Op::attach_scheduler("/usr/bin/scx"), OpKind::AttachScheduler, "scheduler name", "--scheduler"),
        (Op::replace_scheduler(".."), OpKind::ReplaceScheduler, "scheduler name", "--scheduler"),
    ] {
        let text = reject_at(vec![op], 0, kind, &format!("{what} "));
        assert!(text.contains("is not a plain name: it names the file staged into the guest"), "{text}");
        assert!(text.ends_with(&fix(flag)), "{text}");
    }
    for (payloads, schedulers, what) in
        [(vec!["a/b".to_string()], vec![], "payload name"), (vec![], vec!["x/y".to_string()], "scheduler name")]
    {
        let mut i = info();
        i.payloads = payloads;
        i.schedulers = schedulers;
        let e = Validator::new(&i).unwrap_err().to_string();
        assert!(e.starts_with(&format!("scenario \"t\", describe: {what} ")), "{e}");
        assert!(e.contains("is not a plain name"), "{e}");
    }
}

/// A valid stream as JSON, changed by `edit`, parsed as a replay is.
fn replay_json(edit: impl FnOnce(&mut serde_json::Value)) -> Result<OpStream, String> {
    let s = stream(
        Backdrop::new(),
        vec![Step::with_defs(
            vec![CgroupDef::named("a").workers(1)],
            vec![Op::run_payload("stress", vec!["-c".into()], Some("a".into()))],
            HoldSpec::fixed_ms(10),
        )],
    );
    let mut v = serde_json::to_value(&s).unwrap();
    edit(&mut v);
    super::parse_replay(&serde_json::to_vec(&v).unwrap())
}

#[test]
fn replays_refuse_fields_on_ops_that_take_none() {
    for name in ["detach-scheduler", "restart-scheduler"] {
        let plain = replay_json(|j| j["steps"][0]["ops"].as_array_mut().unwrap().push(serde_json::json!({"op": name})));
        plain.unwrap_or_else(|e| panic!("{name} alone parses: {e}"));
        let e = replay_json(|j| {
            j["steps"][0]["ops"].as_array_mut().unwrap().push(serde_json::json!({"op": name, "bogus": 1}))
        })
        .expect_err(name);
        assert!(e.contains(&format!("step 0, op 1 ({name}): unknown field(s) [\"bogus\"]")), "{e}");
    }
}

#[test]
fn replays_refuse_unknown_fields_and_misspelled_keys_at_every_level() {
    replay_json(|_| {}).expect("the unedited stream parses");
    for (edit, field) in [
        (
            Box::new(|j: &mut serde_json::Value| j["extra"] = 1.into()) as Box<dyn FnOnce(&mut serde_json::Value)>,
            "extra",
        ),
        (Box::new(|j: &mut serde_json::Value| j["scenario"]["duraton_ms"] = 1.into()), "duraton_ms"),
        (Box::new(|j: &mut serde_json::Value| j["scenario"]["topology"]["numa"] = 1.into()), "numa"),
        (Box::new(|j: &mut serde_json::Value| j["steps"][0]["hodl"] = 1.into()), "hodl"),
        (Box::new(|j: &mut serde_json::Value| j["steps"][0]["ops"][0]["cgruop"] = "a".into()), "cgruop"),
        (Box::new(|j: &mut serde_json::Value| j["steps"][0]["setup"][0]["cpu_wieght"] = 5.into()), "cpu_wieght"),
        (Box::new(|j: &mut serde_json::Value| j["steps"][0]["setup"][0]["workers"][0]["nicee"] = 5.into()), "nicee"),
        (Box::new(|j: &mut serde_json::Value| j["backdrop"]["opz"] = serde_json::json!([])), "opz"),
    ] {
        let e = replay_json(edit).expect_err(field);
        assert!(e.contains(&format!("unknown field `{field}`")), "{field}: {e}");
    }
    // A struct variant of an externally tagged enum (a work type's fields).
    let e = replay_json(|j| {
        j["steps"][0]["setup"][0]["workers"][0]["work"] = serde_json::json!({"wake-chain": {"depth": 2, "dpeth": 3}})
    })
    .expect_err("misspelled work field");
    assert!(e.contains("unknown field `dpeth`"), "{e}");
}

#[test]
fn replays_need_this_hosts_contract_and_keep_the_argument_bound() {
    let ok = replay_json(|_| {}).unwrap();
    validate_replay(&ok, 64 << 10).unwrap();
    let mut other = ok.clone();
    other.contract = "schedbox:scenario@9.9.9".into();
    let e = validate_replay(&other, 64 << 10).unwrap_err().to_string();
    assert!(e.contains("contract \"schedbox:scenario@9.9.9\" is not this host's contract \"schedbox:scenario@"), "{e}");
    assert!(e.contains("fix: re-plan"), "{e}");
    // A 70 KiB payload argument: the 64 KiB bound the sandbox puts on each call.
    let mut big = ok.clone();
    big.steps[0].ops[0] = Op::run_payload("stress", vec!["x".repeat(70 << 10)], Some("a".into()));
    validate_stream(&big).expect("valid but for its size");
    let e = validate_replay(&big, 64 << 10).unwrap_err();
    assert_eq!((e.section, e.op_index, e.op), (Some(Section::Step(0)), Some(0), Some(OpKind::RunPayload)), "{e}");
    assert!(e.to_string().contains("71687 bytes of string/list arguments; the bound is 65536 bytes"), "{e}");
    assert!(e.to_string().contains("raise `max-arg-kib`"), "{e}");
    // The setup cgroups of a step are measured together, as one open-step call is.
    let mut setup = ok.clone();
    setup.steps[0].setup[0].name = "y".repeat(200);
    setup.steps[0].setup.extend((0..400).map(|i| CgroupDef::named(format!("{i}{}", "z".repeat(200)))));
    let e = validate_replay(&setup, 64 << 10).unwrap_err();
    assert_eq!((e.section, e.op_index), (Some(Section::Step(0)), None), "{e}");
    assert!(e.to_string().contains("the setup cgroups have"), "{e}");
    // The same measure as the sandbox's: string bytes plus 4 per number.
    assert_eq!(arg_bytes(&Op::add_cgroup("abc")), 3);
    assert_eq!(arg_bytes(&Op::set_cpuset("ab", CpusetSpec::Exact(vec![1, 2, 3]))), 2 + 12);
}
