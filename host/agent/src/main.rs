//! The schedbox guest agent: PID 1 of the guest.
//!
//! Mounts the pseudo filesystems, loads the kernel modules the host put in the
//! initramfs, enables the cgroup-v2 controllers, reads the topology and kallsyms,
//! connects the data channel named by `schedbox.channel=` on the kernel command
//! line (`auto`, the default: the virtio port named `schedbox`), reports `Ready`
//! and serves requests until told to power off or the host goes away.
//!
//! The same binary is the worker process, forked without exec by the worker parent (see
//! [`zygote`]) or run as `/init worker <json spec>` (see [`worker`]),
//! and the client of guest-initiated host-side ops: `/init host-op ...` (see [`hostops`]).

mod blockdev;
mod channel;
mod exec;
mod hostops;
mod modules;
mod setup;
mod shm;
mod topology;
mod worker;
mod zygote;

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Write};

use std::sync::{Arc, Mutex, OnceLock};

use schedbox_wire::{read_msg, write_msg, AgentMessage, GuestFacts, Request, RequestBody, ResponseBody, WireError};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(worker::ARG) {
        worker::main(args.get(2).map(String::as_str));
    }
    if args.get(1).map(String::as_str) == Some(worker::THREADS_ARG) {
        worker::threads_main();
    }
    if args.get(1).map(String::as_str) == Some(hostops::ARG) {
        hostops::client_main(&args[2..]);
    }
    if let Err(e) = agent() {
        console(&format!("schedbox-agent: fatal: {e}"));
    }
    power_off();
}

/// Writes a line to the kernel console (PID 1's stdout is /dev/console).
fn console(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn agent() -> Result<(), String> {
    let pid1 = std::process::id() == 1;
    if pid1 {
        setup::mount_all().map_err(|e| format!("mounting: {e}"))?;
        // First, so devices (the channel's virtio transport) probe while the rest runs.
        for m in modules::load_all(std::path::Path::new(modules::DIR)) {
            if let Err(e) = m.result {
                console(&format!("schedbox-agent: loading module {}: {e}", m.name));
            }
        }
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let requested = cmdline_value(&cmdline, "schedbox.channel");
    let controllers = setup::enable_controllers();
    let _ = CONTROLLERS.set(controllers);
    // Before any thread starts: the worker parent is forked from a single-threaded agent.
    // `schedbox.workers=exec` starts every worker by a fork and exec of the agent instead
    // (the fallback, kept testable and measurable).
    if cmdline_value(&cmdline, "schedbox.workers") == Some("exec") {
        console("schedbox-agent: schedbox.workers=exec: workers start by exec");
    } else if let Err(e) = zygote::start() {
        console(&format!("schedbox-agent: {e}; workers start by exec"));
    }
    let facts = current_facts(false);
    let channel = channel::resolve(std::path::Path::new("/"), requested, channel::WAIT)?;
    let shown = channel.display();
    let dev = OpenOptions::new().read(true).write(true).open(&channel).map_err(|e| format!("opening {shown}: {e}"))?;
    setup::raw_tty(&dev);
    let mut writer = dev.try_clone().map_err(|e| format!("cloning {shown}: {e}"))?;
    let mut reader = BufReader::new(dev);
    let mut facts = facts;
    facts.uptime_ms = setup::uptime_ms();
    write_msg(&mut writer, &AgentMessage::Ready(facts)).map_err(|e| e.to_string())?;
    // Reading kallsyms costs ~0.5 s of guest CPU under TCG: after Ready, not before.
    std::thread::spawn(|| {
        let _ = KALLSYMS.set(setup::expose_kallsyms());
    });
    // Frames from the request loop and the host-ops forwarder must not interleave.
    let writer: hostops::Writer = Arc::new(Mutex::new(writer));
    let broker = Arc::new(hostops::Broker::default());
    if let Err(e) = hostops::listen(broker.clone(), writer.clone()) {
        console(&format!("schedbox-agent: guest-initiated host ops unavailable: {e}"));
    }
    serve(&mut reader, &writer, &broker)
}

fn serve(reader: &mut BufReader<File>, writer: &hostops::Writer, broker: &hostops::Broker) -> Result<(), String> {
    let mut exec = exec::Executor::new();
    loop {
        let req: Request = match read_msg(reader) {
            Ok(r) => r,
            Err(WireError::Closed) => return Ok(()),
            // A corrupted frame: report it on the console and keep serving;
            // the host times the request out and says so.
            Err(e) => {
                console(&format!("schedbox-agent: bad frame: {e}"));
                continue;
            }
        };
        // A scenario's end fails the guest requests the host has not answered.
        if matches!(req.body, RequestBody::EndScenario | RequestBody::Reset | RequestBody::BeginScenario { .. }) {
            broker.set_active(false);
        }
        // The host cannot service guest requests while it waits on a payload: a client
        // inside that payload would hold the op up until it timed out.
        let blocking = matches!(&req.body, RequestBody::Apply { op: schedbox_ops::Op::WaitPayload { .. }, .. });
        if blocking {
            broker.block(
                "the host is waiting on wait-payload (it serves guest requests between ops and during holds, \
                 not while a payload is awaited)",
            );
        }
        let result = match &req.body {
            RequestBody::HostOpReply { id, result } => broker.reply(*id, result.clone()).map(|()| ResponseBody::Ok),
            body => match exec.handle(body) {
                Some(result) => result,
                None => answer(body),
            },
        };
        if blocking {
            broker.unblock();
        }
        if matches!(req.body, RequestBody::BeginScenario { .. }) && result.is_ok() {
            broker.set_active(true);
        }
        // PID 1 inherits every orphan: collect them after each request.
        exec.reap();
        let sent = {
            let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
            write_msg(&mut *w, &AgentMessage::Response { id: req.id, result })
        };
        sent.map_err(|e| e.to_string())?;
        match req.body {
            RequestBody::PowerOff => return Ok(()),
            RequestBody::Crash => {
                let _ = std::fs::write("/proc/sys/kernel/sysrq", "1");
                let _ = std::fs::write("/proc/sysrq-trigger", "c");
            }
            RequestBody::Hang => loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            },
            _ => {}
        }
    }
}

/// The answer to a request that is not the executor's.
fn answer(body: &RequestBody) -> Result<ResponseBody, String> {
    match body {
        RequestBody::Ping => Ok(ResponseBody::Pong),
        RequestBody::Facts => Ok(ResponseBody::Facts(current_facts(true))),
        RequestBody::Symbols { names } => {
            let map = KALLSYMS.wait();
            Ok(ResponseBody::Symbols(names.iter().map(|n| map.get(n).copied()).collect()))
        }
        RequestBody::ReadFile { path } => {
            std::fs::read_to_string(path).map(ResponseBody::File).map_err(|e| format!("reading {path}: {e}"))
        }
        RequestBody::PayloadWaitLimit { ms } => {
            exec::set_payload_wait_limit(std::time::Duration::from_millis(*ms));
            Ok(ResponseBody::Ok)
        }
        RequestBody::PowerOff | RequestBody::Crash | RequestBody::Hang => Ok(ResponseBody::Ok),
        _ => Err("request not supported by this agent".to_owned()),
    }
}

/// Controllers enabled at set-up.
static CONTROLLERS: OnceLock<Vec<String>> = OnceLock::new();
/// `/proc/kallsyms` line count, set by a thread started after Ready.
static KALLSYMS: OnceLock<std::collections::HashMap<String, u64>> = OnceLock::new();

/// The facts as they are now; `with_kallsyms` waits for the kallsyms count.
fn current_facts(with_kallsyms: bool) -> GuestFacts {
    let mut f = topology::facts(std::path::Path::new("/"));
    f.cgroup_controllers = CONTROLLERS.get().cloned().unwrap_or_default();
    if with_kallsyms {
        f.kallsyms = KALLSYMS.wait().len() as u64;
    }
    f.uptime_ms = setup::uptime_ms();
    f
}

fn cmdline_value<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline.split_whitespace().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn power_off() {
    // SAFETY: sync(2) has no preconditions.
    unsafe { libc::sync() };
    if std::process::id() == 1 {
        // SAFETY: reboot(2) with RB_POWER_OFF only needs CAP_SYS_BOOT, which
        // PID 1 has; it does not return on success.
        unsafe { libc::reboot(libc::RB_POWER_OFF) };
    }
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    #[test]
    fn cmdline_values() {
        let c = "console=ttyS0 schedbox.channel=/dev/hvc1 quiet";
        assert_eq!(super::cmdline_value(c, "schedbox.channel"), Some("/dev/hvc1"));
        assert_eq!(super::cmdline_value(c, "schedbox.nope"), None);
    }
}
