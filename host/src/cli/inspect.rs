//! `schedbox inspect`: what a component is, asks for, and whether it may run.

use std::path::PathBuf;

use clap::Args;

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
    contract: Option<String>,
    imports: Vec<schedbox::sandbox::ImportVerdict>,
    exports: Vec<String>,
    describe: Option<schedbox::op_model::ScenarioInfo>,
    allowed: bool,
    reason: Option<String>,
}

pub fn run(a: InspectArgs) -> Result<u8, Failure> {
    let sandbox = a.sandbox.sandbox()?;
    let bytes = std::fs::read(&a.scenario)
        .map_err(|e| Failure::usage(anyhow::anyhow!("cannot read {}: {e}", a.scenario.display())))?;
    let label = a.scenario.display().to_string();
    let imports = sandbox.judge_imports(&label, &bytes)?;
    let exports = sandbox.export_names(&label, &bytes)?;
    let contract = imports.iter().find_map(|i| {
        i.name.strip_prefix("schedbox:scenario/").and_then(|r| r.split_once('@')).map(|(_, v)| v.to_owned())
    });
    let (describe, reason) = match sandbox.load_bytes(&label, &bytes).and_then(|l| sandbox.describe(&l)) {
        Ok(info) => (Some(info), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let report = Report {
        component: label,
        digest: hex::encode(schedbox::sandbox::digest(&bytes)),
        contract,
        allowed: reason.is_none(),
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
            let why = if i.reason.is_empty() { String::new() } else { format!(" — {}", i.reason) };
            println!("  {mark} {}{why}", i.name);
        }
        println!("exports");
        for e in &report.exports {
            println!("  {e}");
        }
        if let Some(d) = &report.describe {
            println!("describe");
            println!("  name      {}", d.name);
            println!("  summary   {}", d.summary);
            println!("  topology  {} ({} vCPUs)", d.topology, d.topology.vcpus());
            println!("  duration  {} ms", d.duration_ms);
            println!("  features  {:?}", d.kernel_features);
            println!("  payloads  {:?}", d.payloads);
            println!("  schedulers {:?}", d.schedulers);
        }
        match &report.reason {
            None => println!("verdict: allowed to run"),
            Some(r) => println!("verdict: NOT allowed to run: {r}"),
        }
    }
    Ok(if report.allowed { 0 } else { 1 })
}
