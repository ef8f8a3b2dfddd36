//! A hand-written JSON op stream using the added work types and SCHED_DEADLINE runs
//! through `schedbox run` (no component): the validator takes it, the guest runs it,
//! and the report's step metrics carry the workers' latency figures.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

#[test]
fn a_json_stream_with_the_added_work_types_replays_and_reports_latency() {
    let dir = tempfile::tempdir().unwrap();
    let spawn = |cgroup: &str, work: Value, workers: u32, policy: Value| {
        json!({"op": "spawn", "placement": {"cgroup": cgroup},
               "work": {"work": work, "workers": {"count": workers}, "policy": policy, "nice": 0, "affinity": "inherit"}})
    };
    let stream = json!({
        "contract": schedbox::op_model::CONTRACT_VERSION,
        "scenario": {"name": "workloads-replay", "summary": "added work types from JSON",
                     "topology": {"numa_nodes": 1, "llcs_per_node": 1, "cores_per_llc": 2, "threads_per_core": 1},
                     "kernel_features": [], "payloads": [], "schedulers": [], "duration_ms": 1000},
        "backdrop": {},
        "steps": [{
            "setup": [{"name": "t", "swappable": false}, {"name": "s", "swappable": false},
                      {"name": "m", "swappable": false}, {"name": "d", "swappable": false}],
            "ops": [
                spawn("t", json!({"timer-latency": {"period_us": 1000}}), 1, json!("normal")),
                spawn("s", json!({"schbench": {"workers": 2, "request_us": 300, "sleep_us": 1000}}), 3, json!("normal")),
                spawn("m", json!({"mutex-contention": {"contenders": 2, "hold_iters": 100, "work_iters": 100}}), 2, json!("normal")),
                spawn("d", json!("alu-hot"), 1,
                      json!({"deadline": {"runtime_us": 2000, "deadline_us": 10000, "period_us": 10000}})),
            ],
            "hold": {"fixed-ms": 1500}
        }]
    });
    let path = dir.path().join("stream.json");
    std::fs::write(&path, serde_json::to_string_pretty(&stream).unwrap()).unwrap();
    let report = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_schedbox"))
        .args(["run".as_ref(), path.as_os_str(), "--report".as_ref(), report.as_os_str()])
        .output()
        .expect("schedbox starts");
    let all = format!(
        "exit {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{all}");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(Path::new(&report)).unwrap()).unwrap();
    let s = &json["scenarios"][0];
    assert_eq!(s["verdict"], "pass", "{all}");
    let workers = s["results"]["step_metrics"][0]["workers"].as_array().expect("step 0's workers").clone();
    let of = |cg: &str| workers.iter().filter(|w| w["cgroup"] == cg).cloned().collect::<Vec<_>>();
    // timer-latency: a lateness distribution.
    let t = &of("t")[0]["wake_latency"];
    eprintln!("replayed timer-latency: {t}");
    assert!(t["samples"].as_u64().unwrap() > 0 && t["p50_ns"].as_u64() <= t["max_ns"].as_u64(), "{t}");
    // schbench: the request workers have both distributions, requests at least 300 us.
    for w in of("s").iter().filter(|w| w["index"] != 0) {
        let req = &w["request_latency"];
        eprintln!("replayed schbench worker {}: wake {} request {req}", w["index"], w["wake_latency"]);
        assert!(w["wake_latency"]["samples"].as_u64().unwrap() > 0, "{w}");
        assert!(req["p50_ns"].as_u64().unwrap() >= 225_000, "a request burns 300 us of CPU: {req}");
    }
    // mutex-contention: both contenders got the lock.
    for w in of("m") {
        assert!(w["work_units"].as_u64().unwrap() > 0 && w["request_latency"]["samples"].as_u64().unwrap() > 0, "{w}");
    }
    // SCHED_DEADLINE: the kernel admitted the worker (set-up would have failed the step) and it ran.
    let d = &of("d")[0];
    assert!(d["work_units"].as_u64().unwrap() > 0 && d["alive"] == true, "{d}");
}
