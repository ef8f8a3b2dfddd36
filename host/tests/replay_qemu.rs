//! Replay: every Rust example's recorded stream (`plan --json`) runs without
//! its component and gets the same verdict as the component, in one
//! `schedbox run` where scenarios of the same topology share one guest; the
//! report records the stream each scenario ran. The same report then goes
//! through `schedbox report --svg`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ lives below the root").to_owned()
}

fn schedbox(args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_schedbox")).args(args).output().expect("schedbox starts");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_rust_example_replays_to_the_same_verdict_sharing_a_guest_per_topology() {
    let dir = tempfile::tempdir().unwrap();
    let mut components: Vec<PathBuf> = std::fs::read_dir(repo().join("target/scenarios/rust"))
        .expect("run `cargo xtask build-scenarios` first")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    components.sort();
    assert!(components.len() >= 6, "the six Rust examples are built: {components:?}");

    // Record every stream.
    let mut streams = Vec::new();
    let mut topologies = BTreeSet::new();
    for c in &components {
        let (code, stdout, stderr) = schedbox(&["plan".as_ref(), "--json".as_ref(), c.as_os_str()]);
        assert_eq!(code, Some(0), "plan --json {}: {stderr}", c.display());
        let stream: Value = serde_json::from_str(&stdout).expect("plan --json prints a stream");
        topologies.insert(stream["scenario"]["topology"].to_string());
        let path = dir.path().join(format!("{}.json", c.file_stem().unwrap().to_string_lossy()));
        std::fs::write(&path, &stdout).unwrap();
        streams.push((path, stream));
    }

    // One run: components and their streams; one guest per topology.
    let report = dir.path().join("report.json");
    let mut args: Vec<&std::ffi::OsStr> = vec!["run".as_ref()];
    args.extend(components.iter().map(|c| c.as_os_str()));
    args.extend(streams.iter().map(|(p, _)| p.as_os_str()));
    args.extend(["--report".as_ref(), report.as_os_str()]);
    let (code, stdout, stderr) = schedbox(&args);
    let all = format!("exit {code:?}\n{stdout}\n{stderr}");
    assert_ne!(code, Some(101), "{all}");
    let n = components.len();
    assert!(stdout.contains(&format!("{} scenario(s)", 2 * n)), "{all}");
    let boots: BTreeSet<&str> =
        stderr.lines().filter_map(|l| l.strip_prefix("running ")).filter_map(|l| l.split(" on a ").nth(1)).collect();
    assert_eq!(boots.len(), topologies.len(), "one guest per topology: {boots:?}\n{all}");

    let json: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let scenarios = json["scenarios"].as_array().expect("scenarios");
    assert_eq!(scenarios.len(), 2 * n, "{all}");
    let by_source = |p: &Path| {
        scenarios
            .iter()
            .find(|s| s["source"] == p.display().to_string())
            .unwrap_or_else(|| panic!("no report for {}\n{all}", p.display()))
    };
    for (c, (stream_path, stream)) in components.iter().zip(&streams) {
        let from_component = by_source(c);
        let replayed = by_source(stream_path);
        let name = &stream["scenario"]["name"];
        assert_eq!(&replayed["name"], name);
        assert_eq!(
            replayed["verdict"], from_component["verdict"],
            "{name}: the replay's verdict differs\ncomponent: {}\nreplay: {}",
            from_component["messages"], replayed["messages"]
        );
        assert_eq!(replayed["verdict"], "pass", "{name}: {}", replayed["messages"]);
        // The report records the stream each ran: the recorded one, and the component's own plan.
        assert_eq!(&replayed["stream"], stream, "{name}: the replay's report does not hold the recorded stream");
        assert_eq!(&from_component["stream"], stream, "{name}: the component planned another stream");
        let statuses =
            |s: &Value| s["steps"].as_array().unwrap().iter().map(|x| x["status"].clone()).collect::<Vec<_>>();
        assert_eq!(statuses(replayed), statuses(from_component), "{name}: step statuses differ");
    }
    assert_eq!(code, Some(0), "{all}");

    // The same report, summarised and drawn: every CPU with worker samples gets its cell.
    let svg = dir.path().join("report.svg");
    let (code, summary, stderr) = schedbox(&["report".as_ref(), report.as_os_str(), "--svg".as_ref(), svg.as_os_str()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(summary.contains(&format!("{} scenario(s) on the qemu backend", 2 * n)), "{summary}");
    let svg = std::fs::read_to_string(&svg).unwrap();
    for s in scenarios {
        let mut per_cpu = std::collections::BTreeMap::<u64, u64>::new();
        for w in s["results"]["workers"].as_array().unwrap() {
            for pair in w["cpus"].as_array().unwrap() {
                *per_cpu.entry(pair[0].as_u64().unwrap()).or_default() += pair[1].as_u64().unwrap();
            }
        }
        for (cpu, samples) in per_cpu.iter().filter(|(_, n)| **n > 0) {
            assert!(svg.contains(&format!("cpu {cpu} · {samples}")), "{}: no cell for cpu {cpu}", s["name"]);
        }
    }
}
