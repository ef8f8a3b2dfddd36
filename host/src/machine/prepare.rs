//! From "boot this topology with that kernel" to a [`BootSpec`]: resolve the
//! kernel, find the agent binary, and build (or reuse) the initramfs.

use crate::initramfs::libs::is_static_elf;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::BootSpec;
use crate::initramfs::{build_cached, InitramfsSpec};
use crate::kernel::resolve_kernel;
use crate::op_model::Topology;

/// What the user asked for.
#[derive(Clone, Debug)]
pub struct BootRequest {
    pub kernel: Option<PathBuf>,
    pub topology: Topology,
    pub memory_mib: u64,
    /// Files staged into the initramfs: (guest path, host path).
    pub staged: Vec<(String, PathBuf)>,
}

/// Module giving microvm its virtio transport (not built into Debian's kernel).
pub const VIRTIO_MMIO: &str = "kernel/drivers/virtio/virtio_mmio.ko.xz";
/// null_blk in a modules tree, with configfs it depends on: the block device of the
/// block I/O work types, loaded by the agent on the first spawn that needs it.
pub const NULL_BLK: [&str; 2] = ["kernel/fs/configfs/configfs.ko.xz", "kernel/drivers/block/null_blk/null_blk.ko.xz"];

/// Where an installed schedbox keeps its guest binaries (`cargo xtask install`
/// copies the agent and the fixture scheduler there): `SCHEDBOX_DATA_DIR`, else
/// `$XDG_DATA_HOME/schedbox` (or the platform equivalent).
pub fn data_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SCHEDBOX_DATA_DIR") {
        return Some(PathBuf::from(d));
    }
    directories::ProjectDirs::from("", "", "schedbox").map(|d| d.data_dir().to_path_buf())
}

/// The static agent binary: `SCHEDBOX_AGENT`, else next to this executable's
/// target directory (`target/x86_64-unknown-linux-musl/release/`), else beside
/// it, else in the [`data_dir`].
pub fn find_agent() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("SCHEDBOX_AGENT") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!("SCHEDBOX_AGENT={} does not name a file", p.display());
    }
    let exe = std::env::current_exe().context("locating the schedbox executable")?;
    let dirs: Vec<&Path> = exe.ancestors().skip(1).take(4).collect();
    let musl = dirs.iter().map(|d| d.join("x86_64-unknown-linux-musl/release/schedbox-agent"));
    let beside = dirs.iter().map(|d| d.join("schedbox-agent"));
    let data = data_dir().map(|d| d.join("schedbox-agent"));
    // A host (glibc) build of the agent sits in target/debug too: only a static binary can be /init.
    musl.chain(beside).chain(data.clone()).find(|p| is_static_elf(p)).with_context(|| {
        format!(
            "the guest agent binary was not found (looked beside {} and in {}): in a checkout, build it with \
             `cargo xtask build-scenarios` (target/x86_64-unknown-linux-musl/release/schedbox-agent); \
             `cargo xtask install` installs schedbox with it; or set SCHEDBOX_AGENT",
            exe.display(),
            data.map(|d| d.display().to_string()).unwrap_or_else(|| "no data directory".into())
        )
    })
}

/// Where the guest agent finds the fixture scheduler's loader; it serves the built-in
/// scheduler names `fixture`, `fixture-alt`, `fixture-stall`, `fixture-error` and
/// `fixture-planted`.
pub const FIXTURE_SCHEDULER_GUEST: &str = "/staging/fixture-scheduler/schedbox-fixture-scheduler";

/// Scheduler names every guest has without `--scheduler`: the fixture and its misbehaving modes.
pub const BUILT_IN_SCHEDULERS: &[&str] =
    &["fixture", "fixture-alt", "fixture-stall", "fixture-error", "fixture-planted"];

/// Where the guest agent reads the run's boot scheduler name.
pub const BOOT_SCHEDULER_GUEST: &str = "/staging/boot-scheduler";

/// Stages `name` as the run's boot scheduler: the agent attaches it when it starts, each
/// scenario begins with it attached and ends by restoring it, and restart-scheduler
/// starts it again. `name` must be built in or staged in `staged` (as
/// `/staging/schedulers/<name>/<name>`); the name file is written into `dir`, which
/// must outlive [`prepare_boot`].
pub fn stage_boot_scheduler(name: &str, staged: &mut Vec<(String, PathBuf)>, dir: &Path) -> Result<()> {
    let staged_path = format!("/staging/schedulers/{name}/{name}");
    if !BUILT_IN_SCHEDULERS.contains(&name) && !staged.iter().any(|(g, _)| *g == staged_path) {
        bail!(
            "boot scheduler {name:?} is neither built in ({}) nor staged: pass --scheduler {name}=PATH, or --scheduler {name} for one `schedbox scheduler install` built",
            BUILT_IN_SCHEDULERS.join(", ")
        );
    }
    let file = dir.join("boot-scheduler");
    std::fs::write(&file, name).with_context(|| format!("writing {}", file.display()))?;
    staged.push((BOOT_SCHEDULER_GUEST.to_owned(), file));
    Ok(())
}

/// The static fixture scheduler loader: `SCHEDBOX_FIXTURE_SCHEDULER`, else where
/// `cargo xtask build-scenarios` leaves it (`target/x86_64-unknown-linux-gnu/release/`,
/// found from the agent's target directory), else beside the agent, else in the
/// [`data_dir`]. `None` when it was not built: guests then have no built-in
/// fixture scheduler.
pub fn find_fixture_scheduler(agent: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SCHEDBOX_FIXTURE_SCHEDULER") {
        return Some(PathBuf::from(p)).filter(|p| is_static_elf(p));
    }
    const NAME: &str = "schedbox-fixture-scheduler";
    let target_dir = agent.ancestors().nth(3);
    let built = target_dir.map(|d| d.join("x86_64-unknown-linux-gnu/release").join(NAME));
    let data = data_dir().map(|d| d.join(NAME));
    built.into_iter().chain([agent.with_file_name(NAME)]).chain(data).find(|p| is_static_elf(p))
}

fn cache_dir() -> Result<PathBuf> {
    crate::sandbox::ComponentCache::default_root().context("no user cache directory (set XDG_CACHE_HOME)")
}

/// Builds the boot spec for `req`.
pub fn prepare_boot(req: &BootRequest) -> Result<BootSpec> {
    let kernel = resolve_kernel(req.kernel.as_deref())?;
    let agent = find_agent()?;
    let virtio_mmio = kernel.modules_dir.as_deref().map(|d| d.join(VIRTIO_MMIO)).filter(|p| p.is_file());
    let prefer_q35 = virtio_mmio.is_none();
    if prefer_q35 && req.topology.numa_nodes == 1 {
        tracing::warn!(
            "virtio_mmio.ko is not available for this kernel, so the guest boots on q35 (about 1 s slower); \
             `schedbox kernel fetch --modules` enables the faster microvm machine"
        );
    }
    let mut staged = req.staged.clone();
    match find_fixture_scheduler(&agent) {
        Some(fixture) => staged.push((FIXTURE_SCHEDULER_GUEST.to_owned(), fixture)),
        None => tracing::warn!(
            "the fixture scheduler was not found (built by `cargo xtask build-scenarios`, installed by \
             `cargo xtask install`, or SCHEDBOX_FIXTURE_SCHEDULER): this guest has no built-in {}",
            BUILT_IN_SCHEDULERS.join(", ")
        ),
    }
    if kernel.config.is_none() {
        tracing::warn!(
            "no .config was found for the kernel {} (looked beside it and in its build tree): the guest has \
             no /boot/config-$(uname -r), so schedulers with __kconfig externs (the scx schedulers) fail to \
             load with libbpf's \"failed to open system Kconfig\"",
            kernel.vmlinux.display()
        );
    }
    let spec = InitramfsSpec {
        agent,
        modules: virtio_mmio.into_iter().collect(),
        on_demand_modules: kernel
            .modules_dir
            .iter()
            .flat_map(|d| NULL_BLK.map(|m| d.join(m)))
            .filter(|p| p.is_file())
            .collect(),
        staged,
        kernel_config: kernel.config.clone().filter(|p| p.is_file()),
    };
    let initramfs = build_cached(&spec, &cache_dir()?).context("building the initramfs")?;
    let mut boot = BootSpec::new(kernel.vmlinux, initramfs, req.topology);
    boot.memory_mib = req.memory_mib;
    boot.prefer_q35 = prefer_q35;
    Ok(boot)
}

/// Parses a memory size like `1G`, `512M` or `768` (MiB).
pub fn parse_memory_mib(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('G' | 'g') => (&s[..s.len() - 1], 1024),
        Some('M' | 'm') => (&s[..s.len() - 1], 1),
        _ => (s, 1),
    };
    let n: u64 = num.parse().with_context(|| format!("memory size {s:?}: write e.g. 1G or 512M"))?;
    if !(128..=65536).contains(&(n * mult)) {
        bail!("memory size {s:?} is outside 128M..=64G");
    }
    Ok(n * mult)
}
