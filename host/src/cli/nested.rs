//! `schedbox nested -- ARGS...`: runs `schedbox ARGS...` inside an outer guest
//! whose CPU virtualizes (QEMU TCG, `-cpu EPYC,+svm,+npt`, kvm-amd loaded),
//! so `--backend kvm` boots a real kernel where the host's /dev/kvm cannot.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use schedbox::machine::parse_memory_mib;
use schedbox::nested::{self, NestedSpec};
use schedbox_wire::nested::NestedExit;

use super::Failure;

#[derive(Args, Debug)]
pub struct NestedArgs {
    /// Outer guest memory (the inner guest's comes out of it), e.g. 4G.
    #[arg(long, default_value = "4G")]
    pub memory: String,
    /// Bound on the whole run, seconds; the outer guest is killed past it.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    /// Run this host program instead of schedbox (a test binary, say).
    #[arg(long, value_name = "PROGRAM")]
    pub exec: Option<PathBuf>,
    /// Also stage this host file or directory (at the same path); a dynamically linked
    /// program brings its shared libraries. The kernel, the agent and the fixture
    /// scheduler are always staged; components (`.wasm`) are compiled for the outer
    /// guest first.
    #[arg(long, value_name = "PATH")]
    pub stage: Vec<PathBuf>,
    /// Bring this file back when the program ends (besides every `--report` value).
    #[arg(long, value_name = "PATH")]
    pub output: Vec<PathBuf>,
    /// Set an environment variable for the program.
    #[arg(long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// The program's arguments: `run --backend kvm scenario.wasm --report r.json`.
    /// Arguments naming host files (also in `NAME=PATH[:ARGS]` and `--flag=PATH`) are staged.
    #[arg(last = true, required = true)]
    pub args: Vec<String>,
}

/// Host paths an argument names: itself, the PATH of `NAME=PATH[:ARGS]`, or the value of `--flag=PATH`.
fn named_paths(arg: &str) -> Vec<PathBuf> {
    let mut candidates = vec![arg.to_owned()];
    if let Some((_, rest)) = arg.split_once('=') {
        candidates.push(rest.to_owned());
        candidates.push(rest.split(':').next().unwrap_or(rest).to_owned());
    }
    candidates
        .into_iter()
        .map(PathBuf::from)
        .filter(|p| !p.as_os_str().is_empty() && p.exists())
        .filter_map(|p| std::path::absolute(&p).ok())
        .collect()
}

/// The absolute paths of every `--report` value: they are brought back.
fn report_outputs(args: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        let value = if a == "--report" { it.peek().map(|v| v.as_str()) } else { a.strip_prefix("--report=") };
        if let Some(v) = value {
            out.extend(std::path::absolute(v).ok());
        }
    }
    out
}

pub fn run(a: NestedArgs) -> Result<u8, Failure> {
    let usage = Failure::usage;
    let memory_mib = parse_memory_mib(&a.memory).map_err(usage)?;
    let kernel = schedbox::kernel::resolve_kernel(None).map_err(Failure::guest)?;
    let init = nested::find_init().map_err(usage)?;
    let program = match &a.exec {
        Some(p) => std::path::absolute(p).map_err(|e| usage(e.into()))?,
        None => std::env::current_exe().map_err(|e| usage(e.into()))?,
    };
    let mut stage = nested::schedbox_files(&kernel).map_err(usage)?;
    for s in &a.stage {
        stage.push(std::path::absolute(s).map_err(|e| usage(e.into()))?);
    }
    stage.extend(a.args.iter().flat_map(|arg| named_paths(arg)));
    let components = nested::components_in(&stage);
    if let Some(root) = schedbox::sandbox::ComponentCache::default_root() {
        eprintln!("compiling {} component(s) for the outer guest", components.len());
        stage.extend(nested::precompile(&components, &root).map_err(usage)?);
    }
    let mut outputs: Vec<PathBuf> = a.output.iter().filter_map(|p| std::path::absolute(p).ok()).collect();
    outputs.extend(report_outputs(&a.args));
    let mut env = nested::inherited_env();
    for kv in &a.env {
        let (k, v) = kv.split_once('=').ok_or_else(|| usage(anyhow!("--env {kv:?}: expected KEY=VALUE")))?;
        env.retain(|(key, _)| key != k);
        env.push((k.to_owned(), v.to_owned()));
    }
    let spec = NestedSpec {
        kernel,
        init,
        program,
        args: a.args.clone(),
        env,
        cwd: std::env::current_dir().map_err(|e| usage(e.into()))?,
        stage,
        outputs,
        memory_mib,
        timeout: Duration::from_secs(a.timeout),
    };
    eprintln!("booting the outer guest (QEMU TCG, -cpu {}, kvm-amd)", nested::OUTER_CPU);
    let mut stderr = std::io::stderr();
    let outcome = nested::run(&spec, &mut |bytes| {
        let _ = stderr.write_all(bytes);
    })
    .map_err(Failure::guest)?;
    for (path, bytes) in &outcome.outputs {
        match bytes {
            Some(b) => write_output(path, b).map_err(usage)?,
            None => eprintln!("{} was not written in the outer guest", path.display()),
        }
    }
    eprintln!("nested run: {:.1} s, outer initramfs {} MiB", outcome.wall.as_secs_f64(), outcome.initramfs_bytes >> 20);
    match outcome.exit {
        NestedExit::Code(c) => Ok(u8::try_from(c).unwrap_or(2)),
        NestedExit::Error(e) => Err(Failure::guest(anyhow!("in the outer guest: {e}"))),
    }
}

fn write_output(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
