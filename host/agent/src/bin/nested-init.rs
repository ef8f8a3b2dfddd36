//! PID 1 of a nested run's outer guest: mounts the pseudo filesystems, loads
//! the plan's modules (kvm and its dependencies), runs the planned program
//! with the console as its stdout and stderr, sends the planned outputs and
//! its exit status back over the `schedbox.nested` virtio-serial port, and
//! powers the outer guest off. The plan and the result stream are described
//! in `schedbox_wire::nested`.

#[path = "../modules.rs"]
#[allow(dead_code)]
mod modules;
#[path = "../setup.rs"]
#[allow(dead_code)]
mod setup;

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use schedbox_wire::nested::{write_output, NestedPlan, PLAN_PATH, PORT_NAME, RESULT_MAGIC};

const MOUNTS: &[(&str, &str, &str)] = &[
    ("proc", "/proc", "proc"),
    ("sysfs", "/sys", "sysfs"),
    ("devtmpfs", "/dev", "devtmpfs"),
    ("tmpfs", "/dev/shm", "tmpfs"),
    ("tmpfs", "/run", "tmpfs"),
];

fn main() {
    let outcome = run();
    if let Err(e) = &outcome {
        eprintln!("nested-init: {e}");
    }
    if let Err(e) = report(outcome) {
        eprintln!("nested-init: sending the results: {e}");
    }
    // SAFETY: sync(2) and reboot(2) take no pointers; as PID 1 we hold CAP_SYS_BOOT.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
}

/// What ran: the plan and the program's status.
struct Ran {
    plan: NestedPlan,
    code: i32,
}

fn run() -> Result<Ran, String> {
    // The console is the program's stdout: raw, so its bytes reach the host as
    // written (no `\n` → `\r\n`).
    if let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() {
        setup::raw_tty(&std::fs::File::from(fd));
    }
    for (src, dst, fs) in MOUNTS {
        setup::mount(src, dst, fs).map_err(|e| format!("mounting {fs} on {dst}: {e}"))?;
    }
    let text = std::fs::read_to_string(PLAN_PATH).map_err(|e| format!("{PLAN_PATH}: {e}"))?;
    let plan: NestedPlan = serde_json::from_str(&text).map_err(|e| format!("{PLAN_PATH}: {e}"))?;
    for m in &plan.modules {
        let t = Instant::now();
        let compressed = !m.ends_with(".ko");
        match modules::load(Path::new(m), compressed, c"") {
            Ok(_) => eprintln!("nested-init: loaded {m} in {} ms", t.elapsed().as_millis()),
            Err(e) => return Err(format!("loading module {m}: {e}")),
        }
    }
    let (program, args) = plan.argv.split_first().ok_or("the plan has no program")?;
    for out in &plan.outputs {
        if let Some(parent) = Path::new(out).parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
    }
    std::fs::create_dir_all(&plan.cwd).map_err(|e| format!("creating {}: {e}", plan.cwd))?;
    let status = Command::new(program)
        .args(args)
        .env_clear()
        .envs(plan.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&plan.cwd)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("starting {program}: {e}"))?;
    let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Ok(Ran { plan, code })
}

/// Writes the result stream to the results port.
fn report(outcome: Result<Ran, String>) -> Result<(), String> {
    let port = find_port().ok_or_else(|| format!("no virtio-serial port named {PORT_NAME}"))?;
    let mut out = std::fs::OpenOptions::new().write(true).open(&port).map_err(|e| format!("{port}: {e}"))?;
    let io = |e: std::io::Error| format!("{port}: {e}");
    writeln!(out, "{RESULT_MAGIC}").map_err(io)?;
    match outcome {
        Ok(ran) => {
            for path in &ran.plan.outputs {
                write_output(&mut out, path, std::fs::read(path).ok().as_deref()).map_err(io)?;
            }
            writeln!(out, "exit {}", ran.code).map_err(io)?;
        }
        Err(e) => writeln!(out, "error {}", e.replace('\n', " ")).map_err(io)?,
    }
    // A virtio-serial port has no fsync; the write is with the host once it returns.
    out.flush().map_err(io)
}

/// `/dev/vportNpM` of the port named [`PORT_NAME`].
fn find_port() -> Option<String> {
    std::fs::read_dir("/sys/class/virtio-ports").ok()?.flatten().find_map(|e| {
        let name = std::fs::read_to_string(e.path().join("name")).ok()?;
        (name.trim() == PORT_NAME).then(|| format!("/dev/{}", e.file_name().to_string_lossy()))
    })
}
