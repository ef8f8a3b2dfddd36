//! Boots a Linux kernel on the VMM and streams its console to stdout.
//!
//! ```text
//! boot KERNEL [--initramfs F] [--cmdline S] [--cpus N | --topology 1n2l2c1t] [--memory MIB] [--until TEXT] [--timeout S] [--hide-cx16]
//! ```
//!
//! Prints `setup_ms` (process start → vCPUs started) and, with `--until`,
//! `until_ms` (process start → TEXT on the console). Where /dev/kvm cannot
//! boot a kernel, run it nested: `schedbox nested --exec <this example> -- KERNEL …`.

use std::io::Write;
use std::time::{Duration, Instant};

use schedbox_kvm::linux::{LinuxSpec, LinuxVm, Watch};
use schedbox_kvm::x86::cpuid::{CpuShape, CpuidOptions};

fn main() {
    let start = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(start, &args) {
        eprintln!("boot: {e}");
        std::process::exit(1);
    }
}

fn run(start: Instant, args: &[String]) -> Result<(), String> {
    let mut it = args.iter();
    let mut kernel = None;
    let (mut initramfs, mut cmdline, mut until) = (None, "console=ttyS0".to_owned(), None);
    let (mut cpus, mut memory, mut timeout, mut hide_cx16) = (1u32, 512u64, 60u64, false);
    let mut topology = None;
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--initramfs" => initramfs = Some(val()?.into()),
            "--cmdline" => cmdline = val()?,
            "--cpus" => cpus = val()?.parse().map_err(|e| format!("--cpus: {e}"))?,
            "--topology" => topology = Some(parse_topology(&val()?)?),
            "--memory" => memory = val()?.parse().map_err(|e| format!("--memory: {e}"))?,
            "--until" => until = Some(val()?),
            "--timeout" => timeout = val()?.parse().map_err(|e| format!("--timeout: {e}"))?,
            "--hide-cx16" => hide_cx16 = true,
            k if kernel.is_none() => kernel = Some(k.into()),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let shape = topology.unwrap_or(CpuShape {
        nodes: 1,
        llcs_per_node: 1,
        cores_per_llc: cpus,
        threads_per_core: 1,
        min_llc_bits: 0,
    });
    let spec = LinuxSpec {
        vmlinux: kernel.ok_or("usage: boot KERNEL [options]")?,
        initramfs,
        cmdline,
        shape,
        memory: memory << 20,
        cpuid: CpuidOptions { hide_xsave: true, hide_cx16 },
    };
    let mut guest = LinuxVm::boot(&spec).map_err(|e| e.to_string())?;
    println!("setup_ms {}", start.elapsed().as_secs_f64() * 1e3);
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let mut pos = 0;
    let mut out = std::io::stdout();
    loop {
        let w = guest.watch(Duration::from_millis(50), |c| until.as_ref().is_some_and(|u| contains(c, u.as_bytes())));
        let (bytes, next) = guest.console.output.read_from(pos);
        pos = next;
        let _ = out.write_all(&bytes);
        let _ = out.flush();
        match w {
            Watch::Reached => {
                println!("\nuntil_ms {}", start.elapsed().as_secs_f64() * 1e3);
                return Ok(());
            }
            Watch::Ended(end) => {
                println!("\nended {end:?} after {} ms", start.elapsed().as_millis());
                return Ok(());
            }
            Watch::TimedOut if Instant::now() >= deadline => {
                print_vcpus(&mut guest);
                return Err(format!("timed out after {timeout} s"));
            }
            Watch::TimedOut => {}
        }
    }
}

/// Parks the vCPUs and prints where each one was.
fn print_vcpus(guest: &mut LinuxVm) {
    if let Err(e) = guest.vm.pause() {
        println!("pause: {e}");
    }
    for i in 0..guest.vm.states().len() {
        if let Ok((r, s)) = guest.vm.registers(i) {
            println!("vcpu{i}: rip {:#x} rsp {:#x} rflags {:#x} cr3 {:#x}", r.rip, r.rsp, r.rflags, s.cr3);
        }
    }
}

/// `<nodes>n<llcs>l<cores>c<threads>t`.
fn parse_topology(s: &str) -> Result<CpuShape, String> {
    let mut n = [0u32; 4];
    let mut rest = s;
    for (i, unit) in ['n', 'l', 'c', 't'].into_iter().enumerate() {
        let (num, r) = rest.split_once(unit).ok_or_else(|| format!("--topology {s:?}: expected like 1n2l2c1t"))?;
        n[i] = num.parse().map_err(|e| format!("--topology {s:?}: {e}"))?;
        rest = r;
    }
    Ok(CpuShape { nodes: n[0], llcs_per_node: n[1], cores_per_llc: n[2], threads_per_core: n[3], min_llc_bits: 0 })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
