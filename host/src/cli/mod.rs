//! Subcommands. Exit codes: 0 ok, 1 scenario or validation failure, 2 usage or
//! environment error.

mod inspect;
mod kernel;
mod plan;
mod run;
mod vm;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use schedbox::sandbox::{Sandbox, SandboxConfig, SandboxError, SandboxLimits};

#[derive(Parser, Debug)]
#[command(
    name = "schedbox",
    version,
    about = "Run sandboxed WebAssembly scheduler scenarios against a real Linux kernel"
)]
pub struct Cli {
    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show the steps, ops and holds a scenario emits (sandboxed, validated).
    Plan(plan::PlanArgs),
    /// Show a component's contract version, imports, exports, describe() and
    /// whether it may run.
    Inspect(inspect::InspectArgs),
    /// Fetch the default guest kernel and list the cached kernels.
    Kernel(kernel::KernelArgs),
    /// Boot a guest and look at it.
    Vm(vm::VmArgs),
    /// Run scenarios in a real guest: plan, boot, execute, check, report.
    Run(run::RunArgs),
}

/// Sandbox bounds and cache, shared by every command that loads components.
#[derive(Args, Debug, Clone)]
pub struct SandboxArgs {
    /// CPU budget per export call, in fuel units (about one per wasm instruction).
    #[arg(long, default_value_t = SandboxLimits::default().fuel)]
    pub fuel: u64,
    /// Linear-memory bound per scenario instance, MiB.
    #[arg(long = "wasm-memory", value_name = "MIB", default_value_t = (SandboxLimits::default().memory_bytes >> 20) as u64)]
    pub wasm_memory: u64,
    /// Wasm stack bound, KiB.
    #[arg(long, value_name = "KIB", default_value_t = (SandboxLimits::default().stack_bytes >> 10) as u64)]
    pub stack_kib: u64,
    /// Most ops one stream may hold.
    #[arg(long, default_value_t = SandboxLimits::default().max_ops)]
    pub max_ops: usize,
    /// Do not link WASI at all (components needing it are refused).
    #[arg(long)]
    pub no_wasi: bool,
    /// Do not read or write the compiled-component cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Compiled-component cache directory (default: the user's cache dir).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

impl SandboxArgs {
    pub fn sandbox(&self) -> Result<Sandbox, Failure> {
        let mut config = SandboxConfig::default();
        config.limits.fuel = self.fuel;
        config.limits.memory_bytes = usize::try_from(self.wasm_memory.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        config.limits.max_ops = self.max_ops;
        config.limits.stack_bytes = usize::try_from(self.stack_kib.saturating_mul(1 << 10)).unwrap_or(usize::MAX);
        config.wasi = !self.no_wasi;
        if self.no_cache {
            config.cache_root = None;
        } else if let Some(dir) = &self.cache_dir {
            config.cache_root = Some(dir.clone());
        }
        Sandbox::new(config).map_err(Failure::from)
    }
}

/// A failed command: the message and the exit code.
pub struct Failure {
    pub error: anyhow::Error,
    pub code: u8,
}

impl Failure {
    pub fn usage(error: anyhow::Error) -> Self {
        Self { error, code: 2 }
    }
}

impl From<SandboxError> for Failure {
    fn from(e: SandboxError) -> Self {
        let code = e.exit_code() as u8;
        Self { error: e.into(), code }
    }
}

pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

pub fn run(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Plan(a) => plan::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Kernel(a) => kernel::kernel_command(a),
        Command::Vm(a) => vm::run(a),
        Command::Run(a) => run::run(a),
    }
}
