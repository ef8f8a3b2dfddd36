//! `schedbox run`: plan (sandboxed, validated) → boot a guest with the
//! topology the scenario asks for → execute → `check` → verdict, as a table
//! and a JSON report. Exit: 0 all pass, 1 a scenario failed, 2 error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::anyhow;
use clap::Args;
use schedbox::executor::{execute_observed, Execution, GuestGrants, NoProgress};
use schedbox::machine::{self, BootRequest};
use schedbox::op_model::{OpStream, Topology};
use schedbox::policy::{Policy, Subject};
use schedbox::results::{Outcome, StepStatus, Verdict};
use schedbox::sandbox::{digest, LoadedScenario, Sandbox};
use schedbox::validate::validate_stream;
use serde::Serialize;

use super::staging::Staging;
use super::vm::GuestArgs;
use super::{Failure, SandboxArgs};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Scenario components (.wasm), or recorded op streams (.json from `plan --json`).
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
    /// Stage a payload binary: NAME=PATH[:ARGS] (ARGS: default arguments, space-separated).
    #[arg(long = "payload", value_name = "NAME=PATH[:ARGS]")]
    pub payloads: Vec<String>,
    /// Stage a sched_ext scheduler: NAME=PATH[:ARGS].
    #[arg(long = "scheduler", value_name = "NAME=PATH[:ARGS]")]
    pub schedulers: Vec<String>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub guest: GuestArgs,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// One scenario, planned.
struct Planned {
    source: PathBuf,
    stream: OpStream,
    component: Option<Arc<LoadedScenario>>,
    /// What its guest processes may ask of the host.
    grants: GuestGrants,
}

#[derive(Serialize)]
struct StepReport {
    index: u32,
    status: StepStatus,
    error: Option<String>,
    duration_ms: u64,
}

#[derive(Serialize)]
struct ScenarioReport {
    name: String,
    source: String,
    verdict: &'static str,
    messages: Vec<String>,
    steps: Vec<StepReport>,
    error: Option<String>,
    leftovers: Vec<String>,
    /// What the guest noted (scheduler transitions per phase, pinned maps).
    notes: Vec<String>,
    duration_ms: u64,
    results: schedbox::results::Results,
    stream: OpStream,
}

#[derive(Serialize)]
struct Report {
    backend: machine::BackendKind,
    scenarios: Vec<ScenarioReport>,
}

fn plan_one(sandbox: &Sandbox, policy: &Policy, path: &Path) -> Result<Planned, Failure> {
    if path.extension().is_some_and(|e| e == "json") {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(anyhow!("cannot read {}: {e}", path.display())))?;
        let stream: OpStream = serde_json::from_str(&text)
            .map_err(|e| Failure { error: anyhow!("{}: not an op stream: {e}", path.display()), code: 1 })?;
        validate_stream(&stream).map_err(|e| Failure { error: e.into(), code: 1 })?;
        let label = path.display().to_string();
        let subject = Subject { label: &label, digest: &digest(text.as_bytes()) };
        policy.admit(subject, &stream)?;
        let grants = policy.guest_grants(subject, &stream.scenario.name);
        return Ok(Planned { source: path.to_owned(), stream, component: None, grants });
    }
    let loaded = sandbox.load_file(path)?;
    let plan = sandbox.plan(&loaded)?;
    let subject = Subject { label: &loaded.label, digest: &loaded.digest };
    policy.admit(subject, &plan.stream)?;
    let grants = policy.guest_grants(subject, &plan.stream.scenario.name);
    Ok(Planned { source: path.to_owned(), stream: plan.stream, component: Some(loaded), grants })
}

pub fn run(a: RunArgs) -> Result<u8, Failure> {
    let policy = a.sandbox.policy()?;
    let sandbox = a.sandbox.sandbox_with(&policy)?;
    let staging = Staging::new(&a.payloads, &a.schedulers)?;
    let mut planned = Vec::new();
    for path in &a.scenarios {
        planned.push(plan_one(&sandbox, &policy, path)?);
    }
    for p in &planned {
        if let Some(why) = staging.missing_payload(&p.stream, "pass") {
            return Err(Failure::usage(anyhow!(why)));
        }
    }
    for p in &planned {
        if let Some(why) = staging.missing_scheduler(&p.stream, "pass") {
            return Err(Failure::usage(anyhow!(why)));
        }
    }

    // Scenarios with the same topology share one guest, in order of first appearance.
    let mut groups: BTreeMap<String, (Topology, Vec<usize>)> = BTreeMap::new();
    let mut order = Vec::new();
    for (i, p) in planned.iter().enumerate() {
        let t = p.stream.scenario.topology;
        let key = t.to_string();
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups.entry(key).or_insert((t, Vec::new())).1.push(i);
    }
    let backend = machine::select_backend(a.guest.backend).map_err(|e| Failure::usage(e.into()))?;
    let mut reports: Vec<Option<ScenarioReport>> = (0..planned.len()).map(|_| None).collect();
    for key in order {
        let (topology, members) = &groups[&key];
        let mut guest = a.guest.clone();
        guest.topology = topology.to_string();
        let mut m = super::vm::boot_with(&guest, |req: &mut BootRequest| req.staged = staging.files.clone())?;
        for &i in members {
            let p = &planned[i];
            eprintln!("running {} on a {} guest", p.stream.scenario.name, topology);
            let exec = execute_observed(m.as_mut(), &p.stream, &staging.defaults, &p.grants, &mut NoProgress);
            reports[i] = Some(judge(&sandbox, p, exec));
        }
        if let Err(e) = m.power_off() {
            tracing::warn!("power-off: {e}");
        }
    }
    let reports: Vec<ScenarioReport> = reports.into_iter().flatten().collect();
    print_table(&reports);
    let code = if reports.iter().any(|r| r.verdict == "error") {
        2
    } else if reports.iter().any(|r| r.verdict == "fail") {
        1
    } else {
        0
    };
    if let Some(path) = &a.report {
        let report = Report { backend, scenarios: reports };
        let json = serde_json::to_string_pretty(&report).map_err(|e| Failure::usage(e.into()))?;
        std::fs::write(path, json).map_err(|e| Failure::usage(anyhow!("writing {}: {e}", path.display())))?;
    }
    Ok(code)
}

fn judge(sandbox: &Sandbox, p: &Planned, exec: Execution) -> ScenarioReport {
    let name = p.stream.scenario.name.clone();
    let (verdict, mut messages) = match (&exec.error, &p.component) {
        (Some(e), _) => ("error", vec![e.clone()]),
        (None, Some(c)) => match sandbox.check(c, &name, exec.results.clone()) {
            Ok(Verdict { outcome, messages }) => (
                match outcome {
                    Outcome::Pass => "pass",
                    Outcome::Fail => "fail",
                    Outcome::Skip => "skip",
                },
                messages,
            ),
            Err(e) => ("error", vec![format!("check: {e}")]),
        },
        // A replayed stream has no `check`: its verdict is whether every step passed.
        (None, None) => {
            let failed: Vec<String> = exec.results.steps.iter().filter_map(|s| s.error.clone()).collect();
            if failed.is_empty() {
                ("pass", vec!["replayed stream: every step passed (no check export)".into()])
            } else {
                ("fail", failed)
            }
        }
    };
    for s in &exec.results.steps {
        if let (StepStatus::Failed, Some(e)) = (s.status, &s.error) {
            if !messages.iter().any(|m| m.contains(e.as_str())) {
                messages.push(e.clone());
            }
        }
    }
    ScenarioReport {
        name,
        source: p.source.display().to_string(),
        verdict,
        messages,
        steps: exec
            .results
            .steps
            .iter()
            .map(|s| StepReport {
                index: s.index,
                status: s.status,
                error: s.error.clone(),
                duration_ms: s.duration_ms,
            })
            .collect(),
        error: exec.error.clone(),
        leftovers: exec.leftovers.clone(),
        notes: exec.notes.clone(),
        duration_ms: exec.duration.as_millis() as u64,
        results: exec.results,
        stream: p.stream.clone(),
    }
}

fn print_table(reports: &[ScenarioReport]) {
    for r in reports {
        println!("{:<7} {}  ({} ms, {})", r.verdict.to_uppercase(), r.name, r.duration_ms, r.source);
        for s in &r.steps {
            let status = format!("{:?}", s.status).to_lowercase();
            let err = s.error.as_deref().map(|e| format!("  {e}")).unwrap_or_default();
            println!("    step {:<3} {:<8} {:>6} ms{err}", s.index, status, s.duration_ms);
        }
        for w in &r.results.workers {
            let cg = if w.cgroup.is_empty() { "<runner>" } else { w.cgroup.as_str() };
            let cpus: Vec<String> = w.cpus.iter().map(|(c, n)| format!("{c}:{n}")).collect();
            println!(
                "    cgroup {cg}: {} workers, {} iterations, {:.0} ms CPU, {:.1} ms run delay, {} migrations, cpus {{{}}}",
                w.workers,
                w.iterations,
                w.cpu_time_ns as f64 / 1e6,
                w.run_delay_ns as f64 / 1e6,
                w.migrations,
                cpus.join(" ")
            );
        }
        for m in &r.messages {
            println!("    - {m}");
        }
    }
    let count = |v: &str| reports.iter().filter(|r| r.verdict == v).count();
    println!(
        "{} scenario(s): {} passed, {} failed, {} skipped, {} errors",
        reports.len(),
        count("pass"),
        count("fail"),
        count("skip"),
        count("error")
    );
}
