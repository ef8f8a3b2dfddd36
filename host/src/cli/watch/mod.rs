//! `schedbox watch`: boot once, run every scenario, then run a scenario again whenever
//! its component changes on disk — the authoring loop.
//!
//! A run that is still going when its component changes is abandoned at once (between
//! ops, or in its hold). Between runs the agent resets the guest and verifies it clean in
//! the guest (`Reset`: cgroups, tasks, scheduler, frozen cgroups); a reset that cannot be
//! verified reboots the guest and says why. A broken component — not a component, a
//! trap, a validation error, a refused import, a policy refusal — is reported and the
//! loop waits for the next version. Compiled components are reused across reloads: the
//! same bytes are never compiled twice (in memory, and in the on-disk cache).
//!
//! Exit: after `--max-runs` runs, or on SIGINT/SIGTERM/SIGHUP (the guest is powered off
//! first); 0 when every scenario's latest run passed, 1 otherwise, 2 for an environment
//! error (a guest that cannot boot).

mod build;
mod changes;
pub(super) mod events;
pub(super) mod guest;
mod signals;
mod view;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use clap::Args;
use schedbox::executor::{execute_observed, Execution, GuestGrants};
use schedbox::op_model::OpStream;
use schedbox::policy::{Policy, Subject};
use schedbox::results::{Outcome, StepStatus, Verdict};
use schedbox::sandbox::{digest, LoadedScenario, Sandbox};
use serde_json::json;

use super::staging::Staging;
use super::vm::GuestArgs;
use super::{Failure, SandboxArgs};
use changes::{Changes, Targets, Version};
use events::Events;
use guest::Guest;

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Scenario components (.wasm), or directories: every `*.wasm` directly inside.
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
    /// Build command (run with `sh -c` in the working directory) before the first run
    /// and whenever a source file changes, e.g. "cargo build --target wasm32-wasip2".
    #[arg(long, value_name = "CMD")]
    pub build: Option<String>,
    /// Source tree watched for --build (default: the working directory; `target/` and
    /// hidden directories are skipped).
    #[arg(long, value_name = "DIR", requires = "build")]
    pub source: Option<PathBuf>,
    /// Exit after N runs (a run: one component version loaded and run, or refused).
    #[arg(long, value_name = "N")]
    pub max_runs: Option<u64>,
    /// Print machine-readable events on stdout (`json`: one object per line).
    #[arg(long, value_name = "FORMAT", value_parser = ["json"])]
    pub events: Option<String>,
    /// Quiet time after the last change before reloading, ms.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub debounce_ms: u64,
    /// Stage a payload binary: NAME=PATH[:ARGS] (as for `run`).
    #[arg(long = "payload", value_name = "NAME=PATH[:ARGS]")]
    pub payloads: Vec<String>,
    /// Stage a sched_ext scheduler: NAME=PATH[:ARGS] (as for `run`).
    #[arg(long = "scheduler", value_name = "NAME=PATH[:ARGS]")]
    pub schedulers: Vec<String>,
    #[command(flatten)]
    pub guest: GuestArgs,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// The watcher's state.
struct Watch<'a> {
    a: &'a WatchArgs,
    sandbox: Sandbox,
    policy: Policy,
    staging: Staging,
    events: Events,
    changes: Changes,
    guest: Option<Guest>,
    /// Digests loaded before: loading them again costs no compile.
    seen: HashSet<[u8; 32]>,
    runs: u64,
    /// The latest verdict of each component.
    latest: BTreeMap<PathBuf, &'static str>,
    /// The guest awaits its reset (deferred to overlap the next load).
    dirty: bool,
    /// The version of each component last run: a change event that leaves the bytes as
    /// they were (a repeated rename event, a `touch`) does not run it again.
    versions: BTreeMap<PathBuf, Version>,
}

pub fn run(a: WatchArgs) -> Result<u8, Failure> {
    signals::install();
    let policy = a.sandbox.policy()?;
    let sandbox = a.sandbox.sandbox_with(&policy)?;
    let staging = Staging::new(&a.payloads, &a.schedulers)?;
    let targets = Targets::new(&a.scenarios).map_err(Failure::usage)?;
    let source = match (&a.build, &a.source) {
        (None, _) => None,
        (Some(_), Some(dir)) => Some(dir.clone()),
        (Some(_), None) => Some(std::env::current_dir().map_err(|e| Failure::usage(e.into()))?),
    };
    let changes = Changes::watch(targets, source).map_err(Failure::usage)?;
    let events = Events::new(a.events.is_some());
    let mut w = Watch {
        a: &a,
        sandbox,
        policy,
        staging,
        events,
        changes,
        guest: None,
        seen: HashSet::new(),
        runs: 0,
        latest: BTreeMap::new(),
        dirty: false,
        versions: BTreeMap::new(),
    };
    let result = w.main_loop();
    let reason = match signals::received() {
        Some(s) => signals::name(s).to_owned(),
        None if result.is_err() => "error".to_owned(),
        None => "max-runs".to_owned(),
    };
    w.events.emit("stopped", json!({ "reason": reason, "runs": w.runs }));
    if let Some(g) = w.guest.take() {
        eprintln!("powering the guest off");
        g.power_off();
    }
    result?;
    let failed = w.latest.values().any(|v| !matches!(*v, "pass" | "skip"));
    Ok(u8::from(failed))
}

impl Watch<'_> {
    fn done(&self) -> bool {
        signals::received().is_some() || self.a.max_runs.is_some_and(|n| self.runs >= n)
    }

    fn main_loop(&mut self) -> Result<(), Failure> {
        if let Some(cmd) = &self.a.build {
            build::run(cmd, &mut self.events, &mut || self.changes.mark_build_end());
            self.changes.forget_source_changes();
        }
        let mut queue: BTreeSet<PathBuf> = self.changes.targets().current();
        // What the initial build wrote is in the queue already.
        self.changes.components.clear();
        if queue.is_empty() {
            eprintln!("no component exists yet; waiting for one to appear");
        }
        let mut trigger: Option<Instant> = None;
        let debounce = Duration::from_millis(self.a.debounce_ms);
        let mut idle_said = false;
        while !self.done() {
            if let Some(path) = queue.pop_first() {
                idle_said = false;
                self.run_component(&path, trigger)?;
                continue;
            }
            if self.dirty && !self.changes.pending() {
                // The change that deferred the reset queued nothing (a failed build): reset now.
                self.dirty = false;
                if let Some(g) = self.guest.as_mut() {
                    g.reset(&mut self.events)?;
                }
            }
            if !idle_said {
                eprintln!("watching for changes (Ctrl-C to stop)");
                idle_said = true;
            }
            if !self.changes.pending() && !self.changes.wait(Duration::from_millis(100)) {
                continue;
            }
            self.changes.settle(debounce, || signals::received().is_some());
            if std::mem::take(&mut self.changes.source_changed) {
                if let Some(cmd) = &self.a.build {
                    build::run(cmd, &mut self.events, &mut || self.changes.mark_build_end());
                    self.changes.forget_source_changes();
                    // The components the build rewrote, settled.
                    self.changes.settle(debounce, || signals::received().is_some());
                }
            }
            trigger = self.changes.first.take();
            for path in std::mem::take(&mut self.changes.components) {
                if self.versions.get(&path).is_some_and(|v| v.still(&path)) {
                    tracing::info!("{}: changed on disk but holds the same bytes; not run again", path.display());
                } else {
                    queue.insert(path);
                }
            }
        }
        Ok(())
    }

    /// Loads, plans and runs one component version, then resets the guest — at once when
    /// nothing else waits, else overlapped with the next version's load (see [`Self::prepare_next`]).
    fn run_component(&mut self, path: &Path, trigger: Option<Instant>) -> Result<(), Failure> {
        self.runs += 1;
        let shown = path.display().to_string();
        let p = match self.prepare_next(path)? {
            Ok(p) => p,
            Err(r) => {
                self.refuse(path, r.sha.as_deref(), r.stage, r.message);
                return Ok(());
            }
        };
        let version = p.version.clone();
        self.versions.insert(path.to_owned(), p.version);
        let (sha_hex, loaded, stream, grants, load_ms, plan_ms) =
            (p.sha_hex, p.loaded, p.stream, p.grants, p.load_ms, p.plan_ms);
        let cache = if !self.seen.insert(p.sha) {
            "memory"
        } else if loaded.from_cache {
            "disk"
        } else {
            "compiled"
        };
        self.ensure_guest(&stream)?;
        if signals::received().is_some() {
            return Ok(());
        }
        let name = stream.scenario.name.clone();
        eprintln!(
            "▶ {name} ({shown}, sha256 {}…): {cache} in {load_ms:.1} ms, planned in {plan_ms:.1} ms",
            &sha_hex[..12]
        );
        self.events.emit(
            "run-started",
            json!({
                "scenario": name, "path": shown, "component_sha": sha_hex, "cache": cache,
                "load_ms": load_ms, "plan_ms": plan_ms,
            }),
        );
        let guest = self.guest.as_mut().expect("ensure_guest booted one");
        let exec = {
            let mut live = view::LiveRun::new(
                &name,
                path,
                &mut self.events,
                &mut self.changes,
                &version,
                trigger,
                stream.steps.len(),
            );
            execute_observed(guest.machine(), &stream, &self.staging.defaults, &grants, &mut live)
        };
        let (verdict, messages) = judge(&self.sandbox, &loaded, &name, &exec);
        self.report(path, &name, verdict, &messages, &exec);
        if signals::received().is_some() {
            return Ok(());
        }
        self.changes.poll();
        if self.changes.pending() && !self.done() {
            // The next version is already waiting: reset while it loads.
            self.dirty = true;
            return Ok(());
        }
        let guest = self.guest.as_mut().expect("ensure_guest booted one");
        guest.reset(&mut self.events)?;
        Ok(())
    }

    /// Loads and plans `path`; when the guest awaits its reset, the reset runs in the guest
    /// meanwhile (the host compiles while the agent cleans). `Err` only when the guest
    /// could not be reset or rebooted.
    fn prepare_next(&mut self, path: &Path) -> Result<Result<Prepared, Refusal>, Failure> {
        let Watch { sandbox, policy, staging, guest, events, dirty, .. } = self;
        let guest = match guest.as_mut() {
            Some(g) if std::mem::take(dirty) => g,
            _ => return Ok(prepare(sandbox, policy, staging, path)),
        };
        let (prepared, reset) = std::thread::scope(|s| {
            let loader = s.spawn(|| prepare(sandbox, policy, staging, path));
            let reset = guest.reset(events);
            (loader.join(), reset)
        });
        reset?;
        Ok(prepared.unwrap_or_else(|_| {
            Err(Refusal { sha: None, stage: "load", message: "loading the component panicked".into() })
        }))
    }

    /// Boots a guest with `stream`'s topology unless the current one has it.
    fn ensure_guest(&mut self, stream: &OpStream) -> Result<(), Failure> {
        let want = stream.scenario.topology;
        if self.guest.as_ref().is_some_and(|g| g.topology == want) {
            return Ok(());
        }
        if let Some(old) = self.guest.take() {
            eprintln!("scenario {:?} needs a {want} guest, not {}: rebooting", stream.scenario.name, old.topology);
            old.power_off();
        }
        let mut g = Guest::boot(&self.a.guest, want, self.staging.files.clone(), &mut self.events)?;
        // A fresh guest is clean by construction; verifying it is the baseline (and cheap).
        let baseline = g.reset(&mut self.events)?;
        if !baseline.verified {
            return Err(Failure::guest(anyhow!(
                "a freshly booted guest does not verify clean ({}): check the kernel and the agent",
                baseline.reason.unwrap_or_default()
            )));
        }
        self.guest = Some(g);
        Ok(())
    }

    /// A component that cannot run: say why, remember it failed, keep going.
    fn refuse(&mut self, path: &Path, sha: Option<&str>, stage: &str, message: String) {
        let shown = schedbox::untrusted::escape(&message);
        eprintln!("✗ {} ({stage}): {shown}\n  waiting for the next version", path.display());
        self.events.emit(
            "error",
            json!({ "path": path.display().to_string(), "component_sha": sha, "stage": stage, "message": message }),
        );
        self.latest.insert(path.to_owned(), "error");
    }

    fn report(&mut self, path: &Path, name: &str, verdict: &'static str, messages: &[String], exec: &Execution) {
        let steps: Vec<_> = exec
            .results
            .steps
            .iter()
            .map(|s| {
                let status = match s.status {
                    StepStatus::Passed => "passed",
                    StepStatus::Failed => "failed",
                    StepStatus::Skipped => "skipped",
                };
                json!({ "index": s.index, "status": status, "error": s.error, "duration_ms": s.duration_ms })
            })
            .collect();
        let ms = exec.duration.as_millis() as u64;
        eprintln!("{:<9} {} ({ms} ms)", verdict.to_uppercase(), schedbox::untrusted::escape(name));
        for m in messages {
            eprintln!("    - {}", schedbox::untrusted::escape(m));
        }
        self.events.emit(
            "verdict",
            json!({
                "scenario": name, "path": path.display().to_string(), "verdict": verdict,
                "messages": messages, "steps": steps, "duration_ms": ms,
            }),
        );
        self.latest.insert(path.to_owned(), verdict);
    }
}

/// A component version loaded and planned, ready to run.
struct Prepared {
    version: Version,
    sha: [u8; 32],
    sha_hex: String,
    loaded: Arc<LoadedScenario>,
    stream: OpStream,
    /// What its guest processes may ask of the host.
    grants: GuestGrants,
    load_ms: f64,
    plan_ms: f64,
}

/// Why a component version cannot run.
struct Refusal {
    sha: Option<String>,
    stage: &'static str,
    message: String,
}

/// Reads, loads (compiled-component cache first), plans and admits `path`.
fn prepare(sandbox: &Sandbox, policy: &Policy, staging: &Staging, path: &Path) -> Result<Prepared, Refusal> {
    let shown = path.display().to_string();
    let mut version = Version::stat(path);
    let bytes = std::fs::read(path).map_err(|e| Refusal {
        sha: None,
        stage: "read",
        message: if e.kind() == std::io::ErrorKind::NotFound {
            format!("{shown} was removed; waiting for it to come back")
        } else {
            format!("cannot read {shown}: {e}")
        },
    })?;
    let sha = digest(&bytes);
    version.sha = sha;
    let sha_hex = hex::encode(sha);
    let refuse = |stage, message: String| Refusal { sha: Some(sha_hex.clone()), stage, message };
    let t0 = Instant::now();
    let loaded = sandbox.load_bytes(&shown, &bytes).map_err(|e| refuse("load", e.to_string()))?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let t1 = Instant::now();
    let stream = sandbox.plan(&loaded).map_err(|e| refuse("plan", e.to_string()))?.stream;
    let subject = Subject { label: &shown, digest: &sha, signature: Some(&loaded.signature) };
    policy.admit(subject, &stream).map_err(|e| refuse("policy", e.to_string()))?;
    let grants = policy.guest_grants(subject, &stream.scenario.name);
    if let Some(why) = staging.missing(&stream, "restart watch with") {
        return Err(refuse("staging", why));
    }
    let plan_ms = t1.elapsed().as_secs_f64() * 1e3;
    Ok(Prepared { version, sha, sha_hex, loaded, stream, grants, load_ms, plan_ms })
}

/// The verdict of a run: its `check`'s, or why there is none.
fn judge(sandbox: &Sandbox, loaded: &LoadedScenario, name: &str, exec: &Execution) -> (&'static str, Vec<String>) {
    if exec.cancelled {
        let why = match signals::received() {
            Some(s) => format!("stopped by {}", signals::name(s)),
            None => "its component changed while it ran; the new version runs next".to_owned(),
        };
        return ("cancelled", vec![why]);
    }
    let (verdict, mut messages) = match &exec.error {
        Some(e) => ("error", vec![e.clone()]),
        None => match sandbox.check(loaded, name, exec.results.clone()) {
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
    };
    for s in &exec.results.steps {
        if let (StepStatus::Failed, Some(e)) = (s.status, &s.error) {
            if !messages.iter().any(|m| m.contains(e.as_str())) {
                messages.push(e.clone());
            }
        }
    }
    (verdict, messages)
}
