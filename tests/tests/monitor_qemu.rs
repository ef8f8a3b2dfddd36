//! Host-side ops on the qemu backend: kernel memory read and written through
//! guest RAM mapped in the host, cold accesses inside a freeze rendezvous.

use std::sync::Mutex;

use schedbox::executor::{execute, PayloadDefaults};
use schedbox::machine::{self, parse_topology, BackendKind, BootRequest, Machine};
use schedbox::monitor::KernelBtf;
use schedbox::op_model::*;
use schedbox::results::{Outcome, StepStatus};
use schedbox::sandbox::SandboxLimits;
use schedbox_tests::{example, TestSandbox};
use schedbox_wire::{RequestBody, ResponseBody};

static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

fn boot(topology: &str) -> Box<dyn Machine> {
    let req =
        BootRequest { kernel: None, topology: parse_topology(topology).unwrap(), memory_mib: 512, staged: vec![] };
    let spec = machine::prepare_boot(&req).unwrap_or_else(|e| panic!("prepare (run `cargo xtask setup`): {e:#}"));
    machine::boot(BackendKind::Qemu, &spec).unwrap_or_else(|e| panic!("boot: {e}"))
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
