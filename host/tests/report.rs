//! `schedbox report` on a report written by a real run
//! (`tests/fixtures/reports/cpuset-split-dynamic-add.json`: `schedbox run` of the
//! cpuset-split and dynamic-add examples on the qemu backend): the summary names
//! every scenario and worker group, and the SVG has a cell for every CPU that had work.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/reports/cpuset-split-dynamic-add.json")
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
fn a_real_report_renders_a_summary_and_a_cell_per_cpu_with_work() {
    let dir = tempfile::tempdir().unwrap();
    let svg_path = dir.path().join("placement.svg");
    let report = fixture();
    let (code, stdout, stderr) =
        schedbox(&["report".as_ref(), report.as_os_str(), "--svg".as_ref(), svg_path.as_os_str()]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let svg = std::fs::read_to_string(&svg_path).expect("the SVG is written");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");

    let json: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let scenarios = json["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 2);
    assert!(stdout.contains("2 scenario(s) on the qemu backend"), "{stdout}");
    for s in scenarios {
        let name = s["name"].as_str().unwrap();
        let verdict = s["verdict"].as_str().unwrap().to_uppercase();
        assert!(stdout.contains(&format!("{verdict} {name}")), "{stdout}");
        assert!(svg.contains(name), "the panel of {name} is missing");
        let t = &s["stream"]["scenario"]["topology"];
        let cpus = ["numa_nodes", "llcs_per_node", "cores_per_llc", "threads_per_core"]
            .iter()
            .map(|k| t[k].as_u64().unwrap())
            .product::<u64>();
        let mut per_cpu = BTreeMap::<u64, u64>::new();
        for w in s["results"]["workers"].as_array().unwrap() {
            let cgroup = w["cgroup"].as_str().unwrap();
            assert!(svg.contains(&format!("· {cgroup} (")), "{name}: no row for cgroup {cgroup}");
            assert!(stdout.contains(&format!("· {cgroup}: ")), "{name}: no summary line for {cgroup}\n{stdout}");
            for pair in w["cpus"].as_array().unwrap() {
                *per_cpu.entry(pair[0].as_u64().unwrap()).or_default() += pair[1].as_u64().unwrap();
            }
        }
        assert!(!per_cpu.is_empty(), "{name}: the fixture has worker samples");
        for cpu in 0..cpus {
            match per_cpu.get(&cpu).copied().unwrap_or(0) {
                0 => assert!(!svg.contains(&format!("\ncpu {cpu} · ")), "{name}: cpu {cpu} had no work"),
                n => assert!(svg.contains(&format!("\ncpu {cpu} · {n}\n")), "{name}: no cell for cpu {cpu} ({n})"),
            }
        }
    }
    // dynamic-add's `extra` cgroup is created by step 1's ops: its row says so.
    assert!(stdout.contains("step 1 · extra"), "{stdout}");
}

#[test]
fn a_file_that_is_not_a_report_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"not\": \"a report\"}").unwrap();
    let (code, _, stderr) = schedbox(&["report".as_ref(), bad.as_os_str()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("not a schedbox run report") && stderr.contains("schedbox run --report"), "{stderr}");
}
