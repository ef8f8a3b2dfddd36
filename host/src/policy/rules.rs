//! What a stream asks for ([`Requests`]) and the rules that judge it.

use std::fmt;

use serde::Serialize;

use super::{allowed, Policy, Subject};
use crate::executor::hold_duration;
use crate::op_model::{KernelTarget, Op, OpStream, Section};

/// One authority a stream asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "what", rename_all = "kebab-case")]
pub enum RequestKind {
    /// A kernel write, its target in the policy's spelling (`symbol:NAME`, ...).
    KernelWrite(String),
    /// A kernel read, register snapshot or watchpoint (`symbol:NAME`, `snapshot`, ...).
    KernelRead(String),
    Payload(String),
    Scheduler(String),
}

/// Where a request sits: `describe`, or an op of the Backdrop or a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Request {
    /// `None` when `describe` declares it.
    pub section: Option<Section>,
    pub op_index: Option<usize>,
    /// The op's import name (`write-kernel-cold`, ...).
    pub op: Option<&'static str>,
    #[serde(flatten)]
    pub kind: RequestKind,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.section, self.op_index, self.op) {
            (Some(s), Some(i), Some(op)) => write!(f, "{s}, op {i} ({op})"),
            _ => f.write_str("describe()"),
        }
    }
}

/// Everything a planned stream asks for, with the totals the bounds judge.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Requests {
    pub requests: Vec<Request>,
    pub ops: usize,
    pub steps: usize,
    /// Sum of every step's hold, ms.
    pub duration_ms: u64,
}

/// The policy's spelling of a kernel target, matched by [`super::WriteRule`].
pub fn target_spelling(t: &KernelTarget) -> String {
    match t {
        KernelTarget::Symbol(s) => format!("symbol:{s}"),
        KernelTarget::Direct(a) => format!("direct:{a:#x}"),
        KernelTarget::Kva(a) => format!("kva:{a:#x}"),
        KernelTarget::PerCpuField { symbol, field, cpu } => format!("per-cpu:{symbol}.{field}@{cpu}"),
        KernelTarget::TaskField { field, pid, .. } => format!("task-field:{field}@{pid}"),
    }
}

impl Requests {
    /// Collects what `stream` asks for: `describe`'s payloads and schedulers,
    /// and every kernel, payload and scheduler op with its place.
    pub fn of(stream: &OpStream) -> Self {
        let mut requests = Vec::new();
        let declared = |kind| Request { section: None, op_index: None, op: None, kind };
        requests.extend(stream.scenario.payloads.iter().map(|p| declared(RequestKind::Payload(p.clone()))));
        requests.extend(stream.scenario.schedulers.iter().map(|s| declared(RequestKind::Scheduler(s.clone()))));
        for (section, i, op) in stream.ops() {
            let at = |kind| Request { section: Some(section), op_index: Some(i), op: Some(op.kind().wit_name()), kind };
            match op {
                Op::WriteKernelHot { writes } | Op::WriteKernelCold { writes } => {
                    requests.extend(writes.iter().map(|w| at(RequestKind::KernelWrite(target_spelling(&w.target)))))
                }
                Op::ReadKernelHot { target, .. } | Op::ReadKernelCold { target, .. } => {
                    requests.push(at(RequestKind::KernelRead(target_spelling(target))))
                }
                Op::CaptureSnapshot { name } => requests.push(at(RequestKind::KernelRead(format!("snapshot:{name}")))),
                Op::WatchSnapshot { symbol } => requests.push(at(RequestKind::KernelRead(format!("watch:{symbol}")))),
                Op::RunPayload { name, .. } | Op::WaitPayload { name, .. } | Op::KillPayload { name, .. } => {
                    requests.push(at(RequestKind::Payload(name.clone())))
                }
                Op::AttachScheduler { scheduler } | Op::ReplaceScheduler { scheduler } => {
                    requests.push(at(RequestKind::Scheduler(scheduler.clone())))
                }
                _ => {}
            }
        }
        let duration_ms = stream
            .steps
            .iter()
            .map(|s| hold_duration(&s.hold, stream.scenario.duration_ms).as_millis() as u64)
            .fold(0u64, u64::saturating_add);
        Self { requests, ops: stream.op_count(), steps: stream.steps.len(), duration_ms }
    }

    /// The kernel writes, in stream order.
    pub fn kernel_writes(&self) -> impl Iterator<Item = &Request> {
        self.requests.iter().filter(|r| matches!(r.kind, RequestKind::KernelWrite(_)))
    }
}

/// One thing the policy refuses, where it is and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// `None` for a bound on the whole stream.
    pub at: Option<Request>,
    pub what: String,
    pub fix: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = &self.at {
            write!(f, "{at}: ")?;
        }
        write!(f, "{}; {}", self.what, self.fix)
    }
}

/// Every violation of `p` by `r`; authority rules only when not `trusted`.
pub(super) fn judge(p: &Policy, subject: Subject<'_>, r: &Requests, trusted: bool) -> Vec<Violation> {
    let mut out = Vec::new();
    let bound = |what: String, fix: String| Violation { at: None, what, fix };
    // The sandbox stops a component at the op bound while it runs; a replayed
    // stream meets it here.
    if r.ops > p.limits.max_ops {
        out.push(bound(
            format!("the op-stream bound: {} ops, at most {} allowed", r.ops, p.limits.max_ops),
            "raise `max-ops` in [limits] of the policy (or --max-ops)".into(),
        ));
    }
    if let Some(max) = p.stream.max_steps {
        if r.steps > max {
            out.push(bound(
                format!("the steps bound: {} steps, at most {max} allowed", r.steps),
                "split the scenario, or raise `max-steps` in [limits] of the policy (or --max-steps)".into(),
            ));
        }
    }
    if let Some(max) = p.stream.max_duration_ms {
        if r.duration_ms > max {
            out.push(bound(
                format!("the duration bound: the holds add up to {} ms, at most {max} ms allowed", r.duration_ms),
                "shorten the holds, or raise `max-duration-ms` in [limits] of the policy (or --max-duration-ms)".into(),
            ));
        }
    }
    if trusted {
        return out;
    }
    let mut trust = format!(
        "if you trust this component, add its sha256 \"{}\" to `sha256` in [trusted] of the policy, or pass --trusted",
        hex::encode(subject.digest)
    );
    if let Some(note) = p.signature_note(subject) {
        trust.push_str(&format!(" ({note})"));
    }
    for req in &r.requests {
        let (what, allow) = match &req.kind {
            RequestKind::KernelWrite(t) => {
                let rule_form = t.split('@').next().unwrap_or(t);
                if p.kernel_writes.iter().any(|w| w.matches(rule_form)) {
                    continue;
                }
                let targets = if p.kernel_writes.is_empty() { "none".into() } else { join(&p.kernel_writes) };
                (
                    format!(
                        "kernel write to {t} is refused for components not marked trusted (allowed targets: {targets})"
                    ),
                    format!("or allow the target in `writes` of [kernel] (e.g. \"{rule_form}\")"),
                )
            }
            RequestKind::KernelRead(t) if !p.kernel_reads => (
                format!("kernel read {t} is refused: the policy sets `reads = false` in [kernel]"),
                "or set `reads = true` in [kernel]".into(),
            ),
            RequestKind::Payload(n) if !allowed(&p.payloads, n) => (
                format!("payload {n:?} is not in `allow` of [payloads] in the policy"),
                format!("or add \"{n}\" to `allow` of [payloads]"),
            ),
            RequestKind::Scheduler(n) if !allowed(&p.schedulers, n) => (
                format!("scheduler {n:?} is not in `allow` of [schedulers] in the policy"),
                format!("or add \"{n}\" to `allow` of [schedulers]"),
            ),
            _ => continue,
        };
        out.push(Violation { at: Some(req.clone()), what, fix: format!("{trust}, {allow}") });
    }
    out
}

fn join<T: fmt::Display>(v: &[T]) -> String {
    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
}
