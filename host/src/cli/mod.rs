//! Subcommands. Exit codes ([`EXIT_CODES`]): 0 ok, 1 a scenario failed, 2 usage or
//! bad input, 3 guest or host environment failure, 128 + N stopped by signal N.

mod cache;
mod fuzz;
mod inspect;
mod kernel;
mod nested;
mod plan;
mod report;
mod run;
mod scheduler;
mod sign;
mod staging;
mod vm;
mod watch;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use schedbox::policy::{Policy, Refused};
use schedbox::sandbox::{Sandbox, SandboxConfig, SandboxError};

/// `schedbox --version`: the package version, the contract and wire protocol
/// versions this build speaks, and the git commit it was built from.
static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (contract {}, wire protocol {}, commit {})",
        env!("CARGO_PKG_VERSION"),
        schedbox::op_model::CONTRACT_VERSION,
        schedbox_wire::VERSION,
        env!("SCHEDBOX_GIT_COMMIT")
    )
});

#[derive(Parser, Debug)]
#[command(
    name = "schedbox",
    version = VERSION.as_str(),
    about = "Run sandboxed WebAssembly scheduler scenarios against a real Linux kernel",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// More logging from schedbox itself (-v info, -vv debug; other crates stay at
    /// warn); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show the steps, ops and holds a scenario emits (sandboxed, validated).
    Plan(plan::PlanArgs),
    /// Show a component's contract version, imports, exports, describe(),
    /// what it asks for against the policy, and whether it may run.
    Inspect(inspect::InspectArgs),
    /// Fetch the default guest kernel and list the cached kernels.
    Kernel(kernel::KernelArgs),
    /// Boot a guest and look at it.
    Vm(vm::VmArgs),
    /// Run scenarios in a real guest: plan, boot, execute, check, report.
    Run(run::RunArgs),
    /// Summarise a `run --report` JSON report; draw per-CPU placement as SVG.
    Report(report::ReportArgs),
    /// Boot once, run every scenario, re-run each when its component changes (hot reload).
    Watch(watch::WatchArgs),
    /// Generate op streams against a scheduler, judge each run by oracles, minimise
    /// a failure to a replayable stream.
    Fuzz(fuzz::FuzzArgs),
    /// Show the on-disk caches; `gc` removes least recently used entries.
    Cache(cache::CacheArgs),
    /// Build sched_ext schedulers from crates.io into the user's cache; list them.
    Scheduler(scheduler::SchedulerArgs),
    /// Run `schedbox ARGS...` inside an outer QEMU guest with nested virtualization, so
    /// `--backend kvm` works where /dev/kvm cannot boot a kernel; reports come back out.
    Nested(nested::NestedArgs),
    /// Make an ed25519 signing key (`generate`) or print its public key (`public`).
    Key(sign::KeyArgs),
    /// Sign a component (a custom section; it stays a valid component), so a policy
    /// trusts it by key across rebuilds.
    Sign(sign::SignArgs),
    /// Print the digest of a source tree, for `[trusted] sources` and `sign --source`.
    SourceDigest(sign::SourceDigestArgs),
}

impl Command {
    /// Whether a closed stdout may end this command through SIGPIPE's default
    /// action. Commands that talk to guests (pipes and sockets to QEMU and the
    /// agent) keep SIGPIPE ignored, must not die mid-run, and print through
    /// [`print_stdout`] instead.
    pub fn dies_on_closed_stdout(&self) -> bool {
        !matches!(self, Command::Run(_) | Command::Vm(_) | Command::Watch(_) | Command::Fuzz(_) | Command::Nested(_))
    }
}

/// Writes `text` to stdout; a reader that went away (`| head`) is not an error
/// for a command that still has a report to write and a guest to power off.
pub fn print_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            tracing::warn!("writing to stdout: {e}");
        }
    }
}

/// Sandbox bounds, policy and cache, shared by every command that loads components.
///
/// A flag given on the command line overrides the same setting of `--policy`;
/// without either, the defaults apply (shown in brackets).
#[derive(Args, Debug, Clone)]
pub struct SandboxArgs {
    /// Policy file (TOML; format in the README): bounds, kernel access, payloads,
    /// schedulers, WASI, trusted components.
    #[arg(long, value_name = "FILE.toml")]
    pub policy: Option<PathBuf>,
    /// Trust every component loaded by this command (kernel writes, any payload or
    /// scheduler); bounds still apply.
    #[arg(long)]
    pub trusted: bool,
    /// CPU budget per export call, in fuel units (about one per wasm instruction) [2000000000].
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Wall-clock bound per export call, ms [30000]: stops a component that
    /// blocks or runs long without spending fuel.
    #[arg(long, value_name = "MS")]
    pub wall_ms: Option<u64>,
    /// Linear-memory bound per scenario instance, MiB [256].
    #[arg(long = "wasm-memory", value_name = "MIB")]
    pub wasm_memory: Option<u64>,
    /// Wasm stack bound, KiB [512].
    #[arg(long, value_name = "KIB")]
    pub stack_kib: Option<u64>,
    /// Most ops one stream may hold [100000].
    #[arg(long)]
    pub max_ops: Option<usize>,
    /// Most steps one stream may hold [no bound].
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Most total hold time (the sum of every step's hold), ms [86400000: 24 h].
    #[arg(long, value_name = "MS")]
    pub max_duration_ms: Option<u64>,
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
    /// The policy: `--policy` (or the defaults) with the flags applied over it.
    pub fn policy(&self) -> Result<Policy, Failure> {
        let mut p = match &self.policy {
            Some(path) => Policy::load(path).map_err(|e| Failure::usage(e.into()))?,
            None => Policy::default(),
        };
        let bytes = |v: u64, shift: u32| usize::try_from(v.saturating_mul(1 << shift)).unwrap_or(usize::MAX);
        if let Some(v) = self.fuel {
            p.limits.fuel = v;
        }
        if let Some(v) = self.wall_ms {
            p.limits.wall_ms = v;
        }
        if let Some(v) = self.wasm_memory {
            p.limits.memory_bytes = bytes(v, 20);
        }
        if let Some(v) = self.stack_kib {
            p.limits.stack_bytes = bytes(v, 10);
        }
        if let Some(v) = self.max_ops {
            p.limits.max_ops = v;
        }
        if let Some(v) = self.max_steps {
            p.stream.max_steps = Some(v);
        }
        if let Some(v) = self.max_duration_ms {
            p.stream.max_duration_ms = Some(v);
        }
        if self.no_wasi {
            p.wasi = false;
        }
        if self.trusted {
            p.trusted.all = true;
        }
        Ok(p)
    }

    /// A sandbox set up with [`Self::policy`]'s bounds (for commands that
    /// enforce no authority rules themselves).
    #[allow(dead_code)]
    pub fn sandbox(&self) -> Result<Sandbox, Failure> {
        self.sandbox_with(&self.policy()?)
    }

    /// A sandbox set up with `policy`'s bounds and this command's cache choice.
    pub fn sandbox_with(&self, policy: &Policy) -> Result<Sandbox, Failure> {
        let mut config = policy.sandbox_config(SandboxConfig::default().cache_root);
        if self.no_cache {
            config.cache_root = None;
        } else if let Some(dir) = &self.cache_dir {
            config.cache_root = Some(dir.clone());
        }
        Sandbox::new(config).map_err(Failure::from)
    }
}

/// The exit status table, as `--help` prints it (the README has the same table).
pub const EXIT_CODES: &str = "Exit status:
  0        every scenario passed (or the command succeeded)
  1        a scenario failed: its check (a fail verdict, a trap or bound in check), an op
           error, validation, a refused import or a policy refusal
  2        usage or bad input: a flag, a missing or unreadable file, not a component or
           stream, a bad policy file
  3        guest or host environment failure: no usable kernel, QEMU or backend, a guest
           that did not boot or was lost, an agent that stopped answering
  128+N    stopped by signal N (run, vm info, watch)";

/// An error and its causes on one line, as `{:#}` writes them, except that a
/// cause whose text its parent's message already carries (an error type whose
/// message embeds `{source}`, a context that embeds `{e}`) is not repeated.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut parent = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.is_empty() {
            out.push_str(&text);
        } else if !parent.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        parent = text;
    }
    out
}

/// Exit status 1: a scenario failed.
pub const EXIT_FAIL: u8 = 1;
/// Exit status 2: usage or bad input.
pub const EXIT_USAGE: u8 = 2;
/// Exit status 3: a guest or the host environment failed.
pub const EXIT_GUEST: u8 = 3;

/// A failed command: the message and the exit code.
pub struct Failure {
    pub error: anyhow::Error,
    pub code: u8,
}

impl Failure {
    /// Bad usage or input: exit 2.
    pub fn usage(error: anyhow::Error) -> Self {
        Self { error, code: EXIT_USAGE }
    }

    /// A guest that did not boot or was lost, or a missing kernel/QEMU/backend: exit 3.
    pub fn guest(error: anyhow::Error) -> Self {
        Self { error, code: EXIT_GUEST }
    }
}

impl From<Box<Refused>> for Failure {
    fn from(e: Box<Refused>) -> Self {
        Self { error: anyhow::Error::new(*e), code: EXIT_FAIL }
    }
}

impl From<SandboxError> for Failure {
    fn from(e: SandboxError) -> Self {
        let code = e.exit_code() as u8;
        Self { error: e.into(), code }
    }
}

/// Logging to stderr. `-v`/`-vv` raise the level of schedbox's own crates
/// (`schedbox`, `schedbox_*`: a target prefix) to info/debug; every other crate
/// (wasmtime, cranelift, …) stays at warn. `RUST_LOG` replaces the whole filter.
/// Colour only when stderr is a terminal and `NO_COLOR` is unset or empty.
pub fn init_tracing(verbose: u8) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter(verbose)));
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = std::io::stderr().is_terminal() && !no_color;
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}

/// The log filter without `RUST_LOG`.
fn default_filter(verbose: u8) -> &'static str {
    match verbose {
        0 => "warn",
        1 => "warn,schedbox=info",
        _ => "warn,schedbox=debug",
    }
}

pub fn run(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Command::Plan(a) => plan::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Kernel(a) => kernel::kernel_command(a),
        Command::Vm(a) => vm::run(a),
        Command::Run(a) => run::run(a),
        Command::Report(a) => report::run(a),
        Command::Watch(a) => watch::run(a),
        Command::Nested(a) => nested::run(a),
        Command::Cache(a) => cache::run(a),
        Command::Scheduler(a) => scheduler::run(a),
        Command::Fuzz(a) => fuzz::run(a),
        Command::Key(a) => sign::key(a),
        Command::Sign(a) => sign::sign(a),
        Command::SourceDigest(a) => sign::source_digest(a),
    }
}

#[cfg(test)]
mod tests {
    use super::error_text;
    use anyhow::Context;

    #[test]
    fn error_text_names_each_cause_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory (os error 2)");
        // A context that embeds its cause.
        let e = Err::<(), _>(io()).map_err(|e| anyhow::anyhow!("cannot read x: {e}")).unwrap_err();
        assert_eq!(error_text(&e), "cannot read x: No such file or directory (os error 2)");
        let e = Err::<(), _>(io()).context("cannot read x: No such file or directory (os error 2)").unwrap_err();
        assert_eq!(error_text(&e), "cannot read x: No such file or directory (os error 2)");
        // A context that does not: the cause follows, once.
        let e = Err::<(), _>(io()).context("reading x").unwrap_err();
        assert_eq!(error_text(&e), "reading x: No such file or directory (os error 2)");
        let e = Err::<(), _>(io()).context("reading x").context("loading y").unwrap_err();
        assert_eq!(error_text(&e), "loading y: reading x: No such file or directory (os error 2)");
    }
}
