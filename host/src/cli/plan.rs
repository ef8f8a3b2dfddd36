//! `schedbox plan`: the op stream a scenario emits, as text or JSON.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use schedbox::op_model::{HoldSpec, OpStream};

use super::{Failure, SandboxArgs};

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Scenario component (.wasm).
    pub scenario: PathBuf,
    /// Print the op stream as JSON (the format `schedbox run` replays).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

pub fn run(a: PlanArgs) -> Result<u8, Failure> {
    let policy = a.sandbox.policy()?;
    let sandbox = a.sandbox.sandbox_with(&policy)?;
    let loaded = sandbox.load_file(&a.scenario)?;
    let plan = sandbox.plan(&loaded)?;
    policy.admit(loaded.subject(), &plan.stream)?;
    if a.json {
        let json = serde_json::to_string_pretty(&plan.stream).map_err(|e| Failure::usage(e.into()))?;
        println!("{json}");
    } else {
        print!("{}", schedbox::untrusted::escape(&render(&plan.stream)));
    }
    Ok(0)
}

fn hold(h: &HoldSpec, duration_ms: u64) -> String {
    match h {
        HoldSpec::Frac(f) => format!("hold {:.0}% of {} ms = {:.0} ms", f * 100.0, duration_ms, f * duration_ms as f64),
        HoldSpec::FixedMs(ms) => format!("hold {ms} ms"),
        HoldSpec::LoopMs(ms) => format!("loop the ops every {ms} ms until the duration is used"),
    }
}

/// The human listing: scenario header, Backdrop, then each step.
pub fn render(s: &OpStream) -> String {
    let mut out = String::new();
    let i = &s.scenario;
    let _ = writeln!(out, "scenario {} — {}", i.name, i.summary);
    let _ = writeln!(
        out,
        "  topology {} ({} vCPUs), duration {} ms, contract {}",
        i.topology,
        i.topology.vcpus(),
        i.duration_ms,
        s.contract
    );
    if !i.kernel_features.is_empty() || !i.payloads.is_empty() || !i.schedulers.is_empty() {
        let _ = writeln!(
            out,
            "  needs: features {:?}, payloads {:?}, schedulers {:?}",
            i.kernel_features, i.payloads, i.schedulers
        );
    }
    if !s.backdrop.is_empty() {
        let _ = writeln!(out, "backdrop");
        for c in &s.backdrop.cgroups {
            let _ = writeln!(out, "  cgroup {}", compact(c));
        }
        for (n, op) in s.backdrop.ops.iter().enumerate() {
            let _ = writeln!(out, "  [{n}] {}", compact(op));
        }
    }
    for (k, step) in s.steps.iter().enumerate() {
        let _ = writeln!(out, "step {k}: {}", hold(&step.hold, i.duration_ms));
        for c in &step.setup {
            let _ = writeln!(out, "  setup cgroup {}", compact(c));
        }
        for (n, op) in step.ops.iter().enumerate() {
            let _ = writeln!(out, "  [{n}] {}", compact(op));
        }
    }
    out
}

fn compact<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("<unprintable: {e}>"))
}
