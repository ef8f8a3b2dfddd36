//! `schedbox inspect`: what a component is, asks for, and whether it may run.

use std::path::PathBuf;

use clap::Args;
use schedbox::policy::{Request, RequestKind, Requests, Subject, TrustedBy, Violation};
use schedbox::sandbox::imports;

use super::{Failure, SandboxArgs};

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Scenario component (.wasm).
    pub scenario: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

#[derive(serde::Serialize)]
struct Report {
    component: String,
    digest: String,
    /// The embedded signature, checked against the component's bytes.
    signature: schedbox::signing::Signature,
    contract: Option<String>,
    imports: Vec<schedbox::sandbox::ImportVerdict>,
    exports: Vec<String>,
    describe: Option<schedbox::op_model::ScenarioInfo>,
    /// What the planned stream asks for, judged against the policy.
    policy: PolicyView,
    allowed: bool,
    reason: Option<String>,
}

/// The component's requests against the policy (`schedbox inspect` only).
#[derive(serde::Serialize)]
struct PolicyView {
    source: String,
    trusted: Option<TrustedBy>,
    /// Why the signature does not make it trusted (when the policy trusts keys or it is signed).
    #[serde(skip_serializing_if = "Option::is_none")]
    signature_note: Option<String>,
    wasi_linked: bool,
    /// The WASI interfaces linked (empty when WASI is not), each with what it grants.
    wasi_interfaces: Vec<WasiInterface>,
    bounds: Vec<BoundView>,
    requests: Vec<Request>,
    violations: Vec<Violation>,
}

#[derive(serde::Serialize)]
struct WasiInterface {
    name: &'static str,
    grants: &'static str,
}

/// One bound: what the planned stream uses (`None`: not known before it runs) and the limit.
#[derive(serde::Serialize)]
struct BoundView {
    name: &'static str,
    uses: Option<u64>,
    limit: Option<u64>,
}

pub fn run(a: InspectArgs) -> Result<u8, Failure> {
    let policy = a.sandbox.policy()?;
    let sandbox = a.sandbox.sandbox_with(&policy)?;
    let bytes = std::fs::read(&a.scenario)
        .map_err(|e| Failure::usage(anyhow::anyhow!("cannot read {}: {e}", a.scenario.display())))?;
    let label = a.scenario.display().to_string();
    let imports = sandbox.judge_imports(&label, &bytes)?;
    let exports = sandbox.export_names(&label, &bytes)?;
    let contract = imports.iter().find_map(|i| {
        i.name.strip_prefix("schedbox:scenario/").and_then(|r| r.split_once('@')).map(|(_, v)| v.to_owned())
    });
    let (describe, mut reason) = match sandbox.load_bytes(&label, &bytes).and_then(|l| sandbox.describe(&l)) {
        Ok(info) => (Some(info), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let key = schedbox::sandbox::digest(&bytes);
    let signature = schedbox::signing::check(&bytes);
    let subject = Subject { label: &label, digest: &key, signature: Some(&signature) };
    let mut view = PolicyView {
        source: policy.describe_source(),
        trusted: describe.as_ref().and_then(|d| policy.trusted_by(subject, &d.name)),
        signature_note: None,
        wasi_linked: policy.wasi,
        wasi_interfaces: if policy.wasi {
            imports::WASI_ALLOWED
                .iter()
                .chain(imports::WASI_INERT)
                .map(|&(name, grants)| WasiInterface { name, grants })
                .collect()
        } else {
            Vec::new()
        },
        bounds: Vec::new(),
        requests: Vec::new(),
        violations: Vec::new(),
    };
    if view.trusted.is_none() {
        view.signature_note = policy.signature_note(subject);
    }
    let mut requests = None;
    let mut setup_cgroups = None;
    if reason.is_none() {
        // Planning runs `run` in the sandbox: the only way to see the ops it emits.
        match sandbox.load_bytes(&label, &bytes).and_then(|l| sandbox.plan(&l)) {
            Ok(plan) => {
                let r = Requests::of(&plan.stream);
                let s = &plan.stream;
                setup_cgroups =
                    Some((s.backdrop.cgroups.len() + s.steps.iter().map(|s| s.setup.len()).sum::<usize>()) as u64);
                if let Err(refused) = policy.admit(subject, &plan.stream) {
                    view.violations = refused.violations.clone();
                    reason = Some(refused.to_string());
                }
                requests = Some(r);
            }
            Err(e) => reason = Some(e.to_string()),
        }
    }
    let l = &policy.limits;
    let r = requests.as_ref();
    let bound = |name, uses, limit| BoundView { name, uses, limit };
    view.bounds = vec![
        bound("fuel per call", None, Some(l.fuel)),
        bound("wall clock per call (ms)", None, Some(l.wall_ms)),
        bound("wasm memory (bytes)", None, Some(l.memory_bytes as u64)),
        bound("wasm stack (bytes)", None, Some(l.stack_bytes as u64)),
        bound("argument bytes per call", None, Some(l.max_arg_bytes as u64)),
        bound("ops", r.map(|r| r.ops as u64), Some(l.max_ops as u64)),
        bound(
            "steps",
            r.map(|r| r.steps as u64),
            Some(policy.stream.max_steps.map_or(l.max_ops, |v| v.min(l.max_ops)) as u64),
        ),
        bound("setup cgroups", setup_cgroups, Some(l.max_ops as u64)),
        bound("duration (ms)", r.map(|r| r.duration_ms), policy.stream.max_duration_ms),
    ];
    view.requests = requests.map(|r| r.requests).unwrap_or_default();
    let report = Report {
        component: label,
        digest: hex::encode(schedbox::sandbox::digest(&bytes)),
        signature: signature.clone(),
        contract,
        allowed: reason.is_none(),
        policy: view,
        imports,
        exports,
        describe,
        reason,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| Failure::usage(e.into()))?);
    } else {
        println!("component {}", report.component);
        println!("  sha256   {}", report.digest);
        println!("  signature {}", report.signature);
        println!(
            "  contract {}",
            report
                .contract
                .as_deref()
                .map(|v| format!("schedbox:scenario@{v}"))
                .unwrap_or_else(|| "none (does not import the schedbox contract)".into())
        );
        println!("imports");
        for i in &report.imports {
            let mark = if i.allowed { "ok     " } else { "REFUSED" };
            let why = if i.allowed { &i.grants } else { &i.reason };
            let why = if why.is_empty() { String::new() } else { format!(" — {why}") };
            println!("  {mark} {}{why}", i.name);
        }
        println!("exports");
        for e in &report.exports {
            println!("  {e}");
        }
        if let Some(d) = &report.describe {
            println!("describe");
            println!("  name      {}", d.name);
            println!("  summary   {}", schedbox::untrusted::escape(&d.summary));
            println!("  topology  {} ({} vCPUs)", d.topology, d.topology.vcpus());
            println!("  duration  {} ms", d.duration_ms);
            println!("  features  {:?}", d.kernel_features);
            println!("  payloads  {:?}", d.payloads);
            println!("  schedulers {:?}", d.schedulers);
        }
        print_policy(&report.policy);
        match &report.reason {
            None => println!("verdict: allowed to run"),
            Some(r) => println!("verdict: NOT allowed to run: {r}"),
        }
    }
    Ok(if report.allowed { 0 } else { 1 })
}

fn print_policy(p: &PolicyView) {
    let trust = match &p.trusted {
        Some(by) => format!("trusted ({by})"),
        None => "not trusted".into(),
    };
    println!("policy {} — {trust}, WASI {}", p.source, if p.wasi_linked { "linked" } else { "not linked" });
    if let Some(note) = &p.signature_note {
        println!("  signature: {note}");
    }
    if !p.wasi_interfaces.is_empty() {
        println!("  WASI linked for any scenario (0.2.x), and what each grants");
        for w in &p.wasi_interfaces {
            println!("    {:<32} {}", w.name, w.grants);
        }
    }
    println!("  bounds");
    for b in &p.bounds {
        let uses = b.uses.map(|u| format!("{u} of ")).unwrap_or_default();
        let limit = b.limit.map(|l| l.to_string()).unwrap_or_else(|| "no bound".into());
        println!("    {:<24} {uses}{limit}", b.name);
    }
    println!("  asks for");
    if p.requests.is_empty() {
        println!("    no kernel access, payloads or schedulers");
    }
    for r in &p.requests {
        let refused = p.violations.iter().any(|v| v.at.as_ref() == Some(r));
        let what = match &r.kind {
            RequestKind::KernelWrite(t) => format!("kernel write {t}"),
            RequestKind::KernelRead(t) => format!("kernel read {t}"),
            RequestKind::Payload(n) => format!("payload {n}"),
            RequestKind::Scheduler(n) => format!("scheduler {n}"),
        };
        println!("    {} {what} at {r}", if refused { "REFUSED" } else { "ok     " });
    }
}
