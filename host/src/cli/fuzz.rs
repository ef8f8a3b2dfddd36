//! `schedbox fuzz`: generated op streams run one after another on one booted guest (a
//! verified reset between runs, a reboot when it cannot be verified), judged by the
//! oracles of [`schedbox::fuzz::oracles`]; a failure is minimised to a `minimal.json`
//! that `schedbox run` replays, with a `report.json` beside it.
//!
//! Output, under `--out DIR` (`fuzz-out`): `<stream name>/original.json`,
//! `minimal.json` and `report.json` per finding.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::Args;
use schedbox::executor::{execute_observed, GuestGrants, NoProgress, PayloadDefaults};
use schedbox::fuzz::corpus::{write_atomic, Corpus};
use schedbox::fuzz::generator::{generate, mutate, GenConfig};
use schedbox::fuzz::minimise::{minimise, reproduction_rate, Budget, Runner};
use schedbox::fuzz::oracles::{features, judge, new_console_lines, Bounds, Finding, Observed};
use schedbox::fuzz::Rng;
use schedbox::machine::parse_topology;
use schedbox::op_model::OpStream;
use serde_json::json;

use super::staging::Staging;
use super::vm::GuestArgs;
use super::watch::events::Events;
use super::watch::guest::Guest;
use super::Failure;

#[derive(Args, Debug)]
pub struct FuzzArgs {
    /// The scheduler under test: built in (fixture, fixture-alt, fixture-stall,
    /// fixture-error) or staged with --scheduler-file.
    #[arg(long, value_name = "NAME")]
    pub scheduler: Option<String>,
    /// Stage a sched_ext scheduler: NAME=PATH[:ARGS] (as `run --scheduler`).
    #[arg(long = "scheduler-file", value_name = "NAME=PATH[:ARGS]")]
    pub scheduler_files: Vec<String>,
    /// Seed: the same seed (and flags) gives the same streams.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop after N streams.
    #[arg(long, value_name = "N")]
    pub runs: Option<u64>,
    /// Stop after this long (e.g. 90s, 10m, 1h) [10m when --runs is not given].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub budget: Option<Duration>,
    /// Corpus directory: streams with new kernel-visible behaviour are saved here, and
    /// later runs start by mutating them.
    #[arg(long, value_name = "DIR")]
    pub corpus: Option<PathBuf>,
    /// Where findings are written.
    #[arg(long, value_name = "DIR", default_value = "fuzz-out")]
    pub out: PathBuf,
    /// Go on after a finding (default: stop at the first, once minimised).
    #[arg(long)]
    pub keep_going: bool,
    /// Do not minimise findings.
    #[arg(long)]
    pub no_minimise: bool,
    /// Most candidate runs while minimising one finding.
    #[arg(long, value_name = "N", default_value_t = 150)]
    pub minimise_runs: u64,
    /// Most time minimising one finding may take.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    pub minimise_budget: Duration,
    /// Runs per minimisation candidate (more for flaky failures: one failing run of
    /// them counts as reproduced).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub tries: u32,
    /// Re-runs of the minimal stream, for its reproduction rate.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub repro: u32,
    /// Starvation bound: a worker's longest gap between two loop iterations, ms.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub starve_ms: u64,
    /// Steps per generated stream, at most.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub max_steps: usize,
    /// Ops per generated step, at most.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_ops: usize,
    #[command(flatten)]
    pub guest: GuestArgs,
}

/// `90s`, `10m`, `1h`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, mul) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| Duration::from_secs(n.saturating_mul(mul)))
        .map_err(|_| format!("{s:?} is not a duration: write e.g. 90s, 10m or 1h"))
}

/// The booted guest as a [`Runner`]: each stream on a clean guest, judged.
struct GuestRunner {
    guest: Guest,
    events: Events,
    defaults: PayloadDefaults,
    grants: GuestGrants,
    bounds: Bounds,
    runs: u64,
    rebooted: u64,
}

struct RunOutcome {
    findings: Vec<Finding>,
    features: BTreeSet<String>,
    step_errors: usize,
}

impl GuestRunner {
    fn run_full(&mut self, stream: &OpStream) -> Result<RunOutcome, String> {
        self.runs += 1;
        let before = self.guest.machine().console_tail(200);
        let exec = execute_observed(self.guest.machine(), stream, &self.defaults, &self.grants, &mut NoProgress);
        let m = self.guest.machine();
        let machine_error = m.health().err().map(|e| e.to_string());
        let console = new_console_lines(&before, &m.console_tail(400));
        let seen = Observed { exec: &exec, console: &console, machine_error: machine_error.as_deref() };
        let findings = judge(stream, &seen, &self.bounds);
        let features = features(stream, &seen);
        let step_errors = exec.results.steps.iter().filter(|s| s.error.is_some()).count();
        for s in exec.results.steps.iter().filter(|s| s.error.is_some()) {
            tracing::info!("{} step {}: {}", stream.scenario.name, s.index, s.error.as_deref().unwrap_or(""));
        }
        let reset = self.guest.reset(&mut self.events).map_err(|f| f.error.to_string())?;
        if reset.rebooted {
            self.rebooted += 1;
        }
        Ok(RunOutcome { findings, features, step_errors })
    }
}

impl Runner for GuestRunner {
    fn run(&mut self, stream: &OpStream) -> Result<Vec<Finding>, String> {
        if schedbox::interrupt::received().is_some() {
            return Err("interrupted".into());
        }
        self.run_full(stream).map(|o| o.findings)
    }
}

pub fn run(a: FuzzArgs) -> Result<u8, Failure> {
    schedbox::interrupt::install();
    let topology = parse_topology(&a.guest.topology).map_err(|e| Failure::usage(e.into()))?;
    let staging = Staging::new(&[], &a.scheduler_files)?;
    let mut cfg = GenConfig::new(topology, a.scheduler.clone());
    cfg.max_steps = a.max_steps.max(1);
    cfg.max_ops = a.max_ops.max(1);
    let mut corpus = match &a.corpus {
        Some(dir) => Some(Corpus::open(dir).map_err(Failure::usage)?),
        None => None,
    };
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display())).map_err(Failure::usage)?;
    let budget = a.budget.or(if a.runs.is_some() { None } else { Some(Duration::from_secs(600)) });
    let mut events = Events::new(false);
    let mut guest = Guest::boot(&a.guest, topology, staging.files.clone(), &mut events)?;
    let baseline = guest.reset(&mut events)?;
    if !baseline.verified {
        guest.power_off();
        return Err(Failure::usage(anyhow!(
            "a freshly booted guest does not verify clean ({}): check the kernel and the agent",
            baseline.reason.unwrap_or_default()
        )));
    }
    let mut r = GuestRunner {
        guest,
        events,
        defaults: staging.defaults.clone(),
        grants: GuestGrants::default(),
        bounds: Bounds { starve_ns: a.starve_ms.saturating_mul(1_000_000) },
        runs: 0,
        rebooted: 0,
    };
    let result = fuzz_loop(&a, &cfg, &mut r, corpus.as_mut(), budget);
    r.guest.power_off();
    result
}

fn fuzz_loop(
    a: &FuzzArgs,
    cfg: &GenConfig,
    r: &mut GuestRunner,
    mut corpus: Option<&mut Corpus>,
    budget: Option<Duration>,
) -> Result<u8, Failure> {
    let t0 = Instant::now();
    let (mut rejected, mut findings, mut step_errors, mut i) = (0u64, 0u64, 0usize, 0u64);
    loop {
        if a.runs.is_some_and(|n| i >= n) || budget.is_some_and(|b| t0.elapsed() >= b) {
            break;
        }
        if let Some(s) = schedbox::interrupt::received() {
            eprintln!("stopped by {}", schedbox::interrupt::name(s));
            break;
        }
        let mut pick = Rng::new(a.seed ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let g = match corpus.as_deref() {
            Some(c) if !c.streams.is_empty() && pick.chance(50) => {
                let base = &c.streams[pick.below(c.streams.len() as u64) as usize];
                mutate(cfg, base, a.seed, i)
            }
            _ => generate(cfg, a.seed, i),
        };
        rejected += g.rejected;
        let mut stream = g.stream;
        stream.scenario.name = format!("fuzz-{}-{i}", a.seed);
        let t = Instant::now();
        let out = r.run_full(&stream).map_err(|e| Failure::usage(anyhow!("running {}: {e}", stream.scenario.name)))?;
        step_errors += out.step_errors;
        eprintln!(
            "{} ({} steps, {} ops): {} in {:.1} s{}",
            stream.scenario.name,
            stream.steps.len(),
            stream.op_count(),
            if out.findings.is_empty() { "ok".to_owned() } else { format!("FAILED ({})", out.findings[0].signature) },
            t.elapsed().as_secs_f64(),
            if out.step_errors > 0 { format!(", {} step error(s)", out.step_errors) } else { String::new() }
        );
        if let Some(c) = corpus.as_deref_mut() {
            let new = c.offer(&stream, &out.features).map_err(Failure::usage)?;
            if !new.is_empty() {
                eprintln!("  corpus: new {}", new.join(", "));
            }
        }
        i += 1;
        if let Some(first) = out.findings.first() {
            findings += 1;
            report_finding(a, r, &stream, first, &out.findings).map_err(Failure::usage)?;
            if !a.keep_going {
                break;
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "{i} streams in {secs:.0} s ({:.1} per minute), {rejected} draws refused by the validator, {step_errors} step errors, {} reboots, {findings} finding(s)",
        i as f64 * 60.0 / secs.max(1e-9),
        r.rebooted
    );
    Ok(u8::from(findings > 0))
}

fn report_finding(
    a: &FuzzArgs,
    r: &mut GuestRunner,
    stream: &OpStream,
    first: &Finding,
    all: &[Finding],
) -> anyhow::Result<()> {
    let dir = a.out.join(&stream.scenario.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!("  {}: {}", first.oracle.name(), first.detail);
    write_atomic(&dir.join("original.json"), &serde_json::to_vec_pretty(stream)?)?;
    let (minimal, runs, ms, exhausted) = if a.no_minimise {
        (stream.clone(), 0, 0, false)
    } else {
        eprintln!("  minimising ({} runs or {} s at most)", a.minimise_runs, a.minimise_budget.as_secs());
        let budget = Budget { runs: a.minimise_runs, time: a.minimise_budget, tries: a.tries.max(1) };
        let m = minimise(stream, &first.signature, r, &budget);
        (m.stream, m.runs, m.elapsed.as_millis() as u64, m.exhausted)
    };
    let (hit, ran) = reproduction_rate(&minimal, &first.signature, r, a.repro);
    write_atomic(&dir.join("minimal.json"), &serde_json::to_vec_pretty(&minimal)?)?;
    let report = json!({
        "scheduler": a.scheduler,
        "seed": a.seed,
        "oracle": first.oracle,
        "signature": first.signature,
        "detail": first.detail,
        "findings": all,
        "original_ops": stream.op_count(),
        "original_steps": stream.steps.len(),
        "minimal_ops": minimal.op_count(),
        "minimal_steps": minimal.steps.len(),
        "minimise": { "runs": runs, "ms": ms, "budget_exhausted": exhausted },
        "reproduced": { "failed": hit, "runs": ran, "rate": if ran == 0 { 0.0 } else { f64::from(hit) / f64::from(ran) } },
        "original": stream,
        "minimal": minimal,
    });
    write_atomic(&dir.join("report.json"), &serde_json::to_vec_pretty(&report)?)?;
    eprintln!(
        "  minimal: {} ops in {} steps (from {} ops in {} steps), {runs} runs in {:.1} s; reproduced {hit}/{ran}; replay: schedbox run {}",
        minimal.op_count(),
        minimal.steps.len(),
        stream.op_count(),
        stream.steps.len(),
        ms as f64 / 1e3,
        dir.join("minimal.json").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("soon").is_err());
    }
}
