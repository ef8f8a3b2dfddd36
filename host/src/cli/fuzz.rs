//! `schedbox fuzz`: generated op streams run one after another on one booted guest (a
//! verified reset between runs, a reboot when it cannot be verified), judged by the
//! oracles of [`schedbox::fuzz::oracles`]; a failure is minimised to a `minimal.json`
//! that `schedbox run` replays, with a `report.json` beside it.
//!
//! Output, under `--out DIR` (`fuzz-out`): `<stream name>/original.json`,
//! `minimal.json` and `report.json` per finding, and `summary.json`: every stream run, by
//! index, whichever guest ran it.
//!
//! The streams are indices of the seed ([`schedbox::fuzz::plan`]): `--streams A..B` or
//! `--runs N` (`0..N`), narrowed to `--partition K/N`, shared among `--jobs` guests.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::Args;
use schedbox::executor::{execute_observed, GuestGrants, NoProgress, PayloadDefaults};
use schedbox::fuzz::corpus::{write_atomic, Corpus};
use schedbox::fuzz::generator::{generate, mutate, GenConfig};
use schedbox::fuzz::minimise::{minimise, reproduction_rate, stabilise, Budget, Runner};
use schedbox::fuzz::oracles::{features, judge, new_console_lines, Bounds, Finding, Observed};
use schedbox::fuzz::plan::{parse_partition, parse_range, Slice};
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
    /// fixture-error, fixture-planted) or staged with --scheduler-file.
    #[arg(long, value_name = "NAME")]
    pub scheduler: Option<String>,
    /// Stage a sched_ext scheduler: NAME=PATH[:ARGS] (as `run --scheduler`).
    #[arg(long = "scheduler-file", value_name = "NAME=PATH[:ARGS]")]
    pub scheduler_files: Vec<String>,
    /// Seed: the same seed (and flags) gives the same streams.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run the streams 0..N of the seed.
    #[arg(long, value_name = "N", conflicts_with = "streams")]
    pub runs: Option<u64>,
    /// Run the streams A..B of the seed (indices A up to B - 1): stream i of a seed is the
    /// same whichever run, partition or guest runs it.
    #[arg(long, value_name = "A..B", value_parser = parse_range)]
    pub streams: Option<(u64, u64)>,
    /// Run part K of N of those streams (every N-th, from the K-th): the N parts of one
    /// range together run each stream once (CI shards).
    #[arg(long, value_name = "K/N", value_parser = parse_partition)]
    pub partition: Option<(u64, u64)>,
    /// Guests booted side by side, each running every N-th of the streams. Each guest
    /// keeps a host CPU busy: on a 2-core host more than 1 gains nothing.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub jobs: u64,
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
    /// Re-runs of a failing stream before minimising it and of the minimal stream after,
    /// for their reproduction rates (a flaky failure is minimised with this many tries
    /// per candidate; one that never fails again is reported, not minimised).
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
        // An error outside the steps (the Backdrop's set-up refused) counts too: such a
        // stream did not run, whatever the oracles say.
        let step_errors =
            exec.results.steps.iter().filter(|s| s.error.is_some()).count() + usize::from(exec.error.is_some());
        for s in exec.results.steps.iter().filter(|s| s.error.is_some()) {
            tracing::info!("{} step {}: {}", stream.scenario.name, s.index, s.error.as_deref().unwrap_or(""));
        }
        if let Some(e) = &exec.error {
            tracing::warn!("{}: {e}", stream.scenario.name);
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

/// The stream indices this run covers.
fn slice_of(a: &FuzzArgs) -> Slice {
    let all = match (a.streams, a.runs) {
        (Some((start, end)), _) => Slice::range(start, Some(end)),
        (None, Some(n)) => Slice::range(0, Some(n)),
        (None, None) => Slice::range(0, None),
    };
    match a.partition {
        Some((k, n)) => all.part(k, n),
        None => all,
    }
}

/// What every guest of a run shares.
struct Shared<'a> {
    a: &'a FuzzArgs,
    cfg: &'a GenConfig,
    corpus: Option<Mutex<Corpus>>,
    /// Streams from this index on are not run: the lowest failing stream when stopping at
    /// the first finding, 0 when a guest failed.
    cut: AtomicU64,
    t0: Instant,
    budget: Option<Duration>,
    jobs: u64,
}

/// One stream as `summary.json` lists it.
#[derive(serde::Serialize)]
struct StreamRecord {
    index: u64,
    name: String,
    job: u64,
    steps: usize,
    ops: usize,
    /// The first finding's signature; `None`: passed.
    finding: Option<String>,
    step_errors: usize,
    ms: u64,
}

#[derive(Default)]
struct JobTotals {
    streams: Vec<StreamRecord>,
    rejected: u64,
    rebooted: u64,
    findings: u64,
}

pub fn run(a: FuzzArgs) -> Result<u8, Failure> {
    schedbox::interrupt::install();
    let topology = parse_topology(&a.guest.topology).map_err(|e| Failure::usage(e.into()))?;
    let staging = Staging::new(&[], &a.scheduler_files)?;
    let mut cfg = GenConfig::new(topology, a.scheduler.clone());
    cfg.max_steps = a.max_steps.max(1);
    cfg.max_ops = a.max_ops.max(1);
    let corpus = match &a.corpus {
        Some(dir) => Some(Mutex::new(Corpus::open(dir).map_err(Failure::usage)?)),
        None => None,
    };
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display())).map_err(Failure::usage)?;
    let slice = slice_of(&a);
    let budget = a.budget.or(if slice.end.is_some() { None } else { Some(Duration::from_secs(600)) });
    let shared =
        Shared { a: &a, cfg: &cfg, corpus, cut: AtomicU64::new(u64::MAX), t0: Instant::now(), budget, jobs: a.jobs };
    let results: Vec<Result<JobTotals, Failure>> = if a.jobs == 1 {
        vec![run_job(&shared, slice, 0, &staging)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..a.jobs)
                .map(|j| {
                    let (shared, staging) = (&shared, &staging);
                    scope.spawn(move || run_job(shared, slice.job(j, shared.jobs), j, staging))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Failure::guest(anyhow!("a fuzzing guest's thread panicked")))))
                .collect()
        })
    };
    let mut all = JobTotals::default();
    let mut first_error = None;
    for r in results {
        match r {
            Ok(t) => {
                all.streams.extend(t.streams);
                all.rejected += t.rejected;
                all.rebooted += t.rebooted;
                all.findings += t.findings;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    all.streams.sort_by_key(|s| s.index);
    let secs = shared.t0.elapsed().as_secs_f64();
    let summary = json!({
        "seed": a.seed,
        "scheduler": a.scheduler,
        "slice": { "start": slice.start, "end": slice.end, "step": slice.step },
        "jobs": a.jobs,
        "seconds": secs,
        "findings": all.findings,
        "streams": all.streams,
    });
    let written = serde_json::to_vec_pretty(&summary)
        .map_err(anyhow::Error::from)
        .and_then(|b| write_atomic(&a.out.join("summary.json"), &b));
    if let Err(e) = written {
        tracing::warn!("writing summary.json: {e:#}");
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let n = all.streams.len();
    let step_errors: usize = all.streams.iter().map(|s| s.step_errors).sum();
    eprintln!(
        "{n} streams in {secs:.0} s ({:.1} per minute, {} guest(s)), {} draws refused by the validator, {step_errors} step errors, {} reboots, {} finding(s)",
        n as f64 * 60.0 / secs.max(1e-9),
        a.jobs,
        all.rejected,
        all.rebooted,
        all.findings
    );
    Ok(u8::from(all.findings > 0))
}

/// One guest's share of the run: boots it, runs `slice`, powers it off.
fn run_job(sh: &Shared<'_>, slice: Slice, job: u64, staging: &Staging) -> Result<JobTotals, Failure> {
    let result = (|| {
        let mut events = Events::new(false);
        let mut guest = Guest::boot(&sh.a.guest, sh.cfg.topology, staging.files.clone(), &mut events)?;
        let baseline = guest.reset(&mut events)?;
        if !baseline.verified {
            guest.power_off();
            return Err(Failure::guest(anyhow!(
                "a freshly booted guest does not verify clean ({}): check the kernel and the agent",
                baseline.reason.unwrap_or_default()
            )));
        }
        let mut r = GuestRunner {
            guest,
            events,
            defaults: staging.defaults.clone(),
            grants: GuestGrants::default(),
            bounds: Bounds { starve_ns: sh.a.starve_ms.saturating_mul(1_000_000) },
            runs: 0,
            rebooted: 0,
        };
        let result = fuzz_loop(sh, slice, job, &mut r);
        r.guest.power_off();
        result.map(|mut t| {
            t.rebooted = r.rebooted;
            t
        })
    })();
    if result.is_err() {
        // Stop the other guests too.
        sh.cut.store(0, Ordering::SeqCst);
    }
    result
}

fn fuzz_loop(sh: &Shared<'_>, slice: Slice, job: u64, r: &mut GuestRunner) -> Result<JobTotals, Failure> {
    let a = sh.a;
    let tag = if sh.jobs > 1 { format!("[guest {}/{}] ", job + 1, sh.jobs) } else { String::new() };
    let mut t = JobTotals::default();
    for i in slice.iter() {
        if i >= sh.cut.load(Ordering::SeqCst) || sh.budget.is_some_and(|b| sh.t0.elapsed() >= b) {
            break;
        }
        if let Some(s) = schedbox::interrupt::received() {
            eprintln!("{tag}stopped by {}", schedbox::interrupt::name(s));
            break;
        }
        let mut pick = Rng::new(a.seed ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let g = {
            let corpus = sh.corpus.as_ref().map(|c| c.lock().unwrap_or_else(|p| p.into_inner()));
            match corpus.as_deref() {
                Some(c) if !c.streams.is_empty() && pick.chance(50) => {
                    let base = &c.streams[pick.below(c.streams.len() as u64) as usize];
                    mutate(sh.cfg, base, a.seed, i)
                }
                _ => generate(sh.cfg, a.seed, i),
            }
        };
        t.rejected += g.rejected;
        let mut stream = g.stream;
        stream.scenario.name = format!("fuzz-{}-{i}", a.seed);
        let started = Instant::now();
        let out = r.run_full(&stream).map_err(|e| Failure::guest(anyhow!("running {}: {e}", stream.scenario.name)))?;
        let ms = started.elapsed().as_millis() as u64;
        eprintln!(
            "{tag}{} ({} steps, {} ops): {} in {:.1} s{}",
            stream.scenario.name,
            stream.steps.len(),
            stream.op_count(),
            if out.findings.is_empty() { "ok".to_owned() } else { format!("FAILED ({})", out.findings[0].signature) },
            ms as f64 / 1e3,
            if out.step_errors > 0 { format!(", {} step error(s)", out.step_errors) } else { String::new() }
        );
        if let Some(c) = &sh.corpus {
            let new =
                c.lock().unwrap_or_else(|p| p.into_inner()).offer(&stream, &out.features).map_err(Failure::usage)?;
            if !new.is_empty() {
                eprintln!("{tag}  corpus: new {}", new.join(", "));
            }
        }
        t.streams.push(StreamRecord {
            index: i,
            name: stream.scenario.name.clone(),
            job,
            steps: stream.steps.len(),
            ops: stream.op_count(),
            finding: out.findings.first().map(|f| f.signature.clone()),
            step_errors: out.step_errors,
            ms,
        });
        if let Some(first) = out.findings.first() {
            if !a.keep_going {
                let before = sh.cut.fetch_min(i, Ordering::SeqCst);
                if before < i {
                    eprintln!("{tag}  stream {before} failed first: this one is left as found, not minimised");
                    break;
                }
            }
            t.findings += 1;
            report_finding(a, r, &stream, first, &out.findings, &tag).map_err(Failure::usage)?;
            if !a.keep_going {
                break;
            }
        }
    }
    Ok(t)
}

/// At most this many doublings of a minimal stream's holds (64 times as long).
const MAX_HOLD_DOUBLINGS: u32 = 6;

/// Tries per minimisation candidate after the failing stream failed again `hit` times
/// in `ran` re-runs: `tries` for a failure that reproduced every time (or was not re-run),
/// `ran` (at least `tries`) for a flaky one, `None` (not minimised) for one that never
/// failed again.
fn minimise_tries(hit: u32, ran: u32, tries: u32) -> Option<u32> {
    match (hit, ran) {
        (_, 0) => Some(tries.max(1)),
        (0, _) => None,
        (h, r) if h < r => Some(tries.max(r).max(1)),
        _ => Some(tries.max(1)),
    }
}

fn report_finding(
    a: &FuzzArgs,
    r: &mut GuestRunner,
    stream: &OpStream,
    first: &Finding,
    all: &[Finding],
    tag: &str,
) -> anyhow::Result<()> {
    let dir = a.out.join(&stream.scenario.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!("{tag}  {}: {}", first.oracle.name(), first.detail);
    write_atomic(&dir.join("original.json"), &serde_json::to_vec_pretty(stream)?)?;
    // Flaky? The failing stream again, --repro times.
    let (ohit, oran) = reproduction_rate(stream, &first.signature, r, a.repro);
    let flaky_original = ohit < oran;
    if flaky_original {
        eprintln!("{tag}  flaky: the stream failed the same way again in {ohit} of {oran} re-runs");
    }
    let tries = minimise_tries(ohit, oran, a.tries);
    let (minimal, runs, ms, exhausted) = if a.no_minimise || tries.is_none() {
        if !a.no_minimise {
            eprintln!("{tag}  not minimised: it did not fail again in {oran} re-runs");
        }
        (stream.clone(), 0, 0, false)
    } else {
        let tries = tries.unwrap_or(1);
        eprintln!(
            "{tag}  minimising ({} runs or {} s at most, {tries} tries per candidate)",
            a.minimise_runs,
            a.minimise_budget.as_secs()
        );
        let budget = Budget { runs: a.minimise_runs, time: a.minimise_budget, tries };
        let m = minimise(stream, &first.signature, r, &budget);
        (m.stream, m.runs, m.elapsed.as_millis() as u64, m.exhausted)
    };
    // A minimal stream that fails only sometimes, from a failure that failed every time,
    // gets longer holds until it fails every time again (a failure that needs time).
    let most = if flaky_original || minimal == *stream { 0 } else { MAX_HOLD_DOUBLINGS };
    let st = stabilise(&minimal, &first.signature, r, a.repro, most);
    if st.doublings > 0 {
        eprintln!(
            "{tag}  the minimal stream failed only sometimes: holds doubled {} times, it failed in {}/{} re-runs ({} runs)",
            st.doublings, st.hit, st.ran, st.runs
        );
    } else if most > 0 && st.hit < st.ran {
        eprintln!(
            "{tag}  the minimal stream failed in {}/{} re-runs and longer holds did not make it fail every time",
            st.hit, st.ran
        );
    }
    let (minimal, hit, ran, doublings) = (st.stream, st.hit, st.ran, st.doublings);
    let rate = |hit: u32, ran: u32| if ran == 0 { 0.0 } else { f64::from(hit) / f64::from(ran) };
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
        "minimise": { "runs": runs, "ms": ms, "budget_exhausted": exhausted, "tries": tries.unwrap_or(0) },
        "original_reproduced": { "failed": ohit, "runs": oran, "rate": rate(ohit, oran) },
        "reproduced": { "failed": hit, "runs": ran, "rate": rate(hit, ran), "hold_doublings": doublings },
        "flaky": flaky_original || hit < ran,
        "original": stream,
        "minimal": minimal,
    });
    write_atomic(&dir.join("report.json"), &serde_json::to_vec_pretty(&report)?)?;
    eprintln!(
        "{tag}  minimal: {} ops in {} steps (from {} ops in {} steps), {runs} runs in {:.1} s; reproduced {hit}/{ran}{}; replay: schedbox run {}",
        minimal.op_count(),
        minimal.steps.len(),
        stream.op_count(),
        stream.steps.len(),
        ms as f64 / 1e3,
        if flaky_original || hit < ran { " (flaky)" } else { "" },
        dir.join("minimal.json").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{parse_duration, slice_of, FuzzArgs};
    use clap::Parser;
    use std::time::Duration;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        fuzz: FuzzArgs,
    }

    fn streams(args: &[&str]) -> Result<Vec<u64>, String> {
        let cli =
            Cli::try_parse_from(std::iter::once("fuzz").chain(args.iter().copied())).map_err(|e| e.to_string())?;
        Ok(slice_of(&cli.fuzz).iter().take(1000).collect())
    }

    #[test]
    fn flaky_failures_get_more_tries_and_lost_ones_none() {
        use super::minimise_tries;
        assert_eq!(minimise_tries(3, 3, 1), Some(1), "reproduced every time");
        assert_eq!(minimise_tries(0, 0, 2), Some(2), "not re-run (--repro 0)");
        assert_eq!(minimise_tries(1, 3, 1), Some(3), "flaky: one try per re-run");
        assert_eq!(minimise_tries(2, 3, 5), Some(5), "--tries above that stays");
        assert_eq!(minimise_tries(0, 3, 1), None, "never failed again: not minimised");
    }

    #[test]
    fn stream_ranges_and_partitions_from_the_flags() {
        assert_eq!(streams(&["--runs", "5"]), Ok(vec![0, 1, 2, 3, 4]));
        assert_eq!(streams(&["--streams", "3..6"]), Ok(vec![3, 4, 5]));
        assert_eq!(streams(&["--streams", "0..7", "--partition", "2/3"]), Ok(vec![1, 4]));
        assert_eq!(streams(&["--runs", "7", "--partition", "3/3"]), Ok(vec![2, 5]));
        // Without an end (a time budget), a partition is unbounded.
        assert_eq!(streams(&["--partition", "1/4"]).map(|v| v[..3].to_vec()), Ok(vec![0, 4, 8]));
        // The partitions of a range run each stream once, whatever --jobs.
        let mut all: Vec<u64> = (1..=4)
            .flat_map(|k| streams(&["--streams", "10..30", "--partition", &format!("{k}/4")]).unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (10..30).collect::<Vec<_>>());
        assert!(streams(&["--runs", "5", "--streams", "0..5"]).is_err(), "--runs and --streams conflict");
        assert!(streams(&["--partition", "5/4"]).unwrap_err().contains("K/N"));
        assert!(streams(&["--streams", "9..3"]).unwrap_err().contains("empty"));
        assert!(streams(&["--jobs", "0"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("soon").is_err());
    }
}
