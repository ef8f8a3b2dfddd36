//! The scx schedulers from crates.io in a qemu guest (or `SCHEDBOX_TEST_BACKEND=kvm`):
//! scx_bpfland, scx_lavd, scx_rusty, scx_p2dq and scx_cosmos, each as installed by
//! `schedbox scheduler install scx_<name>` (under `<user cache>/schedulers/bin/`). Opt-in
//! (`--ignored`): each one's build takes minutes. A scheduler that is not installed is
//! skipped with the reason printed; none installed fails, so an empty run does not pass.
//!
//! Each attaches (the kernel shows `enabled`), runs SCHED_EXT workers that make progress,
//! survives restart-scheduler and a replace to the fixture and back, and detaches (the
//! kernel shows `disabled`, the teardown leaves nothing). The attach and detach times the
//! agent measured are printed (`scx <name>: attach N ms, detach M ms`). `SCHEDBOX_SCX=lavd,rusty`
//! runs only those.

use std::path::PathBuf;
use std::time::Duration;

use schedbox::machine::{self, parse_topology, BootRequest};
use schedbox::op_model::*;
use schedbox::sandbox::ComponentCache;
use schedbox_tests::test_backend;
use schedbox_wire::{Owner, RequestBody, ResponseBody};

const SCHEDULERS: &[&str] = &["bpfland", "lavd", "rusty", "p2dq", "cosmos"];

fn installed(name: &str) -> Option<PathBuf> {
    let bin = ComponentCache::default_root()?.join("schedulers/bin");
    Some(bin.join(format!("scx_{name}"))).filter(|p| p.is_file())
}

/// The milliseconds in a note's "in N ms".
fn millis(note: &str) -> u64 {
    let after = note.split(" in ").nth(1).unwrap_or_else(|| panic!("no time in {note:?}"));
    after.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no time in {note:?}"))
}

#[test]
#[ignore = "needs the scx schedulers installed (schedbox scheduler install scx_bpfland, ...); minutes"]
fn the_scx_schedulers_attach_run_survive_restart_and_replace_and_detach() {
    let mut staged = Vec::new();
    let mut names = Vec::new();
    // SCHEDBOX_SCX=lavd,rusty: only those.
    let only = std::env::var("SCHEDBOX_SCX").ok();
    for name in SCHEDULERS {
        if only.as_deref().is_some_and(|o| !o.split(',').any(|n| n == *name)) {
            continue;
        }
        match installed(name) {
            Some(p) => {
                staged.push((format!("/staging/schedulers/{name}/{name}"), p));
                names.push(*name);
            }
            None => eprintln!("scx {name}: skipped, not installed (schedbox scheduler install scx_{name})"),
        }
    }
    assert!(!names.is_empty(), "no scx scheduler is installed: schedbox scheduler install scx_bpfland");
    // Under multi-threaded TCG the guest kernel dies with `Oops: int3` in __schedule in most
    // runs (sched_ext's enable and disable patch kernel text while the other vCPU runs it);
    // single-threaded TCG does not. SCHEDBOX_TCG_THREADS set by the caller wins.
    if std::env::var_os("SCHEDBOX_TCG_THREADS").is_none() {
        std::env::set_var("SCHEDBOX_TCG_THREADS", "single");
    }
    let req = BootRequest { kernel: None, topology: parse_topology("1n1l2c1t").unwrap(), memory_mib: 1024, staged };
    let spec = machine::prepare_boot(&req).unwrap_or_else(|e| panic!("prepare (run `cargo xtask setup`): {e:#}"));
    let mut vm = machine::boot(test_backend(), &spec).unwrap_or_else(|e| panic!("boot: {e}"));
    let m = vm.as_mut();
    let mut ask = |body: RequestBody| -> ResponseBody {
        let what = format!("{body:?}");
        m.request(body).unwrap_or_else(|e| panic!("{what}: {e}"))
    };
    let read = |ask: &mut dyn FnMut(RequestBody) -> ResponseBody, path: &str| match ask(RequestBody::ReadFile {
        path: path.into(),
    }) {
        ResponseBody::File(s) => s.trim().to_owned(),
        other => panic!("reading {path}: {other:?}"),
    };
    let apply = |ask: &mut dyn FnMut(RequestBody) -> ResponseBody, op: Op| match ask(RequestBody::Apply {
        owner: Owner::Step,
        op,
    }) {
        ResponseBody::Applied(a) => {
            eprintln!("notes: {:?}", a.notes);
            a.notes
        }
        other => panic!("{other:?}"),
    };
    let state = |ask: &mut dyn FnMut(RequestBody) -> ResponseBody| read(ask, "/sys/kernel/sched_ext/state");
    let mut summary = Vec::new();
    for name in &names {
        ask(RequestBody::BeginScenario { name: format!("scx-{name}") });
        let notes = apply(&mut ask, Op::attach_scheduler(*name));
        let attached =
            notes.iter().find(|n| n.starts_with(&format!("attached {name} "))).unwrap_or_else(|| panic!("{notes:?}"));
        let attach_ms = millis(attached);
        assert_eq!(state(&mut ask), "enabled", "{name}");

        // SCHED_EXT workers run under it and make progress.
        let cgroup = format!("ext-{name}");
        ask(RequestBody::Setup { owner: Owner::Step, defs: vec![CgroupDef::named(&cgroup)] });
        apply(
            &mut ask,
            Op::spawn(SpawnPlacement::cgroup(&cgroup), WorkSpec::default().workers(2).policy(SchedPolicy::Ext)),
        );
        std::thread::sleep(Duration::from_millis(1500));
        let procs = read(&mut ask, &format!("/sys/fs/cgroup/schedbox/{cgroup}/cgroup.procs"));
        let pid = procs.lines().next().unwrap_or_else(|| panic!("{name}: no workers in {cgroup}"));
        let sched = read(&mut ask, &format!("/proc/{pid}/sched"));
        let policy = sched.lines().find(|l| l.starts_with("policy")).unwrap_or_else(|| panic!("{sched}"));
        assert!(policy.trim_end().ends_with(" 7"), "{name}: SCHED_EXT is policy 7: {policy:?}");
        match ask(RequestBody::EndStep) {
            ResponseBody::Teardown(t) => {
                assert_eq!(t.scheduler_exit, None, "{name}");
                let w = t.workers.iter().find(|w| w.workers == 2).unwrap_or_else(|| panic!("{:?}", t.workers));
                assert!(w.iterations > 0, "{name}: the SCHED_EXT workers ran: {w:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(state(&mut ask), "enabled", "{name} outlives the step");

        // Restart, and a replace to the fixture and back.
        let notes = apply(&mut ask, Op::restart_scheduler());
        assert!(notes.iter().any(|n| n.starts_with(&format!("attached {name} "))), "{name}: {notes:?}");
        assert_eq!(state(&mut ask), "enabled", "{name} after restart");
        apply(&mut ask, Op::replace_scheduler("fixture"));
        assert_eq!(read(&mut ask, "/sys/kernel/sched_ext/root/ops"), "fixture");
        let notes = apply(&mut ask, Op::replace_scheduler(*name));
        assert!(notes.iter().any(|n| n.starts_with(&format!("attached {name} "))), "{name}: {notes:?}");

        let notes = apply(&mut ask, Op::detach_scheduler());
        let detached =
            notes.iter().find(|n| n.starts_with(&format!("detached {name} "))).unwrap_or_else(|| panic!("{notes:?}"));
        let detach_ms = millis(detached);
        assert_eq!(state(&mut ask), "disabled", "{name}: {detached}");
        match ask(RequestBody::EndScenario) {
            ResponseBody::Teardown(t) => {
                assert_eq!((&t.scheduler_exit, &t.leftovers), (&None, &vec![]), "{name}")
            }
            other => panic!("{other:?}"),
        }
        summary.push(format!("scx {name}: attach {attach_ms} ms, detach {detach_ms} ms"));
    }
    vm.power_off().unwrap();
    for line in summary {
        eprintln!("{line}");
    }
}
