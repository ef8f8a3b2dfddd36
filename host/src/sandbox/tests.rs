//! The sandbox's WASI context: fixed-seed randomness.

use wasmtime_wasi::p2::bindings::random::{insecure, insecure_seed, random};

use super::{Sandbox, SandboxConfig};

fn draws(sb: &Sandbox) -> (Vec<u8>, Vec<u8>, (u64, u64)) {
    let mut store = sb.store();
    let r = store.data_mut().wasi.random();
    let secure = random::Host::get_random_bytes(r, 64).unwrap();
    let weak = insecure::Host::get_insecure_random_bytes(r, 64).unwrap();
    let seed = insecure_seed::Host::insecure_seed(r).unwrap();
    (secure, weak, seed)
}

#[test]
fn every_random_source_is_seeded_the_same_in_every_store() {
    let config = SandboxConfig { cache_root: None, ..SandboxConfig::default() };
    let a = Sandbox::new(config.clone()).unwrap();
    let b = Sandbox::new(config).unwrap();
    let first = draws(&a);
    assert_eq!(first, draws(&a), "a second store of the same sandbox draws differently");
    assert_eq!(first, draws(&b), "another sandbox draws differently");
    assert_ne!(first.0, vec![0; 64], "the bytes are not random-looking");
    assert_ne!(first.0, first.1, "secure and insecure streams are the same");
    assert_eq!(first.2, (0, 0), "the README promises insecure-seed 0");
}

mod recorder_bounds {
    use crate::contract::schedbox::scenario::{ops::Host as _, types as wit};
    use crate::op_model::{ScenarioInfo, Topology};
    use crate::sandbox::recorder::{BoundError, Recorder};
    use crate::sandbox::SandboxLimits;

    fn recorder(max_ops: usize) -> Recorder {
        let mut r = Recorder::new(SandboxLimits { max_ops, ..SandboxLimits::default() });
        r.start(&ScenarioInfo {
            name: "t".into(),
            summary: "test".into(),
            topology: Topology { numa_nodes: 1, llcs_per_node: 2, cores_per_llc: 2, threads_per_core: 1 },
            kernel_features: vec![],
            payloads: vec![],
            schedulers: vec![],
            duration_ms: 1000,
        })
        .unwrap();
        r
    }

    fn def(name: String) -> wit::CgroupDef {
        wit::CgroupDef {
            name,
            cpuset: None,
            cpuset_mems: None,
            cpu_weight: None,
            cpu_max: None,
            memory_max: None,
            pids_max: None,
            io_weight: None,
            workers: vec![],
            payload: None,
            swappable: false,
        }
    }

    fn bound_of(e: wasmtime::Error) -> String {
        let b = e.downcast_ref::<BoundError>().unwrap_or_else(|| panic!("not a bound error: {e:#}"));
        b.to_string()
    }

    #[test]
    fn steps_are_bounded_like_ops() {
        let mut r = recorder(10);
        r.open_backdrop(vec![]).unwrap().unwrap();
        r.close_backdrop().unwrap().unwrap();
        for _ in 0..10 {
            r.open_step(vec![]).unwrap().unwrap();
            r.close_step(wit::HoldSpec::Fixed(1)).unwrap().unwrap();
        }
        let message = bound_of(r.open_step(vec![]).unwrap_err());
        assert!(message.contains("exceeded 10 steps (steps 11 rejected)"), "{message}");
        assert!(message.contains("--max-ops"), "{message}");
    }

    #[test]
    fn setup_cgroups_are_bounded_like_ops() {
        let mut r = recorder(10);
        let defs = (0..11).map(|i| def(format!("c{i}"))).collect();
        let message = bound_of(r.open_backdrop(defs).unwrap_err());
        assert!(message.contains("exceeded 10 setup cgroups (setup cgroups 11 rejected)"), "{message}");
    }

    #[test]
    fn rejected_calls_are_bounded_and_few_are_kept() {
        let mut r = recorder(1000);
        r.open_backdrop(vec![]).unwrap().unwrap();
        r.close_backdrop().unwrap().unwrap();
        r.open_step(vec![]).unwrap().unwrap();
        let long = "x".repeat(60 << 10);
        for _ in 0..1000 {
            // Rejected: no such cgroup (and the name is long).
            assert!(r.freeze_cgroup(long.clone()).unwrap().is_err());
        }
        assert!(r.rejections.len() <= 18, "{} rejections kept", r.rejections.len());
        assert!(r.rejections.iter().all(|e| e.message.len() <= 4200), "a kept message is not cut");
        let message = bound_of(r.freeze_cgroup(long).unwrap_err());
        assert!(message.contains("rejected 1000 op calls"), "{message}");
    }
}

#[test]
fn the_memory_bound_is_on_all_memories_of_an_instance_together() {
    use wasmtime::ResourceLimiter;
    let config = SandboxConfig {
        cache_root: None,
        limits: super::SandboxLimits { memory_bytes: 64 << 20, ..Default::default() },
        ..SandboxConfig::default()
    };
    let sb = Sandbox::new(config).unwrap();
    let mut store = sb.store();
    let state = store.data_mut();
    // Sixteen memories of 32 MiB each: the first two fit, the third does not.
    assert!(state.memory_growing(0, 32 << 20, None).unwrap());
    assert!(state.memory_growing(0, 32 << 20, None).unwrap());
    let err = state.memory_growing(0, 32 << 20, None).unwrap_err();
    assert!(err.to_string().contains("the bound is 67108864 bytes"), "{err}");
    // Growing one that exists counts only the growth.
    assert!(state.memory_growing(32 << 20, 32 << 20, None).unwrap());
    // Tables: 2^20 elements in all.
    assert!(state.table_growing(0, 1 << 19, None).unwrap());
    assert!(state.table_growing(0, 1 << 19, None).unwrap());
    assert!(!state.table_growing(0, 1, None).unwrap());
}

#[test]
fn a_permitted_growth_that_fails_is_taken_back_and_reported_as_the_memory_bound() {
    use wasmtime::ResourceLimiter;
    let config = SandboxConfig {
        cache_root: None,
        limits: super::SandboxLimits { memory_bytes: 64 << 20, ..Default::default() },
        ..SandboxConfig::default()
    };
    let sb = Sandbox::new(config).unwrap();
    let mut store = sb.store();
    let state = store.data_mut();
    assert!(state.memory_growing(0, 48 << 20, None).unwrap());
    let err = state.memory_grow_failed(wasmtime::format_err!("mmap failed")).expect_err("the guest traps");
    let text = err.to_string();
    assert!(text.contains("could not grow to 50331648 bytes: mmap failed"), "{text}");
    assert!(text.contains("the bound is 67108864 bytes (raise it with --wasm-memory"), "{text}");
    match super::classify("s", "run", err) {
        super::SandboxError::Bound { bound, message, .. } => {
            assert_eq!(bound, super::Bound::Memory);
            assert!(message.contains("--wasm-memory"), "{message}");
        }
        other => panic!("not the memory bound: {other:?}"),
    }
    // The failed 48 MiB no longer count: 64 MiB still fit.
    assert!(state.memory_growing(0, 64 << 20, None).unwrap());
}
