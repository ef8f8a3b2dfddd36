//! The guest's CPU, cache and NUMA layout as sysfs shows it.

use std::collections::BTreeSet;
use std::path::Path;

use schedbox_wire::GuestFacts;

/// Parses a kernel CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(s: &str) -> Vec<u32> {
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

fn read(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(root.join(rel)).ok()
}

/// Reads the facts under `root` (`/` in the guest; a fixture tree in tests).
pub fn facts(root: &Path) -> GuestFacts {
    let cpus = read(root, "sys/devices/system/cpu/online").map(|s| parse_cpu_list(&s)).unwrap_or_default();
    GuestFacts {
        kernel_release: read(root, "proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned(),
        llc_groups: llc_groups(root, &cpus),
        numa_nodes: numa_nodes(root),
        sched_ext_state: read(root, "sys/kernel/sched_ext/state")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "unsupported".into()),
        cpus_online: cpus,
        ..GuestFacts::default()
    }
}

/// Groups of CPUs sharing their highest-level cache.
fn llc_groups(root: &Path, cpus: &[u32]) -> Vec<Vec<u32>> {
    let mut groups = BTreeSet::new();
    for cpu in cpus {
        let dir = format!("sys/devices/system/cpu/cpu{cpu}/cache");
        let mut best: Option<(u32, Vec<u32>)> = None;
        for idx in 0..8 {
            let Some(level) = read(root, &format!("{dir}/index{idx}/level")).and_then(|l| l.trim().parse::<u32>().ok())
            else {
                continue;
            };
            let Some(list) = read(root, &format!("{dir}/index{idx}/shared_cpu_list")) else { continue };
            if best.as_ref().is_none_or(|(l, _)| level > *l) {
                best = Some((level, parse_cpu_list(&list)));
            }
        }
        groups.insert(best.map(|(_, g)| g).unwrap_or_else(|| vec![*cpu]));
    }
    groups.into_iter().collect()
}

fn numa_nodes(root: &Path) -> Vec<Vec<u32>> {
    let mut nodes = Vec::new();
    for n in 0..1024 {
        match read(root, &format!("sys/devices/system/node/node{n}/cpulist")) {
            Some(list) => nodes.push(parse_cpu_list(&list)),
            None => break,
        }
    }
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list(""), Vec::<u32>::new());
    }

    #[test]
    fn llc_groups_from_a_sysfs_tree() {
        let dir = std::env::temp_dir().join(format!("agent-topo-{}", std::process::id()));
        let w = |rel: &str, s: &str| {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, s).unwrap();
        };
        w("sys/devices/system/cpu/online", "0-3\n");
        for cpu in 0..4 {
            let base = format!("sys/devices/system/cpu/cpu{cpu}/cache");
            w(&format!("{base}/index0/level"), "1\n");
            w(&format!("{base}/index0/shared_cpu_list"), &format!("{cpu}\n"));
            w(&format!("{base}/index3/level"), "3\n");
            w(&format!("{base}/index3/shared_cpu_list"), if cpu < 2 { "0-1\n" } else { "2-3\n" });
        }
        w("sys/devices/system/node/node0/cpulist", "0-1\n");
        w("sys/devices/system/node/node1/cpulist", "2-3\n");
        w("sys/kernel/sched_ext/state", "disabled\n");
        let f = facts(&dir);
        assert_eq!(f.cpus_online, vec![0, 1, 2, 3]);
        assert_eq!(f.llc_groups, vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(f.numa_nodes, vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(f.sched_ext_state, "disabled");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
