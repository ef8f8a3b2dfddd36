//! The workers' start barrier in a real guest: 64 spinners of one spawn each set
//! themselves up, wait at the barrier, and all run once the agent releases them (a
//! worker left at the barrier would have no work units); a spawn above the per-spawn
//! limit is refused at plan time with the limit named.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

fn stream(workers: u32) -> Value {
    json!({
        "contract": schedbox::op_model::CONTRACT_VERSION,
        "scenario": {"name": "spawn-barrier", "summary": "one spawn of many spinners",
                     "topology": {"numa_nodes": 1, "llcs_per_node": 1, "cores_per_llc": 2, "threads_per_core": 1},
                     "kernel_features": ["cgroup-v2"], "payloads": [], "schedulers": [], "duration_ms": 1000},
        "backdrop": {},
        "steps": [{
            "setup": [{"name": "w", "swappable": false}],
            "ops": [{"op": "spawn", "placement": {"cgroup": "w"},
                     "work": {"work": "spin-wait", "workers": {"count": workers}, "policy": "normal",
                              "nice": 0, "affinity": "inherit"}}],
            // 64 spinners share 2 vCPUs: long enough for each to get a turn after the release.
            "hold": {"fixed-ms": 3000}
        }]
    })
}

fn run(dir: &Path, workers: u32) -> (Option<i32>, String, Option<Value>) {
    let path = dir.join(format!("stream-{workers}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&stream(workers)).unwrap()).unwrap();
    let report = dir.join(format!("report-{workers}.json"));
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
    let json = std::fs::read_to_string(&report).ok().and_then(|s| serde_json::from_str(&s).ok());
    (out.status.code(), all, json)
}

#[test]
fn sixty_four_spinners_all_pass_the_start_barrier_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let (code, all, json) = run(dir.path(), 64);
    assert_eq!(code, Some(0), "{all}");
    let json = json.expect("a report");
    let s = &json["scenarios"][0];
    assert_eq!(s["verdict"], "pass", "{all}");
    let workers = s["results"]["step_metrics"][0]["workers"].as_array().expect("step 0's workers").clone();
    assert_eq!(workers.len(), 64, "{workers:?}");
    let mut indices: Vec<u64> = workers.iter().map(|w| w["index"].as_u64().unwrap()).collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..64).collect::<Vec<u64>>());
    for w in &workers {
        assert_eq!(w["cgroup"], "w", "{w}");
        assert!(w["work_units"].as_u64().unwrap() > 0, "worker never left the start barrier: {w}");
    }
}

#[test]
fn a_spawn_above_the_limit_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let max = schedbox::op_model::MAX_WORKERS_PER_SPAWN;
    let (code, all, _) = run(dir.path(), max + 1);
    assert_ne!(code, Some(0), "{all}");
    assert!(all.contains(&format!("exceeds the limit of {max} workers per spawn")), "{all}");
}
