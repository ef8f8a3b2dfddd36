//! Nested runs: a program run inside an outer guest whose CPU virtualizes,
//! so the `kvm` backend can boot a real kernel on hosts where /dev/kvm
//! cannot (software PVM) or is missing.
//!
//! The outer guest is the same kernel under QEMU TCG (`-machine q35
//! -cpu EPYC,+svm,+npt`) with `nested-init` as PID 1: it loads kvm-amd and its
//! dependencies from the kernel's modules package, then runs the program.
//! Every staged host file lands at the *same absolute path* in the outer
//! initramfs, so the program's arguments, its compiled-in paths and the
//! kernel cache under `$HOME` resolve unchanged. The program's output goes to
//! the outer console; the planned output files and its exit status come back
//! over a virtio-serial port (`schedbox_wire::nested`).

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use schedbox_wire::nested::{parse_result, NestedExit, NestedPlan, PLAN_PATH, PORT_NAME};

use crate::initramfs::libs::shared_libraries;
use crate::initramfs::Initramfs;
use crate::kernel::ResolvedKernel;
use crate::machine::qemu::{qemu_program, tie_to_this_process};
use crate::sandbox::{Sandbox, SandboxConfig, PORTABLE_CODE_ENV};

mod hang;

/// kvm-amd and what it needs, in load order (paths under `lib/modules/<release>`).
pub const KVM_MODULES: [&str; 4] = [
    "kernel/virt/lib/irqbypass.ko.xz",
    "kernel/drivers/crypto/ccp/ccp.ko.xz",
    "kernel/arch/x86/kvm/kvm.ko.xz",
    "kernel/arch/x86/kvm/kvm-amd.ko.xz",
];

/// The outer guest's CPU: AMD with SVM and nested paging, which QEMU's TCG emulates.
pub const OUTER_CPU: &str = "EPYC,+svm,+npt";

/// What to run in the outer guest.
#[derive(Clone, Debug)]
pub struct NestedSpec {
    /// The kernel: its bzImage boots the outer guest, its modules package gives kvm.
    pub kernel: ResolvedKernel,
    /// `nested-init` (static; built beside the agent).
    pub init: PathBuf,
    /// The program (a host executable; staged without debug info, with its shared libraries).
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The program's whole environment.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// Host files and directories staged at the same paths.
    pub stage: Vec<PathBuf>,
    /// Files brought back when the program ends.
    pub outputs: Vec<PathBuf>,
    /// Outer guest RAM, MiB (the inner guest's RAM comes out of it).
    pub memory_mib: u64,
    /// Wall-clock bound on the whole run; the outer guest is killed past it.
    pub timeout: Duration,
}

/// How a nested run went.
#[derive(Debug)]
pub struct NestedOutcome {
    pub exit: NestedExit,
    /// Each planned output, `None` when the program did not write it.
    pub outputs: Vec<(PathBuf, Option<Vec<u8>>)>,
    /// Bytes of the outer initramfs.
    pub initramfs_bytes: u64,
    /// Process start → the outer QEMU exited.
    pub wall: Duration,
}

/// `nested-init`, found beside the static agent.
pub fn find_init() -> Result<PathBuf> {
    let agent = crate::machine::find_agent()?;
    let init = agent.with_file_name("nested-init");
    if !init.is_file() {
        bail!(
            "{} is missing: build it with `cargo xtask build-scenarios` (it is built with the agent)",
            init.display()
        );
    }
    Ok(init)
}

/// Boots the outer guest, runs the program, and returns what came back.
/// `console` receives the outer console (the program's stdout and stderr) as it arrives.
pub fn run(spec: &NestedSpec, console: &mut dyn FnMut(&[u8])) -> Result<NestedOutcome> {
    let start = Instant::now();
    let bzimage = spec.kernel.bzimage.as_ref().context(
        "a nested run boots the outer guest from the kernel's bzImage; use a `schedbox kernel fetch`ed kernel",
    )?;
    let modules_dir = spec.kernel.modules_dir.as_ref().context(
        "a nested run loads kvm-amd from the kernel's modules package: run `schedbox kernel fetch --modules`",
    )?;
    let modules = KVM_MODULES
        .iter()
        .map(|m| {
            let p = modules_dir.join(m);
            if p.is_file() {
                Ok(p)
            } else {
                bail!("{} is missing from the modules package", p.display())
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let dir = tempfile::Builder::new().prefix("schedbox-nested-").tempdir()?;
    let mut image = Initramfs::new(spec.init.as_path());
    let symbols = outer_symbols_file(&spec.kernel);
    let mut outputs: Vec<String> = spec.outputs.iter().map(|p| text(p)).collect::<Result<_>>()?;
    if !symbols.is_file() {
        // Once per kernel: the outer guest's symbols (nokaslr: fixed), to name the RIPs of a hung run.
        outputs.push(OUTER_KALLSYMS.into());
    }
    let plan = NestedPlan {
        modules: modules.iter().map(|p| text(p)).collect::<Result<_>>()?,
        env: spec.env.clone(),
        cwd: text(&spec.cwd)?,
        argv: std::iter::once(text(&spec.program)).chain(spec.args.iter().cloned().map(Ok)).collect::<Result<_>>()?,
        outputs,
    };
    image.file(PLAN_PATH, serde_json::to_vec_pretty(&plan)?, 0o644)?;
    let mut staged = Staged { image: &mut image, seen: HashSet::new() };
    let program = stripped(&spec.program, dir.path())?;
    staged.file(&spec.program, &program, 0o755)?;
    for lib in shared_libraries(&spec.program)? {
        staged.file(&lib, &lib, 0o755)?;
    }
    for m in &modules {
        staged.file(m, m, 0o644)?;
    }
    for p in &spec.stage {
        staged.tree(p)?;
    }
    let cpio = dir.path().join("outer.cpio");
    let initramfs_bytes = image.write_to(std::io::BufWriter::new(std::fs::File::create(&cpio)?))?;
    tracing::debug!(initramfs_bytes, setup_ms = start.elapsed().as_millis() as u64, "outer initramfs written");

    let result_file = dir.path().join("result.bin");
    let hmp = dir.path().join("hmp.sock");
    let mut command = Command::new(qemu_program());
    command
        .args(["-machine", "q35", "-accel", "tcg,thread=single", "-cpu", OUTER_CPU, "-smp", "1"])
        .args(["-m", &spec.memory_mib.to_string(), "-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-no-reboot", "-serial", "stdio", "-kernel"])
        .arg(bzimage)
        .arg("-initrd")
        .arg(&cpio)
        // nokaslr: a timed-out run's RIPs then name vmlinux symbols as they are.
        // nohz=off highres=off: a periodic local APIC timer. TCG's SVM now and then leaves
        // the outer timer interrupt pending in the APIC's IRR without leaving the inner
        // guest for it; a one-shot timer then never fires again, so a spinning inner vCPU
        // holds the outer CPU forever. A periodic one raises the line again each tick.
        .arg("-append")
        .arg(format!(
            "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init nokaslr nohz=off highres=off {}",
            hang::PANIC_ON_NMI
        ))
        .arg("-monitor")
        .arg(format!("unix:{},server=on,wait=off", text(&hmp)?))
        .args(["-device", "virtio-serial-pci,id=vs"])
        .arg("-chardev")
        .arg(format!("file,id=nested,path={}", text(&result_file)?))
        .args(["-device", &format!("virtserialport,bus=vs.0,chardev=nested,name={PORT_NAME}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tie_to_this_process(&mut command);
    let mut child = command.spawn().with_context(|| format!("starting {}", qemu_program()))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 << 10];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut deadline = start + spec.timeout;
    let mut timed_out = false;
    let mut hang = String::new();
    // The console kept for the error: the last bytes before the NMI, the first after it.
    const KEPT: usize = 8 << 10;
    let mut tail: Vec<u8> = Vec::new();
    let mut panic_report: Vec<u8> = Vec::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(200))) {
            Ok(bytes) if timed_out => {
                console(&bytes);
                let room = KEPT.saturating_sub(panic_report.len());
                panic_report.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            Ok(bytes) => {
                console(&bytes);
                tail.extend_from_slice(&bytes);
                let excess = tail.len().saturating_sub(KEPT);
                tail.drain(..excess);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            // Timed out: read the outer vCPU, send the NMI, then give its panic
            // report time to reach the console (QEMU exits after it: -no-reboot).
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() >= deadline && !timed_out => {
                timed_out = true;
                hang = hang::diagnose(&hmp, &symbols);
                deadline = Instant::now() + hang::PANIC_GRACE;
            }
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                let _ = child.kill();
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    let status = child.wait()?;
    let _ = reader.join();
    let qemu_errors = errors.join().unwrap_or_default();
    let wall = start.elapsed();
    let tail = String::from_utf8_lossy(&tail).into_owned();
    if timed_out {
        bail!(
            "the nested run took longer than {} s; the outer guest's CPU then:\n{hang}\n\
             outer console (its last 8 KiB before the NMI):\n{tail}\n\
             outer console after the NMI (its first 8 KiB; the rest streamed above):\n{}",
            spec.timeout.as_secs(),
            String::from_utf8_lossy(&panic_report)
        );
    }
    let bytes = std::fs::read(&result_file).unwrap_or_default();
    let result = parse_result(&bytes).map_err(|e| {
        let errors = qemu_errors.lines().filter(|l| !l.contains("TCG doesn't support")).collect::<Vec<_>>().join("\n");
        anyhow::anyhow!("no result from the outer guest ({e}); QEMU {status}; {errors}\nouter console:\n{tail}")
    })?;
    let mut outputs = result.outputs;
    if let Some(at) = outputs.iter().position(|(p, _)| p == OUTER_KALLSYMS) {
        if let (_, Some(bytes)) = outputs.remove(at) {
            if let Err(e) = save_text_symbols(&bytes, &symbols) {
                tracing::debug!("caching the outer guest's symbols in {}: {e:#}", symbols.display());
            }
        }
    }
    let (outputs, strays) = requested_only(&spec.outputs, outputs);
    if !strays.is_empty() {
        tracing::warn!("the outer guest sent back files nobody asked for; not written: {}", strays.join(", "));
    }
    Ok(NestedOutcome { exit: result.exit, outputs, initramfs_bytes, wall })
}

/// An output file: where it goes on the host, and its bytes (`None`: not written).
type Output = (PathBuf, Option<Vec<u8>>);

/// The outputs the outer guest sent back that were asked for (`requested`, each at most
/// once), and the paths of the others. The guest runs code this host did not check (a
/// scenario's payloads, a kernel under test): what it returns must not choose where the
/// host writes.
fn requested_only(requested: &[PathBuf], got: Vec<(String, Option<Vec<u8>>)>) -> (Vec<Output>, Vec<String>) {
    let mut kept: Vec<Output> = Vec::new();
    let mut strays = Vec::new();
    for (path, bytes) in got {
        let p = PathBuf::from(&path);
        if requested.contains(&p) && !kept.iter().any(|(k, _)| *k == p) {
            kept.push((p, bytes));
        } else {
            strays.push(path);
        }
    }
    (kept, strays)
}

/// The outer guest's kallsyms, sent back by the first run with a kernel.
const OUTER_KALLSYMS: &str = "/proc/kallsyms";

/// Where the outer guest's text symbols are cached: beside the kernel in its cache entry.
fn outer_symbols_file(kernel: &ResolvedKernel) -> PathBuf {
    kernel.vmlinux.with_file_name("outer-text-symbols")
}

/// Keeps the text symbols (`ADDR t NAME`) of a kallsyms dump in `path`, atomically.
fn save_text_symbols(kallsyms: &[u8], path: &Path) -> Result<()> {
    let text: String = String::from_utf8_lossy(kallsyms)
        .lines()
        .filter(|l| matches!(l.split_whitespace().nth(1), Some("t" | "T")))
        .flat_map(|l| [l, "\n"])
        .collect();
    if text.is_empty() || text.starts_with("0000000000000000") {
        bail!("kallsyms without addresses");
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// What `schedbox run`/`vm info` inside the outer guest needs besides its
/// arguments: the kernel's cache entry (its vmlinux, bzImage, config and
/// manifest), the static agent and, when built, the fixture scheduler.
pub fn schedbox_files(kernel: &ResolvedKernel) -> Result<Vec<PathBuf>> {
    let mut files = vec![kernel.vmlinux.clone()];
    files.extend(kernel.bzimage.iter().cloned());
    files.extend(kernel.config.iter().cloned());
    let manifest = kernel.vmlinux.with_file_name("manifest.json");
    if manifest.is_file() {
        files.push(manifest);
    }
    // prepare_boot adds virtio_mmio, and null_blk with configfs on demand, where the
    // modules package has them.
    let modules = [crate::machine::VIRTIO_MMIO].into_iter().chain(crate::machine::NULL_BLK);
    files.extend(modules.flat_map(|m| kernel.modules_dir.as_ref().map(|d| d.join(m))).filter(|p| p.is_file()));
    let agent = crate::machine::find_agent()?;
    files.extend(crate::machine::find_fixture_scheduler(&agent));
    files.push(agent);
    Ok(files)
}

/// Compiles each component with portable code ([`SandboxConfig::portable_code`])
/// into the cache under `cache_root`, so the program in the outer guest (run with
/// `SCHEDBOX_PORTABLE_CODE=1`) loads it from there instead of compiling under
/// TCG; returns the cache files to stage. A component that does not load is
/// left to the program, which reports it.
pub fn precompile(components: &[PathBuf], cache_root: &Path) -> Result<Vec<PathBuf>> {
    let config = SandboxConfig { cache_root: Some(cache_root.to_owned()), portable_code: true, ..Default::default() };
    let sandbox = Sandbox::new(config)?;
    let mut files = Vec::new();
    for c in components {
        let bytes = std::fs::read(c).with_context(|| format!("reading {}", c.display()))?;
        if let Err(e) = sandbox.load_bytes(&c.display().to_string(), &bytes) {
            tracing::debug!(component = %c.display(), "not precompiled: {e}");
        }
        files.extend(sandbox.cache_file(&bytes).filter(|f| f.is_file()));
    }
    Ok(files)
}

/// Every component (`.wasm`) among `paths` and under those that are directories.
pub fn components_in(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = paths.to_vec();
    while let Some(p) = pending.pop() {
        if p.is_dir() {
            pending.extend(std::fs::read_dir(&p).into_iter().flatten().flatten().map(|e| e.path()));
        } else if p.extension().is_some_and(|e| e == "wasm") {
            found.push(p);
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The boot watchdog of the inner guests, seconds, unless the host's environment sets
/// one. Nested under TCG an 8-vCPU guest reaches Ready in about 10 s on a 2-core host
/// (direct TCG: 2.5 s), over 40 s when the host is busy, and took up to 42 s before the
/// outer guest had a periodic timer: the direct default of 90 s leaves too little room.
pub const NESTED_BOOT_TIMEOUT_S: u64 = 300;

/// The host environment a nested program inherits: HOME and the XDG cache
/// (so the kernel cache resolves alike), PATH, logging and `SCHEDBOX_*`
/// settings, plus `SCHEDBOX_PORTABLE_CODE=1` (see [`precompile`]) and, where
/// the host sets none, `SCHEDBOX_BOOT_TIMEOUT=`[`NESTED_BOOT_TIMEOUT_S`].
pub fn inherited_env() -> Vec<(String, String)> {
    nested_env(std::env::vars())
}

/// [`inherited_env`] of the host environment `vars`.
fn nested_env(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let keep = |k: &str| {
        matches!(k, "HOME" | "PATH" | "USER" | "XDG_CACHE_HOME" | "RUST_LOG" | "RUST_BACKTRACE" | "NO_COLOR")
            || k.starts_with("SCHEDBOX_")
    };
    let mut env: Vec<(String, String)> = vars.filter(|(k, _)| keep(k) && k != PORTABLE_CODE_ENV).collect();
    env.push((PORTABLE_CODE_ENV.to_owned(), "1".to_owned()));
    if !env.iter().any(|(k, _)| k == crate::machine::BOOT_TIMEOUT_ENV) {
        env.push((crate::machine::BOOT_TIMEOUT_ENV.to_owned(), NESTED_BOOT_TIMEOUT_S.to_string()));
    }
    env.sort();
    env
}

fn text(p: &Path) -> Result<String> {
    let s = p.to_str().with_context(|| format!("{} is not UTF-8", p.display()))?;
    if s.contains('\n') || !s.starts_with('/') {
        bail!("{s:?}: a nested run stages absolute paths without newlines");
    }
    Ok(s.to_owned())
}

/// `program` without debug info (a debug build is mostly DWARF), in `dir`;
/// the original when `objcopy` is missing.
fn stripped(program: &Path, dir: &Path) -> Result<PathBuf> {
    let out = dir.join("program");
    match Command::new("objcopy").arg("--strip-debug").arg(program).arg(&out).status() {
        Ok(s) if s.success() => Ok(out),
        Ok(s) => bail!("objcopy --strip-debug {} failed: {s}", program.display()),
        Err(e) => {
            tracing::warn!("objcopy not found ({e}): staging {} with its debug info", program.display());
            Ok(program.to_owned())
        }
    }
}

/// The initramfs being filled with host files at their own paths; a path staged twice is added once.
struct Staged<'a> {
    image: &'a mut Initramfs,
    seen: HashSet<PathBuf>,
}

impl Staged<'_> {
    /// `source`'s bytes at `path`.
    fn file(&mut self, path: &Path, source: &Path, mode: u32) -> Result<()> {
        if self.seen.insert(path.to_owned()) {
            self.image.file(&text(path)?, source, mode)?;
        }
        Ok(())
    }

    /// A host file, or every file under a host directory, at the same path.
    fn tree(&mut self, path: &Path) -> Result<()> {
        let meta = std::fs::metadata(path).with_context(|| format!("staging {}", path.display()))?;
        if meta.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<std::io::Result<_>>()?;
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let p = e.path();
                if p.is_dir() || p.is_file() {
                    self.tree(&p)?;
                }
            }
            return Ok(());
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        self.file(path, path, mode)?;
        if mode & 0o111 != 0 {
            // A dynamically linked program brings its libraries (none for scripts and static ones).
            for lib in shared_libraries(path)? {
                self.file(&lib, &lib, 0o755)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_requested_outputs_come_back_once() {
        let requested = vec![PathBuf::from("/home/u/r.json"), PathBuf::from("/home/u/p.svg")];
        let got = vec![
            ("/home/u/r.json".to_owned(), Some(b"{}".to_vec())),
            ("/root/.bashrc".to_owned(), Some(b"evil".to_vec())),
            ("/home/u/r.json".to_owned(), Some(b"second".to_vec())),
            ("/home/u/p.svg".to_owned(), None),
        ];
        let (kept, strays) = requested_only(&requested, got);
        assert_eq!(
            kept,
            vec![(PathBuf::from("/home/u/r.json"), Some(b"{}".to_vec())), (PathBuf::from("/home/u/p.svg"), None)]
        );
        assert_eq!(strays, vec!["/root/.bashrc".to_owned(), "/home/u/r.json".to_owned()]);
    }

    #[test]
    fn staged_paths_must_be_absolute_text() {
        assert!(text(Path::new("relative/x")).unwrap_err().to_string().contains("absolute"));
        assert!(text(Path::new("/a\nb")).is_err());
        assert_eq!(text(Path::new("/a/b")).unwrap(), "/a/b");
    }

    #[test]
    fn nested_programs_get_the_nested_boot_watchdog_unless_the_host_sets_one() {
        let vars = |list: &[(&str, &str)]| list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let env = nested_env(vars(&[("HOME", "/h"), ("SECRET", "x"), ("SCHEDBOX_PORTABLE_CODE", "0")]).into_iter());
        assert_eq!(
            env,
            vars(&[("HOME", "/h"), ("SCHEDBOX_BOOT_TIMEOUT", "300"), ("SCHEDBOX_PORTABLE_CODE", "1")]),
            "nothing but the kept names, portable code on, the nested watchdog"
        );
        let env = nested_env(vars(&[("SCHEDBOX_BOOT_TIMEOUT", "45")]).into_iter());
        assert_eq!(env, vars(&[("SCHEDBOX_BOOT_TIMEOUT", "45"), ("SCHEDBOX_PORTABLE_CODE", "1")]));
    }
}
