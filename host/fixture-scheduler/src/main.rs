//! `schedbox-fixture-scheduler`: loads the global-FIFO sched_ext scheduler
//! (`bpf/scx_fifo.bpf.c`), attaches it, prints
//! `schedbox-fixture-scheduler: attached <name> (CONFIG_HZ=<hz>)` (the kernel config's value,
//! through a `__kconfig` extern: it does not load without the config), and runs until SIGTERM/SIGINT
//! or until the kernel ejects it; then detaches and prints how it exited:
//! `schedbox-fixture-scheduler: exit kind=<kind> (<name>) code=<code> reason=<reason> msg=<msg> dispatched=<n>`.
//!
//! It exits 0 when it was stopped by a signal and the kernel reported a clean
//! unregistration, 1 when the kernel ejected it (error, stall) or anything failed.
//!
//! Flags: `--name NAME` (the ops name the kernel reports in
//! `/sys/kernel/sched_ext/root/ops`: letters, digits, `_`, `.`; `fixture` by default), `--stall-after SECS`
//! (stop dispatching; a 1 s watchdog timeout then ejects it), `--exit-after SECS`
//! (exit through `scx_bpf_error`), `--timeout-ms MS` (the watchdog timeout), `--planted` (load
//! the object with the planted bug instead: it exits through `scx_bpf_error` when a task's
//! cpumask narrows while its cgroup is frozen; see bpf/scx_fifo.bpf.c).

use std::process::ExitCode;
use std::time::Duration;

use libbpf_rs::{MapCore, MapFlags, ObjectBuilder};

static BPF_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/scx_fifo.bpf.o"));
/// The same program built with `-DSCHEDBOX_PLANTED`: the fixture with a planted bug.
static BPF_OBJECT_PLANTED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/scx_planted.bpf.o"));

/// Mirrors `struct sched_ext_ops` as bpf/scx_fifo.bpf.c declares it (not the kernel's layout).
const OPS_TIMEOUT_MS: usize = 48;
const OPS_NAME: usize = 52;
const OPS_NAME_LEN: usize = 128;
/// Mirrors `struct fifo_cfg` (the only variable in `.data`).
const CFG_STALL_AFTER_NS: usize = 8;
const CFG_EXIT_AFTER_NS: usize = 16;
/// Mirrors `struct fifo_stats` (the only variable in `.bss`).
mod stats {
    pub const NR_DISPATCHED: usize = 8;
    pub const EXIT_CODE: usize = 24;
    pub const EXIT_KIND: usize = 32;
    /// CONFIG_HZ, read from the kernel config through a `__kconfig` extern by ops.init.
    pub const HZ: usize = 36;
    pub const EXIT_REASON: (usize, usize) = (40, 128);
    pub const EXIT_MSG: (usize, usize) = (168, 256);
}

const PREFIX: &str = "schedbox-fixture-scheduler";

struct Args {
    name: String,
    stall_after: Option<f64>,
    exit_after: Option<f64>,
    timeout_ms: Option<u32>,
    planted: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args { name: "fixture".into(), stall_after: None, exit_after: None, timeout_ms: None, planted: false };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let secs = |v: String| -> Result<f64, String> {
            v.parse::<f64>()
                .ok()
                .filter(|s| *s >= 0.0)
                .ok_or_else(|| format!("{flag}: {v:?} is not a number of seconds"))
        };
        match flag.as_str() {
            "--name" => a.name = value()?,
            "--stall-after" => a.stall_after = Some(secs(value()?)?),
            "--exit-after" => a.exit_after = Some(secs(value()?)?),
            "--timeout-ms" => {
                let v = value()?;
                a.timeout_ms = Some(v.parse().map_err(|_| format!("--timeout-ms: {v:?} is not a number"))?);
            }
            "--planted" => a.planted = true,
            "-h" | "--help" => {
                println!(
                    "usage: {PREFIX} [--name NAME] [--stall-after SECS] [--exit-after SECS] [--timeout-ms MS] [--planted]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    // The kernel copies the ops name with bpf_obj_name_cpy: letters, digits, `_` and `.`.
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'.';
    if a.name.is_empty() || a.name.len() >= OPS_NAME_LEN || !a.name.bytes().all(ok) {
        return Err(format!(
            "--name {:?}: 1 to {} letters, digits, `_` or `.` (the kernel refuses other ops names)",
            a.name,
            OPS_NAME_LEN - 1
        ));
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{PREFIX}: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{PREFIX}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

fn cstr(buf: &[u8], (at, len): (usize, usize)) -> String {
    let s = &buf[at..at + len];
    String::from_utf8_lossy(&s[..s.iter().position(|&b| b == 0).unwrap_or(len)]).into_owned()
}

fn exit_kind_name(kind: i32) -> &'static str {
    match kind {
        0 => "none",
        1 => "done",
        64 => "unreg",
        65 => "unreg-bpf",
        66 => "unreg-kern",
        67 => "sysrq",
        1024 => "error",
        1025 => "error-bpf",
        1026 => "error-stall",
        _ => "other",
    }
}

fn run(args: &Args) -> Result<ExitCode, String> {
    let signals = block_signals();
    let mut builder = ObjectBuilder::default();
    builder.name("scx_fifo").map_err(|e| format!("naming the object: {e}"))?;
    let object = if args.planted { BPF_OBJECT_PLANTED } else { BPF_OBJECT };
    let mut open = builder.open_memory(object).map_err(|e| format!("opening the BPF object: {e}"))?;
    for mut map in open.maps_mut() {
        let name = map.name().to_string_lossy().into_owned();
        let Some(data) = map.initial_value_mut() else { continue };
        match name.as_str() {
            "fifo_ops" => {
                let timeout = args.timeout_ms.unwrap_or(if args.stall_after.is_some() { 1000 } else { 0 });
                data[OPS_TIMEOUT_MS..OPS_TIMEOUT_MS + 4].copy_from_slice(&timeout.to_ne_bytes());
                let field = &mut data[OPS_NAME..OPS_NAME + OPS_NAME_LEN];
                field.fill(0);
                field[..args.name.len()].copy_from_slice(args.name.as_bytes());
            }
            n if n.ends_with(".data") => {
                let ns = |s: Option<f64>| s.map_or(0, |s| ((s * 1e9) as u64).max(1));
                put_u64(data, CFG_STALL_AFTER_NS, ns(args.stall_after));
                put_u64(data, CFG_EXIT_AFTER_NS, ns(args.exit_after));
            }
            _ => {}
        }
    }
    let mut obj = open.load().map_err(|e| format!("loading the BPF object (verifier or kernel refused it): {e}"))?;
    let link = {
        let mut ops =
            obj.maps_mut().find(|m| m.name() == "fifo_ops").ok_or("the BPF object has no struct_ops map fifo_ops")?;
        ops.attach_struct_ops().map_err(|e| {
            format!("attaching {} (is another sched_ext scheduler attached? the kernel allows one): {e}", args.name)
        })?
    };
    let bss = obj.maps().find(|m| m.name().to_string_lossy().ends_with(".bss")).ok_or("no .bss map")?;
    let read_stats = || -> Result<Vec<u8>, String> {
        bss.lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| format!("reading .bss: {e}"))?
            .ok_or_else(|| "reading .bss: empty".to_owned())
    };
    let hz = read_stats().map(|s| i32::from_ne_bytes(s[stats::HZ..stats::HZ + 4].try_into().unwrap()));
    println!("{PREFIX}: attached {} (CONFIG_HZ={})", args.name, hz.map_or_else(|e| e, |h| h.to_string()));
    let kind_of = |s: &[u8]| i32::from_ne_bytes(s[stats::EXIT_KIND..stats::EXIT_KIND + 4].try_into().unwrap());

    // Wait for a signal, or for the kernel to eject us (ops.exit recorded an exit kind).
    let signalled = loop {
        if let Some(sig) = wait_signal(&signals, Duration::from_millis(100)) {
            break Some(sig);
        }
        if kind_of(&read_stats()?) != 0 {
            break None;
        }
    };
    drop(link); // detach (a no-op if the kernel already ejected the scheduler)
    let mut s = read_stats()?;
    for _ in 0..50 {
        if kind_of(&s) != 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        s = read_stats()?;
    }
    let kind = kind_of(&s);
    let code = i64::from_ne_bytes(s[stats::EXIT_CODE..stats::EXIT_CODE + 8].try_into().unwrap());
    let dispatched = u64::from_ne_bytes(s[stats::NR_DISPATCHED..stats::NR_DISPATCHED + 8].try_into().unwrap());
    println!(
        "{PREFIX}: exit kind={} ({}) code={code} reason={:?} msg={:?} dispatched={dispatched}{}",
        exit_kind_name(kind),
        kind,
        cstr(&s, stats::EXIT_REASON),
        cstr(&s, stats::EXIT_MSG),
        signalled.map_or(String::new(), |sig| format!(" signal={sig}")),
    );
    // An ejection by the kernel (error kinds >= 1024) is a failure; a detach we asked for is not.
    Ok(if signalled.is_some() && kind < 1024 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Blocks SIGTERM and SIGINT so that `wait_signal` can take them synchronously.
fn block_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-set calls on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_signal(set: &libc::sigset_t, timeout: Duration) -> Option<i32> {
    let ts = libc::timespec { tv_sec: timeout.as_secs() as _, tv_nsec: timeout.subsec_nanos() as _ };
    // SAFETY: `set` is an initialised signal set; info may be null.
    let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}
