//! `schedbox vm info`: boot a guest, print what it reports, power it off.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use schedbox::machine::{self, parse_memory_mib, parse_topology, BackendKind, BootRequest, BootTimes, GuestFacts};

use super::Failure;

#[derive(Args, Debug)]
pub struct VmArgs {
    #[command(subcommand)]
    pub command: VmCommand,
}

#[derive(Subcommand, Debug)]
pub enum VmCommand {
    /// Boot a guest, print what its agent reports (topology, kernel, sched_ext), power off.
    Info(InfoArgs),
}

/// Options of every command that boots a guest.
#[derive(Args, Debug, Clone)]
pub struct GuestArgs {
    /// VM backend (default: kvm where /dev/kvm is hardware KVM, else qemu with a one-line warning).
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// Kernel to boot: a bzImage or vmlinux (default: the newest `schedbox kernel fetch`ed one).
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Guest shape: <nodes>n<llcs per node>l<cores per llc>c<threads per core>t.
    #[arg(long, default_value = "1n2l2c1t")]
    pub topology: String,
    /// Guest memory, e.g. 1G or 512M.
    #[arg(long, default_value = "1G")]
    pub memory: String,
    /// Boot watchdog, seconds [default: $SCHEDBOX_BOOT_TIMEOUT, else 90; a nested run sets 300].
    #[arg(long)]
    pub boot_timeout: Option<u64>,
    /// How long one request to the guest's agent may take, seconds, before the guest is
    /// declared hung [30] (wait-payload has its own bound).
    #[arg(long, value_name = "SECS")]
    pub request_timeout: Option<u64>,
    /// A sched_ext scheduler attached for the whole run: attached at boot, restored at each
    /// scenario's end, started again by restart-scheduler (built in, or staged with --scheduler).
    #[arg(long, value_name = "NAME")]
    pub boot_scheduler: Option<String>,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub guest: GuestArgs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct Info<'a> {
    backend: BackendKind,
    kernel_release: &'a str,
    cpus_online: &'a [u32],
    llc_groups: &'a [Vec<u32>],
    numa_nodes: &'a [Vec<u32>],
    sched_ext_state: &'a str,
    cgroup_controllers: &'a [String],
    kallsyms: u64,
    boot: BootTimes,
}

/// Boots per `g` with a progress spinner; errors carry exit code 2.
pub fn boot(g: &GuestArgs) -> Result<Box<dyn machine::Machine>, Failure> {
    boot_with(g, |_| {})
}

/// Like [`boot`], letting the caller adjust the request (staged files).
pub fn boot_with(g: &GuestArgs, adjust: impl FnOnce(&mut BootRequest)) -> Result<Box<dyn machine::Machine>, Failure> {
    let env = |e: anyhow::Error| Failure::usage(e);
    let topology = parse_topology(&g.topology).map_err(|e| env(e.into()))?;
    let memory_mib = parse_memory_mib(&g.memory).map_err(env)?;
    let guest = |e: anyhow::Error| Failure::guest(e);
    let backend = machine::select_backend(g.backend).map_err(|e| guest(e.into()))?;
    let mut req = BootRequest { kernel: g.kernel.clone(), topology, memory_mib, staged: Vec::new() };
    adjust(&mut req);
    // The boot scheduler's name file only has to outlive the initramfs build.
    let name_dir = tempfile::tempdir().map_err(|e| env(e.into()))?;
    if let Some(name) = &g.boot_scheduler {
        machine::stage_boot_scheduler(name, &mut req.staged, name_dir.path()).map_err(env)?;
    }
    let mut spec = machine::prepare_boot(&req).map_err(guest)?;
    if let Some(secs) = g.boot_timeout {
        spec.boot_timeout = Duration::from_secs(secs);
    }
    if let Some(secs) = g.request_timeout {
        spec.request_timeout = Duration::from_secs(secs.max(1));
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("booting a {topology} guest on {backend:?}"));
    bar.enable_steady_tick(Duration::from_millis(100));
    let m = machine::boot(backend, &spec);
    bar.finish_and_clear();
    m.map_err(|e| guest(e.into()))
}

pub fn run(a: VmArgs) -> Result<u8, Failure> {
    match a.command {
        VmCommand::Info(i) => info(i),
    }
}

fn info(a: InfoArgs) -> Result<u8, Failure> {
    schedbox::interrupt::install();
    let stopped = || schedbox::interrupt::received().map(schedbox::interrupt::exit_code);
    let mut m = match boot(&a.guest) {
        Err(f) => return stopped().ok_or(f),
        // Powered off on the way out (the machine's drop kills it otherwise).
        Ok(m) if stopped().is_some() => {
            let _ = m.power_off();
            return Ok(stopped().unwrap_or(2));
        }
        Ok(m) => m,
    };
    // Ready carries the topology; the kallsyms count arrives with a Facts request.
    let fresh = match m.request(schedbox_wire::RequestBody::Facts) {
        Ok(schedbox_wire::ResponseBody::Facts(f)) => f,
        Ok(other) => return Err(Failure::guest(anyhow::anyhow!("agent answered Facts with {other:?}"))),
        Err(_) if stopped().is_some() => {
            let _ = m.power_off();
            return Ok(stopped().unwrap_or(2));
        }
        Err(e) => return Err(Failure::guest(e.into())),
    };
    let f: &GuestFacts = &fresh;
    let info = Info {
        backend: m.backend(),
        kernel_release: &f.kernel_release,
        cpus_online: &f.cpus_online,
        llc_groups: &f.llc_groups,
        numa_nodes: &f.numa_nodes,
        sched_ext_state: &f.sched_ext_state,
        cgroup_controllers: &f.cgroup_controllers,
        kallsyms: f.kallsyms,
        boot: m.boot_times(),
    };
    let text = if a.json {
        serde_json::to_string_pretty(&info).map_err(|e| Failure::usage(e.into()))?
    } else {
        format!(
            "backend      {:?}\nkernel       {}\ncpus online  {:?}\nllc groups   {:?}\nnuma nodes   {:?}\n\
             sched_ext    {}\ncgroups      {}\nkallsyms     {} symbols\nboot         setup {} ms, kernel {} ms (guest clock), agent ready {} ms",
            info.backend,
            info.kernel_release,
            info.cpus_online,
            info.llc_groups,
            info.numa_nodes,
            info.sched_ext_state,
            info.cgroup_controllers.join(" "),
            info.kallsyms,
            info.boot.setup_ms,
            info.boot.kernel_ms,
            info.boot.agent_ready_ms
        )
    };
    super::print_stdout(&format!("{text}\n"));
    m.power_off().map_err(|e| Failure::guest(e.into()))?;
    Ok(0)
}
