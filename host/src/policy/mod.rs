//! Third-party policy: what a scenario component may ask for, decided apart
//! from the sandbox mechanism that enforces the resource bounds.
//!
//! A [`Policy`] comes from a TOML file (format in the README) plus command-line
//! flags. It carries the sandbox bounds (fuel, memory, stack, op count,
//! argument size), bounds on the planned stream (steps, total hold time),
//! whether WASI is linked, and the authority rules: kernel reads and writes,
//! payload and scheduler names. Authority rules bind components that are not
//! trusted; trust is granted by SHA-256, by a signing key, by a builder's signed
//! source digest (see [`crate::signing`] and `docs/TRUST.md`), by scenario name
//! or to everything (`--trusted`). Every kind of trust grants the same thing.
//! Bounds bind every component.
//!
//! [`Policy::admit`] judges a planned, validated [`OpStream`] and returns every
//! violation with where it sits (scenario, step, op index) and what to do.

mod file;
mod rules;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::sandbox::{SandboxConfig, SandboxLimits};
use crate::signing::{self, Signature};
pub use rules::{Request, RequestKind, Requests, Violation};

/// A kernel-write target pattern untrusted components may write.
///
/// Written in the policy as `symbol:NAME`, `per-cpu:SYMBOL.FIELD`,
/// `task-field:FIELD`, `kva`, `direct` or `*`; a name part ending in `*`
/// matches every name with that prefix (`symbol:scx_*`, `per-cpu:runqueues.*`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct WriteRule(String);

impl WriteRule {
    /// Parses one pattern; rejects unknown kinds.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = s == "*"
            || s == "kva"
            || s == "direct"
            || s.strip_prefix("symbol:").is_some_and(|n| !n.is_empty())
            || s.strip_prefix("task-field:").is_some_and(|n| !n.is_empty())
            || s.strip_prefix("per-cpu:").is_some_and(|n| n == "*" || n.split_once('.').is_some());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "kernel write target {s:?}: write `symbol:NAME`, `per-cpu:SYMBOL.FIELD`, `task-field:FIELD`, `kva`, `direct` or `*`"
            ))
        }
    }

    /// Whether this rule allows writing a target spelt `kind:name` (or `kva`,
    /// `direct`), without its instance (`@cpu`, `@pid`).
    pub fn matches(&self, spelled: &str) -> bool {
        let pat = self.0.as_str();
        if pat == "*" {
            return true;
        }
        match (pat.split_once(':'), spelled.split_once(':')) {
            (Some((pk, pn)), Some((sk, sn))) if pk == sk => {
                glob(pn, sn)
                    || (pk == "per-cpu"
                        && pn
                            .split_once('.')
                            .zip(sn.split_once('.'))
                            .is_some_and(|((ps, pf), (ss, sf))| glob(ps, ss) && glob(pf, sf)))
            }
            (None, None) => pat == spelled,
            (None, Some((sk, _))) => pat == sk,
            _ => false,
        }
    }
}

/// `*` matches anything; a trailing `*` matches any suffix; otherwise equality.
fn glob(pattern: &str, s: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => s.starts_with(prefix),
        None => pattern == s,
    }
}

impl From<WriteRule> for String {
    fn from(r: WriteRule) -> String {
        r.0
    }
}

impl fmt::Display for WriteRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Default of `max-duration-ms`: the holds of one stream add up to at most 24 h
/// (one step's hold has its own hard ceiling, [`crate::validate::MAX_HOLD_MS`]).
pub const DEFAULT_MAX_DURATION_MS: u64 = 86_400_000;

/// Bounds on the planned stream (the sandbox's own bounds live in [`SandboxLimits`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StreamBounds {
    /// Most steps a stream may have.
    pub max_steps: Option<usize>,
    /// Most total hold time (the sum of every step's hold), ms [`DEFAULT_MAX_DURATION_MS`].
    pub max_duration_ms: Option<u64>,
}

impl Default for StreamBounds {
    fn default() -> Self {
        Self { max_steps: None, max_duration_ms: Some(DEFAULT_MAX_DURATION_MS) }
    }
}

/// Which components are trusted with kernel writes and any payload or scheduler.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Trust {
    /// Lower-case hex SHA-256 of trusted component files (or replayed stream files).
    pub sha256: Vec<String>,
    /// Scenario names (what `describe` returns; a component chooses its own name,
    /// so this is weaker than a digest).
    pub names: Vec<String>,
    /// Public keys (`ed25519:<hex>`): a component whose embedded signature
    /// verifies under one of them is trusted.
    pub keys: Vec<String>,
    /// Builder keys: their signature counts only with a source digest in `sources`.
    pub builders: Vec<String>,
    /// Reviewed source digests (`sha256:<hex>`, what `schedbox source-digest` prints).
    pub sources: Vec<String>,
    /// Everything is trusted (`--trusted`).
    pub all: bool,
}

/// The whole policy. [`Policy::default`] is what applies without `--policy`:
/// default sandbox bounds, WASI linked, kernel reads allowed and writes refused
/// for untrusted components, any payload and scheduler, nothing trusted.
#[derive(Clone, Debug, Serialize)]
pub struct Policy {
    /// Where it came from, for messages (`None`: built-in defaults).
    pub source: Option<PathBuf>,
    #[serde(skip)]
    pub limits: SandboxLimits,
    pub stream: StreamBounds,
    /// Link WASI (without authority) at all.
    pub wasi: bool,
    /// Untrusted components may read kernel memory and registers (reads, snapshots).
    pub kernel_reads: bool,
    /// Kernel targets untrusted components may write (empty: none).
    pub kernel_writes: Vec<WriteRule>,
    /// Payload names untrusted components may name (`None`: any).
    pub payloads: Option<Vec<String>>,
    /// Scheduler names untrusted components may name (`None`: any).
    pub schedulers: Option<Vec<String>>,
    pub trusted: Trust,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            source: None,
            limits: SandboxLimits::default(),
            stream: StreamBounds::default(),
            wasi: true,
            kernel_reads: true,
            kernel_writes: Vec::new(),
            payloads: None,
            schedulers: None,
            trusted: Trust::default(),
        }
    }
}

/// A policy file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read the policy {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("policy {path}: {message}\n(the format is described in the README, section \"Policy\")")]
    Parse { path: PathBuf, message: String },
}

/// Who is asking: the component (or replayed stream) file and its digest.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The file, for messages.
    pub label: &'a str,
    /// SHA-256 of the file's bytes.
    pub digest: &'a [u8; 32],
    /// The component's embedded signature, checked against its bytes (`None`: a
    /// replayed stream, which carries none).
    pub signature: Option<&'a Signature>,
}

/// Why a subject is trusted (which rule of the policy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrustedBy {
    /// `--trusted`.
    Flag,
    /// Its SHA-256 is in `sha256`.
    Sha256,
    /// Signed by this key, listed in `keys`.
    Key(String),
    /// Signed by `builder` (in `builders`) for `source` (in `sources`).
    Source { source: String, builder: String },
    /// Its scenario name is in `names`.
    Name,
}

impl fmt::Display for TrustedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag => f.write_str("flag"),
            Self::Sha256 => f.write_str("sha256"),
            Self::Key(k) => write!(f, "key {k}"),
            Self::Source { source, builder } => write!(f, "source {source}, built by {builder}"),
            Self::Name => f.write_str("name"),
        }
    }
}

/// A stream the policy refused: every violation, each with its place and fix.
#[derive(Debug, thiserror::Error)]
#[error("scenario {scenario:?} ({label}) is refused by the policy ({policy}):\n{}", list(.violations))]
pub struct Refused {
    pub scenario: String,
    pub label: String,
    pub policy: String,
    pub violations: Vec<Violation>,
}

fn list(v: &[Violation]) -> String {
    v.iter().map(|v| format!("  - {v}")).collect::<Vec<_>>().join("\n")
}

impl Policy {
    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| PolicyError::Read { path: path.to_owned(), source })?;
        let mut p = Self::from_toml(&text).map_err(|message| PolicyError::Parse { path: path.to_owned(), message })?;
        p.source = Some(path.to_owned());
        Ok(p)
    }

    /// Parses the TOML text of a policy; missing keys keep their defaults.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let f: file::PolicyFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut p = Self::default();
        let l = f.limits;
        let mib = |v: u64, shift: u32| usize::try_from(v.saturating_mul(1 << shift)).unwrap_or(usize::MAX);
        if let Some(v) = l.fuel {
            p.limits.fuel = v;
        }
        if let Some(v) = l.wall_ms {
            p.limits.wall_ms = v;
        }
        if let Some(v) = l.wasm_memory_mib {
            p.limits.memory_bytes = mib(v, 20);
        }
        if let Some(v) = l.stack_kib {
            p.limits.stack_bytes = mib(v, 10);
        }
        if let Some(v) = l.max_ops {
            p.limits.max_ops = v;
        }
        if let Some(v) = l.max_arg_kib {
            p.limits.max_arg_bytes = mib(v, 10);
        }
        p.stream = StreamBounds {
            max_steps: l.max_steps,
            max_duration_ms: Some(l.max_duration_ms.unwrap_or(DEFAULT_MAX_DURATION_MS)),
        };
        if let Some(v) = f.wasi.link {
            p.wasi = v;
        }
        if let Some(v) = f.kernel.reads {
            p.kernel_reads = v;
        }
        if let Some(w) = f.kernel.writes {
            p.kernel_writes = w.iter().map(|s| WriteRule::parse(s)).collect::<Result<_, _>>()?;
        }
        p.payloads = f.payloads.allow.map(nonempty_names("payloads")).transpose()?;
        p.schedulers = f.schedulers.allow.map(nonempty_names("schedulers")).transpose()?;
        for d in &f.trusted.sha256 {
            let d = d.trim().to_ascii_lowercase();
            if d.len() != 64 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "[trusted] sha256 {d:?} is not a SHA-256 in hex (64 digits; `schedbox inspect` prints it)"
                ));
            }
            p.trusted.sha256.push(d);
        }
        p.trusted.names = f.trusted.names;
        let keys = |list: &[String], field: &str| -> Result<Vec<String>, String> {
            list.iter()
                .map(|k| {
                    signing::parse_key(k).map(|k| signing::key_text(&k)).map_err(|e| format!("[trusted] {field}: {e}"))
                })
                .collect()
        };
        p.trusted.keys = keys(&f.trusted.keys, "keys")?;
        p.trusted.builders = keys(&f.trusted.builders, "builders")?;
        p.trusted.sources = f
            .trusted
            .sources
            .iter()
            .map(|d| {
                signing::parse_source(d)
                    .map(|d| signing::source_text(&d))
                    .map_err(|e| format!("[trusted] sources: {e}"))
            })
            .collect::<Result<_, _>>()?;
        match (p.trusted.builders.is_empty(), p.trusted.sources.is_empty()) {
            (true, false) => {
                return Err("[trusted] sources needs `builders`: a source digest counts only when a builder key \
                            the policy lists signed it (a component can claim any digest; see docs/TRUST.md)"
                    .into())
            }
            (false, true) => {
                return Err("[trusted] builders needs `sources`: a builder's signature trusts a component only \
                            for a reviewed source digest listed there (to trust whatever a key signs, list it in \
                            `keys`)"
                    .into())
            }
            _ => {}
        }
        Ok(p)
    }

    /// The policy's name in messages.
    pub fn describe_source(&self) -> String {
        self.source.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "the default policy".into())
    }

    /// A sandbox configuration with this policy's bounds and WASI choice.
    pub fn sandbox_config(&self, cache_root: Option<PathBuf>) -> SandboxConfig {
        SandboxConfig { limits: self.limits.clone(), wasi: self.wasi, cache_root, portable_code: false }
    }

    /// Why `subject` (whose stream calls itself `name`) is trusted, if it is.
    pub fn trusted_by(&self, subject: Subject<'_>, name: &str) -> Option<TrustedBy> {
        if self.trusted.all {
            Some(TrustedBy::Flag)
        } else if self.trusted.sha256.contains(&hex::encode(subject.digest)) {
            Some(TrustedBy::Sha256)
        } else if let Some(Signature::Valid { key, source }) = subject.signature {
            if self.trusted.keys.contains(key) {
                Some(TrustedBy::Key(key.clone()))
            } else if let Some(source) =
                source.as_ref().filter(|s| self.trusted.builders.contains(key) && self.trusted.sources.contains(s))
            {
                Some(TrustedBy::Source { source: source.clone(), builder: key.clone() })
            } else {
                self.trusted.names.iter().any(|n| n == name).then_some(TrustedBy::Name)
            }
        } else if self.trusted.names.iter().any(|n| n == name) {
            Some(TrustedBy::Name)
        } else {
            None
        }
    }

    /// Why `subject`'s signature does not make it trusted, when the policy trusts
    /// signatures or the component carries one (`None` otherwise).
    pub fn signature_note(&self, subject: Subject<'_>) -> Option<String> {
        let t = &self.trusted;
        let uses_keys = !t.keys.is_empty() || !t.builders.is_empty();
        Some(match subject.signature? {
            Signature::Unsigned if uses_keys => {
                "it is not signed (no schedbox:signature section): sign it with `schedbox sign --key` and a key \
                 listed in `keys` of [trusted]"
                    .to_owned()
            }
            Signature::Unsigned => return None,
            Signature::Valid { key, source } => {
                let mut why = format!("it is signed by {key}, which is not in `keys` of [trusted]");
                if t.builders.contains(key) {
                    match source {
                        Some(s) => why.push_str(&format!(
                            "; that builder key attests source {s}, which is not in `sources` of [trusted]"
                        )),
                        None => why.push_str("; that builder key attests no source digest (`schedbox sign --source`)"),
                    }
                }
                why
            }
            invalid @ Signature::Invalid { .. } => format!("its signature is not accepted: {invalid}"),
        })
    }

    /// What guest processes of `subject`'s run may ask of the host: kernel reads are
    /// refused when this policy sets `reads = false` and `subject` is not trusted.
    pub fn guest_grants(&self, subject: Subject<'_>, name: &str) -> crate::executor::GuestGrants {
        let refused = !self.kernel_reads && self.trusted_by(subject, name).is_none();
        crate::executor::GuestGrants {
            reads_refused: refused.then(|| {
                let note = self.signature_note(subject).map(|n| format!("; {n}")).unwrap_or_default();
                format!(
                    "{} sets `reads = false` in [kernel] and {} is not trusted; set `reads = true` there, \
                     or trust the component (its sha256 \"{}\" in `sha256` of [trusted], or --trusted){note}",
                    self.describe_source(),
                    subject.label,
                    hex::encode(subject.digest)
                )
            }),
        }
    }

    /// Judges a planned stream: `Ok` with what it asks for, or every violation.
    pub fn admit(&self, subject: Subject<'_>, stream: &crate::op_model::OpStream) -> Result<Requests, Box<Refused>> {
        let requests = Requests::of(stream);
        let trusted = self.trusted_by(subject, &stream.scenario.name).is_some();
        let violations = rules::judge(self, subject, &requests, trusted);
        if violations.is_empty() {
            Ok(requests)
        } else {
            Err(Box::new(Refused {
                scenario: stream.scenario.name.clone(),
                label: subject.label.to_owned(),
                policy: self.describe_source(),
                violations,
            }))
        }
    }
}

fn nonempty_names(section: &'static str) -> impl Fn(Vec<String>) -> Result<Vec<String>, String> {
    move |names| {
        if let Some(bad) = names.iter().find(|n| n.trim().is_empty()) {
            return Err(format!("[{section}] allow has an empty name {bad:?}"));
        }
        Ok(names)
    }
}

/// Whether `name` is in an allow list (`None`: everything; `*` matches any).
pub(crate) fn allowed(list: &Option<Vec<String>>, name: &str) -> bool {
    list.as_ref().is_none_or(|l| l.iter().any(|a| a == "*" || a == name))
}
