//! `schedbox run`: plan (sandboxed, validated) → boot a guest with the
//! topology the scenario asks for → execute → `check` → verdict, as a table
//! and a JSON report. Exit: 0 all pass, 1 a scenario failed, 2 error.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use schedbox::executor::{execute_observed, set_wait_payload_timeout, Execution, GuestGrants, Progress};
use schedbox::interrupt;
use schedbox::machine::{self, BootRequest};
use schedbox::op_model::{OpStream, Topology};
use schedbox::policy::{Policy, Subject};
use schedbox::results::{Outcome, StepStatus, Verdict};
use schedbox::sandbox::{digest, LoadedScenario, Sandbox};
use schedbox::validate::validate_replay;
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
    /// Stage a sched_ext scheduler: NAME=PATH[:ARGS], or NAME[:ARGS] for one installed by
    /// `schedbox scheduler install`.
    #[arg(long = "scheduler", value_name = "NAME[=PATH][:ARGS]")]
    pub schedulers: Vec<String>,
    /// Write the JSON report here (rewritten after each scenario; written on a signal too).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Bound of one wait-payload, seconds: a payload still running then is killed and the
    /// step fails with its output [600].
    #[arg(long, value_name = "SECS")]
    pub wait_payload_timeout: Option<u64>,
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

#[derive(Serialize, Clone)]
struct StepReport {
    index: u32,
    status: StepStatus,
    error: Option<String>,
    duration_ms: u64,
}

#[derive(Serialize, Clone)]
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
struct NotRun {
    source: String,
    reason: String,
}

#[derive(Serialize)]
struct Report {
    backend: Option<machine::BackendKind>,
    /// Every scenario ran to its verdict.
    complete: bool,
    /// Why the run ended (or "running" while it goes on).
    ended: String,
    scenarios: Vec<ScenarioReport>,
    /// Scenarios that did not run, and why.
    not_run: Vec<NotRun>,
}

/// The report, rewritten whole after each scenario (temp file + rename): a run cut short
/// by a signal, a boot failure or a refusal still leaves a readable report saying why.
struct ReportFile {
    path: Option<PathBuf>,
    report: Report,
}

impl ReportFile {
    fn save(&self) -> Result<(), Failure> {
        let Some(path) = &self.path else { return Ok(()) };
        let json = serde_json::to_string_pretty(&self.report).map_err(|e| Failure::usage(e.into()))?;
        write_atomically(path, json.as_bytes())
            .map_err(|e| Failure::usage(anyhow!("writing the report {}: {e}", path.display())))
    }

    /// Records that `sources` did not run because of `reason`.
    fn not_run<'a>(&mut self, sources: impl IntoIterator<Item = &'a Path>, reason: &str) {
        for source in sources {
            self.report.not_run.push(NotRun { source: source.display().to_string(), reason: reason.to_owned() });
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename,
/// so readers see the old report or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".schedbox-report-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Stops a run where a signal arrived, and shows its steps and holds on a terminal.
struct RunProgress {
    bar: Option<indicatif::ProgressBar>,
    scenario: String,
}

impl RunProgress {
    fn new(scenario: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("  {spinner} {msg} [{elapsed}]").expect("a valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Self { bar, scenario: scenario.to_owned() }
    }

    fn show(&self, msg: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(msg);
        }
    }
}

impl Drop for RunProgress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for RunProgress {
    fn step_started(&mut self, index: usize, of: usize) {
        self.show(format!("{}: step {}/{of}", self.scenario, index + 1));
    }
    fn holding(&mut self, step: usize, total: Duration) {
        tracing::info!("{}: step {step} holding for {} ms", self.scenario, total.as_millis());
        self.show(format!("{}: step {} holding {:.1} s", self.scenario, step + 1, total.as_secs_f64()));
    }
    fn cancelled(&mut self) -> bool {
        interrupt::received().is_some()
    }
}

fn plan_one(sandbox: &Sandbox, policy: &Policy, path: &Path) -> Result<Planned, Failure> {
    if path.extension().is_some_and(|e| e == "json") {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(anyhow!("cannot read {}: {e}", path.display())))?;
        let stream: OpStream = schedbox::validate::parse_replay(text.as_bytes())
            .map_err(|e| Failure { error: anyhow!("{}: not an op stream: {e}", path.display()), code: 1 })?;
        validate_replay(&stream, policy.limits.max_arg_bytes).map_err(|e| Failure { error: e.into(), code: 1 })?;
        let label = path.display().to_string();
        let subject = Subject { label: &label, digest: &digest(text.as_bytes()), signature: None };
        policy.admit(subject, &stream)?;
        let grants = policy.guest_grants(subject, &stream.scenario.name);
        return Ok(Planned { source: path.to_owned(), stream, component: None, grants });
    }
    let loaded = sandbox.load_file(path)?;
    let plan = sandbox.plan(&loaded)?;
    let subject = loaded.subject();
    policy.admit(subject, &plan.stream)?;
    let grants = policy.guest_grants(subject, &plan.stream.scenario.name);
    Ok(Planned { source: path.to_owned(), stream: plan.stream, component: Some(loaded), grants })
}

pub fn run(a: RunArgs) -> Result<u8, Failure> {
    interrupt::install();
    if let Some(secs) = a.wait_payload_timeout {
        set_wait_payload_timeout(Duration::from_secs(secs));
    }
    let mut out = ReportFile {
        path: a.report.clone(),
        report: Report {
            backend: None,
            complete: false,
            ended: "running".into(),
            scenarios: Vec::new(),
            not_run: Vec::new(),
        },
    };
    let result = run_all(&a, &mut out);
    if let Err(f) = &result {
        out.report.ended = format!("{:#}", f.error);
        if out.report.scenarios.is_empty() && out.report.not_run.is_empty() {
            out.not_run(a.scenarios.iter().map(PathBuf::as_path), "the run stopped before it");
        }
    }
    // The report is written whatever happened; a failure to write it is the error then.
    let saved = out.save();
    let code = result?;
    saved?;
    Ok(code)
}

fn run_all(a: &RunArgs, out: &mut ReportFile) -> Result<u8, Failure> {
    let policy = a.sandbox.policy()?;
    let sandbox = a.sandbox.sandbox_with(&policy)?;
    let staging = Staging::new(&a.payloads, &a.schedulers)?;
    let mut planned = Vec::new();
    for (i, path) in a.scenarios.iter().enumerate() {
        match plan_one(&sandbox, &policy, path) {
            Ok(p) => planned.push(p),
            Err(f) => {
                out.not_run([path.as_path()], &format!("{:#}", f.error));
                out.not_run(
                    a.scenarios.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, p)| p.as_path()),
                    &format!("{} could not be planned, so nothing ran", path.display()),
                );
                return Err(f);
            }
        }
    }
    let unmet = |why: String, out: &mut ReportFile| {
        out.not_run(a.scenarios.iter().map(PathBuf::as_path), &why);
        Failure::usage(anyhow!(why))
    };
    for p in &planned {
        if let Some(why) = staging.missing_payload(&p.stream, "pass") {
            return Err(unmet(why, out));
        }
    }
    for p in &planned {
        if let Some(why) = staging.missing_scheduler(&p.stream, "pass") {
            return Err(unmet(why, out));
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
    let backend = machine::select_backend(a.guest.backend).map_err(|e| Failure::guest(e.into()))?;
    out.report.backend = Some(backend);
    out.save()?;
    let mut reports: Vec<Option<ScenarioReport>> = (0..planned.len()).map(|_| None).collect();
    let mut why_not: Vec<Option<String>> = vec![None; planned.len()];
    let mut guest_failed = false;
    let interrupted = || interrupt::received().map(|s| format!("interrupted by {}", interrupt::name(s)));
    'groups: for key in order {
        let (topology, members) = &groups[&key];
        let mut guest = a.guest.clone();
        guest.topology = topology.to_string();
        let boot = || super::vm::boot_with(&guest, |req: &mut BootRequest| req.staged = staging.files.clone());
        let mut m: Option<Box<dyn machine::Machine>> = None;
        for &i in members {
            if let Some(why) = interrupted() {
                why_not[i] = Some(why);
                continue;
            }
            let p = &planned[i];
            // A guest the previous scenario lost (a panic, a dead agent) is replaced.
            if let Some(mut old) = m.take() {
                match old.health() {
                    Ok(()) => m = Some(old),
                    Err(e) => eprintln!("the {topology} guest is lost ({e}); booting a fresh one"),
                }
            }
            if m.is_none() {
                match boot() {
                    Ok(booted) => m = Some(booted),
                    Err(f) if interrupted().is_some() => {
                        tracing::debug!("boot: {:#}", f.error);
                        why_not[i] = interrupted();
                        continue;
                    }
                    Err(f) => {
                        let error = format!("booting a {topology} guest: {:#}", f.error);
                        guest_failed = true;
                        reports[i] = Some(not_executed(p, error));
                        save_progress(out, &reports)?;
                        continue;
                    }
                }
            }
            let machine = m.as_mut().expect("booted above");
            eprintln!("running {} on a {} guest", p.stream.scenario.name, topology);
            let mut progress = RunProgress::new(&p.stream.scenario.name);
            let exec = execute_observed(machine.as_mut(), &p.stream, &staging.defaults, &p.grants, &mut progress);
            drop(progress);
            // The guest, the agent or the teardown failed (not the scenario's own verdict).
            guest_failed |= exec.error.is_some() && !exec.cancelled;
            reports[i] = Some(if exec.cancelled {
                let why = interrupted().unwrap_or_else(|| "cancelled".into());
                let mut r = judge_unchecked(p, exec);
                r.verdict = "error";
                r.messages.insert(0, format!("{why}: the run stopped where it was; no check"));
                r
            } else {
                judge(&sandbox, p, exec)
            });
            save_progress(out, &reports)?;
        }
        if let Some(m) = m {
            if let Err(e) = m.power_off() {
                tracing::warn!("power-off: {e}");
            }
        }
        if interrupted().is_some() {
            for &i in members {
                if reports[i].is_none() && why_not[i].is_none() {
                    why_not[i] = interrupted();
                }
            }
            for (_, (_, rest)) in groups.iter().filter(|(k, _)| **k != key) {
                for &i in rest {
                    if reports[i].is_none() && why_not[i].is_none() {
                        why_not[i] = interrupted();
                    }
                }
            }
            break 'groups;
        }
    }
    for (i, why) in why_not.iter().enumerate() {
        if let Some(why) = why {
            out.not_run([planned[i].source.as_path()], why);
        }
    }
    out.report.scenarios = reports.into_iter().flatten().collect();
    print_table(&out.report.scenarios);
    if let Some(why) = interrupted() {
        out.report.ended = why;
        out.save()?;
        eprintln!(
            "{}: {} scenario(s) reported, {} not run",
            out.report.ended,
            out.report.scenarios.len(),
            out.report.not_run.len()
        );
        return Ok(interrupt::exit_code(interrupt::received().unwrap_or(libc::SIGINT)));
    }
    out.report.complete = out.report.not_run.is_empty();
    out.report.ended = "every scenario ran".into();
    let verdicts = |v: &str| out.report.scenarios.iter().any(|r| r.verdict == v);
    // A check that trapped or hit a bound is the scenario's failure (1), as is a
    // fail verdict; a guest that did not boot or broke is the environment's (3).
    Ok(if guest_failed {
        super::EXIT_GUEST
    } else if verdicts("error") || verdicts("fail") {
        super::EXIT_FAIL
    } else {
        0
    })
}

/// Rewrites the report with the scenarios finished so far.
fn save_progress(out: &mut ReportFile, reports: &[Option<ScenarioReport>]) -> Result<(), Failure> {
    if out.path.is_none() {
        return Ok(());
    }
    let done: Vec<ScenarioReport> = reports.iter().flatten().cloned().collect();
    out.report.scenarios = done;
    out.save()
}

/// The report of a scenario whose guest never came up.
fn not_executed(p: &Planned, error: String) -> ScenarioReport {
    let exec = Execution { error: Some(error), ..Execution::default() };
    judge_unchecked(p, exec)
}

/// The report of an execution that gets no `check` (cancelled, or never run).
fn judge_unchecked(p: &Planned, exec: Execution) -> ScenarioReport {
    let messages = exec.error.iter().cloned().collect();
    report_of(p, exec, "error", messages)
}

fn judge(sandbox: &Sandbox, p: &Planned, exec: Execution) -> ScenarioReport {
    let name = p.stream.scenario.name.clone();
    let (verdict, messages) = match (&exec.error, &p.component) {
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
    report_of(p, exec, verdict, messages)
}

fn report_of(p: &Planned, exec: Execution, verdict: &'static str, mut messages: Vec<String>) -> ScenarioReport {
    let name = p.stream.scenario.name.clone();
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
    use std::fmt::Write;
    let mut out = String::new();
    for r in reports {
        let _ = writeln!(out, "{:<7} {}  ({} ms, {})", r.verdict.to_uppercase(), r.name, r.duration_ms, r.source);
        for s in &r.steps {
            let status = format!("{:?}", s.status).to_lowercase();
            let err = s.error.as_deref().map(|e| format!("  {e}")).unwrap_or_default();
            let _ = writeln!(out, "    step {:<3} {:<8} {:>6} ms{err}", s.index, status, s.duration_ms);
        }
        for w in &r.results.workers {
            let cg = if w.cgroup.is_empty() { "<runner>" } else { w.cgroup.as_str() };
            let cpus: Vec<String> = w.cpus.iter().map(|(c, n)| format!("{c}:{n}")).collect();
            let _ = writeln!(
                out,
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
            let _ = writeln!(out, "    - {m}");
        }
    }
    let count = |v: &str| reports.iter().filter(|r| r.verdict == v).count();
    let _ = writeln!(
        out,
        "{} scenario(s): {} passed, {} failed, {} skipped, {} errors",
        reports.len(),
        count("pass"),
        count("fail"),
        count("skip"),
        count("error")
    );
    // Messages and step errors come from the component and the guest.
    super::print_stdout(&schedbox::untrusted::escape(&out));
}
