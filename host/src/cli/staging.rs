//! `--payload` and `--scheduler`: what `run` and `watch` stage into every guest
//! they boot, and whether a scenario's needs are met by it.

use std::path::PathBuf;

use anyhow::{bail, Context};
use schedbox::executor::PayloadDefaults;
use schedbox::machine::BUILT_IN_SCHEDULERS;
use schedbox::op_model::OpStream;

use super::Failure;

/// `NAME=PATH[:ARGS]`.
#[derive(Clone, Debug)]
pub(super) struct Staged {
    pub(super) name: String,
    pub(super) path: PathBuf,
    pub(super) args: Vec<String>,
}

pub(super) fn parse_staged(flag: &str, s: &str) -> anyhow::Result<Staged> {
    let (name, rest) = s.split_once('=').with_context(|| format!("--{flag} {s:?}: write NAME=PATH[:ARGS]"))?;
    let (path, args) = match rest.split_once(':') {
        Some((p, a)) => (p, a.split_whitespace().map(str::to_owned).collect()),
        None => (rest, Vec::new()),
    };
    let path = PathBuf::from(path);
    if !path.is_file() {
        bail!("--{flag} {name}: {} is not a file", path.display());
    }
    if name.is_empty() || name.contains('/') {
        bail!("--{flag} {s:?}: NAME must be a plain name");
    }
    Ok(Staged { name: name.to_owned(), path, args })
}

/// `--scheduler NAME[:ARGS]` without a path: a scheduler installed by `schedbox scheduler
/// install` (`bpfland` or `scx_bpfland` finds `scx_bpfland`), staged as NAME.
fn installed_scheduler(s: &str) -> anyhow::Result<Staged> {
    let (name, args) = match s.split_once(':') {
        Some((n, a)) => (n, a.split_whitespace().map(str::to_owned).collect()),
        None => (s, Vec::new()),
    };
    if name.is_empty() || name.contains('/') {
        bail!("--scheduler {s:?}: write NAME[:ARGS] (an installed scheduler) or NAME=PATH[:ARGS]");
    }
    let path = super::scheduler::find_installed(name).with_context(|| {
        let have = super::scheduler::installed().unwrap_or_default();
        let have: Vec<&str> = have.iter().map(|(n, _)| n.as_str()).collect();
        format!(
            "--scheduler {name}: no installed scheduler is named {name:?} (installed: {}); install one with \
             `schedbox scheduler install scx_{name}` or pass --scheduler {name}=PATH",
            if have.is_empty() { "none".to_owned() } else { have.join(", ") }
        )
    })?;
    Ok(Staged { name: name.to_owned(), path, args })
}

/// Payloads and schedulers staged into every guest a command boots.
pub(super) struct Staging {
    payloads: Vec<Staged>,
    schedulers: Vec<Staged>,
    /// (guest path, host path) of every staged file.
    pub(super) files: Vec<(String, PathBuf)>,
    /// Each payload's default arguments.
    pub(super) defaults: PayloadDefaults,
    /// Holds the schedulers' argument files (they travel as files beside them) for
    /// every boot, reboots included.
    _args_dir: tempfile::TempDir,
}

impl Staging {
    /// Parses the `--payload` and `--scheduler` values and writes the schedulers'
    /// argument files.
    pub(super) fn new(payloads: &[String], schedulers: &[String]) -> Result<Self, Failure> {
        let parse = |flag, list: &[String]| -> Result<Vec<Staged>, Failure> {
            list.iter().map(|s| parse_staged(flag, s)).collect::<Result<_, _>>().map_err(Failure::usage)
        };
        let payloads = parse("payload", payloads)?;
        let schedulers = schedulers
            .iter()
            .map(|s| if s.contains('=') { parse_staged("scheduler", s) } else { installed_scheduler(s) })
            .collect::<Result<Vec<_>, _>>()
            .map_err(Failure::usage)?;
        let defaults = payloads.iter().map(|s| (s.name.clone(), s.args.clone())).collect();
        let mut files: Vec<(String, PathBuf)> =
            payloads.iter().map(|s| (format!("/staging/payloads/{}", s.name), s.path.clone())).collect();
        let args_dir = tempfile::tempdir().map_err(|e| Failure::usage(e.into()))?;
        for s in &schedulers {
            files.push((format!("/staging/schedulers/{}/{}", s.name, s.name), s.path.clone()));
            let args = args_dir.path().join(&s.name);
            std::fs::write(&args, s.args.join(" ")).map_err(|e| Failure::usage(e.into()))?;
            files.push((format!("/staging/schedulers/{}/args", s.name), args));
        }
        Ok(Self { payloads, schedulers, files, defaults, _args_dir: args_dir })
    }

    /// Why `stream` cannot run for want of a payload; `fix` says how to stage one
    /// (e.g. "pass").
    pub(super) fn missing_payload(&self, stream: &OpStream, fix: &str) -> Option<String> {
        let name = &stream.scenario.name;
        let p = stream.scenario.payloads.iter().find(|p| !self.payloads.iter().any(|s| &s.name == *p))?;
        Some(format!("scenario {name:?} needs payload {p:?}: {fix} --payload {p}=PATH"))
    }

    /// Why `stream` cannot run for want of a scheduler (not built in, not staged).
    pub(super) fn missing_scheduler(&self, stream: &OpStream, fix: &str) -> Option<String> {
        let name = &stream.scenario.name;
        let known = |n: &str| BUILT_IN_SCHEDULERS.contains(&n) || self.schedulers.iter().any(|s| s.name == n);
        let s = stream.scenario.schedulers.iter().find(|s| !known(s))?;
        Some(format!(
            "scenario {name:?} needs scheduler {s:?}: {fix} --scheduler {s}=PATH (built in: {})",
            BUILT_IN_SCHEDULERS.join(", ")
        ))
    }

    /// Why `stream` cannot run with what is staged, if it cannot.
    pub(super) fn missing(&self, stream: &OpStream, fix: &str) -> Option<String> {
        self.missing_payload(stream, fix).or_else(|| self.missing_scheduler(stream, fix))
    }
}
