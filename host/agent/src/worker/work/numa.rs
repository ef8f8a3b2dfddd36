//! The NUMA work types: a worker that moves itself and its working set from node to
//! node (`numa-migration-churn`), and one that binds its working set to one node after
//! another and sweeps it from a fixed node (`numa-working-set-sweep`). Both move pages
//! explicitly (`move_pages(2)`, `mbind(2)` with MPOL_MF_MOVE) rather than waiting for
//! automatic NUMA balancing, so every period migrates pages: the kernel counts them in
//! `/proc/vmstat` `pgmigrate_success` (not `numa_pages_migrated`, which counts only the
//! balancer's hinting-fault migrations).

use std::time::{Duration, Instant};

use super::Meter;
use crate::shm::{Lat, Shm};

/// `mbind(2)` / `set_mempolicy(2)` mode: allocate only on the nodes of the mask.
const MPOL_BIND: libc::c_int = 2;
/// `mbind(2)` flag: fail if a page cannot be placed by the policy.
const MPOL_MF_STRICT: libc::c_uint = 1;
/// `mbind(2)` / `move_pages(2)` flag: move pages mapped only by this process.
const MPOL_MF_MOVE: libc::c_int = 1 << 1;
const PAGE: usize = 4096;

/// Ends the worker with a reason on stderr (the agent's console).
fn die(what: &str) -> ! {
    eprintln!("schedbox worker: {what}");
    std::process::exit(3)
}

/// A CPU or node list as sysfs writes it ("0-3,8,10-11").
fn parse_list(s: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u32>().ok()),
        }
    }
    out
}

/// The nodes that have memory and CPUs this worker may use, with those CPUs, in node
/// order. Dies when fewer than two (the validator refuses a 1-node topology; a cpuset
/// can still confine a worker to one node).
fn usable_nodes(what: &str, allowed: &[u32]) -> Vec<(u32, Vec<u32>)> {
    let root = "/sys/devices/system/node";
    let with_memory = std::fs::read_to_string(format!("{root}/has_memory")).map(|s| parse_list(&s)).unwrap_or_default();
    let nodes: Vec<(u32, Vec<u32>)> = with_memory
        .into_iter()
        .filter_map(|n| {
            let cpus = parse_list(&std::fs::read_to_string(format!("{root}/node{n}/cpulist")).ok()?);
            let cpus: Vec<u32> = cpus.into_iter().filter(|c| allowed.contains(c)).collect();
            (!cpus.is_empty()).then_some((n, cpus))
        })
        .collect();
    if nodes.len() < 2 || nodes.iter().any(|(n, _)| *n >= 64) {
        die(&format!(
            "{what} needs 2 or more NUMA nodes (below 64) with memory and CPUs it may use; found {:?} \
             (allowed CPUs {allowed:?})",
            nodes.iter().map(|(n, _)| n).collect::<Vec<_>>()
        ));
    }
    nodes
}

/// A private anonymous mapping of `len` bytes, every page touched (so present).
fn working_set(len: usize) -> &'static mut [u8] {
    let buf = match super::Anon::new(len) {
        Ok(map) => map.leak(),
        Err(e) => die(&format!("mapping a {len}-byte working set: {e}")),
    };
    touch(buf);
    buf
}

/// Writes one byte per cache line.
fn touch(buf: &mut [u8]) {
    for i in (0..buf.len()).step_by(64) {
        buf[i] = buf[i].wrapping_add(1);
    }
    std::hint::black_box(buf);
}

/// Pins this process to `cpus` or dies saying why.
fn pin(cpus: &[u32]) {
    if let Err(e) = super::super::set_affinity(0, cpus) {
        die(&format!("pinning to CPUs {cpus:?}: {e}"));
    }
}

/// Moves every page of `buf` to `node` with `move_pages(2)`.
fn move_to(buf: &mut [u8], node: u32) {
    let pages: Vec<*mut libc::c_void> =
        (0..buf.len()).step_by(PAGE).map(|off| buf[off..].as_mut_ptr().cast::<libc::c_void>()).collect();
    let nodes = vec![node as libc::c_int; pages.len()];
    let mut status = vec![0 as libc::c_int; pages.len()];
    // SAFETY: `pages`, `nodes` and `status` each hold `pages.len()` entries and live
    // for the call; every page address lies in this process's own mapping `buf`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_pages,
            0,
            pages.len() as libc::c_ulong,
            pages.as_ptr(),
            nodes.as_ptr(),
            status.as_mut_ptr(),
            MPOL_MF_MOVE,
        )
    };
    if rc < 0 {
        die(&format!("move_pages to node {node}: {}", std::io::Error::last_os_error()));
    }
}

/// Binds `buf` to `node` (MPOL_BIND) and moves its pages there with `mbind(2)`.
fn bind_to(buf: &mut [u8], node: u32) {
    let mask: libc::c_ulong = 1 << node;
    // SAFETY: `buf` is a page-aligned mapping of this process of `buf.len()` bytes;
    // `mask` is one unsigned long, so maxnode 64 + 1 bits (the kernel reads maxnode - 1).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mbind,
            buf.as_mut_ptr(),
            buf.len() as libc::c_ulong,
            MPOL_BIND,
            &mask as *const libc::c_ulong,
            65 as libc::c_ulong,
            MPOL_MF_MOVE as libc::c_uint | MPOL_MF_STRICT,
        )
    };
    if rc != 0 {
        die(&format!("mbind to node {node}: {}", std::io::Error::last_os_error()));
    }
}

/// numa-migration-churn: every `period_ms`, pin to the next node's CPUs and move the
/// working set there; spin over it in between. One work unit per move.
pub fn migration_churn(allowed: &[u32], period_ms: u64, size_kib: u32, meter: &mut Meter) -> ! {
    let nodes = usable_nodes("numa-migration-churn", allowed);
    let buf = working_set(size_kib as usize * 1024);
    let period = Duration::from_millis(period_ms);
    for (node, cpus) in nodes.iter().cycle() {
        pin(cpus);
        move_to(buf, *node);
        meter.tick();
        let end = Instant::now() + period;
        while Instant::now() < end {
            touch(buf);
        }
    }
    unreachable!("cycle over a non-empty list never ends")
}

/// numa-working-set-sweep: pinned to the first node's CPUs, bind the working set to
/// each node in turn and sweep it `passes` times there; each pass's time goes into the
/// worker's request latency. One work unit per pass.
pub fn working_set_sweep(shm: &Shm, slot: usize, allowed: &[u32], size_kib: u32, passes: u32, meter: &mut Meter) -> ! {
    let nodes = usable_nodes("numa-working-set-sweep", allowed);
    pin(&nodes[0].1);
    let buf = working_set(size_kib as usize * 1024);
    for (node, _) in nodes.iter().cycle() {
        bind_to(buf, *node);
        for _ in 0..passes {
            let t0 = Instant::now();
            touch(buf);
            shm.record(slot, Lat::Request, t0.elapsed().as_nanos() as u64);
            meter.tick();
        }
    }
    unreachable!("cycle over a non-empty list never ends")
}

#[cfg(test)]
mod tests {
    use super::parse_list;

    #[test]
    fn sysfs_lists_parse() {
        assert_eq!(parse_list("0-2,5,7-8\n"), [0, 1, 2, 5, 7, 8]);
        assert_eq!(parse_list("1"), [1]);
        assert!(parse_list("\n").is_empty());
    }
}
