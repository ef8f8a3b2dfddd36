//! Boot benchmark of the kvm backend where it runs here: nested, inside an
//! outer QEMU TCG guest with SVM (`schedbox nested`), beside the qemu backend
//! booting the same kernel directly under TCG, in one run. Each run is a
//! `schedbox vm info --json` process; the table gives the VMM set-up (boot
//! call → vCPUs started, or → QMP up on qemu), boot call → agent Ready, the
//! guest's own clock at Ready, and the whole process (for the nested runs: the
//! outer guest's boot, module loading and power-off included).
//!
//! `cargo bench -p schedbox --bench nested_boot` (after `cargo xtask test` or
//! `build-scenarios` + `schedbox kernel fetch --modules`); `SCHEDBOX_BOOT_RUNS` sets the runs.

use std::process::Command;
use std::time::Instant;

use serde_json::Value;

const TOPOLOGY: &str = "1n2l2c1t";

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

/// (set-up, Ready, guest clock, whole process) in ms.
fn vm_info(nested: bool) -> [u64; 4] {
    let bin = env!("CARGO_BIN_EXE_schedbox");
    let mut c = Command::new(bin);
    if nested {
        c.args(["nested", "--", "vm", "info", "--backend", "kvm"]);
    } else {
        c.args(["vm", "info", "--backend", "qemu"]);
    }
    c.args(["--topology", TOPOLOGY, "--memory", "512M", "--json"]);
    let start = Instant::now();
    let out = c.output().expect("schedbox runs");
    let wall = start.elapsed().as_millis() as u64;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vm info (nested: {nested}) failed:\n{text}");
    // The pretty-printed object: from a line `{` to the next line `}`.
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| *l == "{").unwrap_or_else(|| panic!("no JSON in:\n{text}"));
    let end = start + lines[start..].iter().position(|l| *l == "}").expect("the JSON object ends");
    let line = lines[start..=end].join("\n");
    let info: Value = serde_json::from_str(&line).expect("vm info --json");
    let b = &info["boot"];
    let ms = |k: &str| b[k].as_u64().unwrap_or_else(|| panic!("boot.{k} in {line}"));
    [ms("setup_ms"), ms("agent_ready_ms"), ms("kernel_ms"), wall]
}

fn main() {
    let runs: usize = std::env::var("SCHEDBOX_BOOT_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut rows: Vec<(&str, Vec<[u64; 4]>)> =
        vec![("qemu backend, direct TCG", vec![]), ("kvm backend, nested", vec![])];
    for _ in 0..runs {
        rows[0].1.push(vm_info(false));
        rows[1].1.push(vm_info(true));
    }
    println!("topology {TOPOLOGY} (4 vCPUs), 512 MiB, {runs} runs each, interleaved; ms, median (all runs)");
    println!("| backend | VMM set-up | boot call → agent Ready | guest clock at Ready | whole `vm info` process |");
    println!("|---|---|---|---|---|");
    for (name, runs) in &rows {
        let col = |i: usize| {
            let v: Vec<u64> = runs.iter().map(|r| r[i]).collect();
            let all = v.iter().map(u64::to_string).collect::<Vec<_>>().join(" / ");
            format!("{} ({all})", median(&v))
        };
        println!("| {name} | {} | {} | {} | {} |", col(0), col(1), col(2), col(3));
    }
}
