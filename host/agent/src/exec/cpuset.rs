//! From a [`CpusetSpec`] or an [`AffinityIntent`] to a CPU list, against the guest's
//! topology. Pure functions: the caller reads sysfs and the cgroup's effective cpuset.

use schedbox_ops::{AffinityIntent, CpusetSpec};

/// The guest's CPUs as the resolvers see them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topo {
    /// Online CPUs, sorted: the "usable" CPUs fractions and chunks refer to.
    pub online: Vec<u32>,
    /// CPUs sharing a last-level cache, by LLC index.
    pub llcs: Vec<Vec<u32>>,
    /// CPUs of each NUMA node, by node index.
    pub nodes: Vec<Vec<u32>>,
}

impl Topo {
    /// The running guest's topology.
    pub fn read() -> Self {
        let f = crate::topology::facts(std::path::Path::new("/"));
        let mut online = f.cpus_online;
        online.sort_unstable();
        Self { online, llcs: f.llc_groups, nodes: f.numa_nodes }
    }
}

/// Resolves `spec` to a sorted, non-empty CPU list.
pub fn resolve(spec: &CpusetSpec, topo: &Topo) -> Result<Vec<u32>, String> {
    let usable = &topo.online;
    let n = usable.len();
    if n == 0 {
        return Err("the guest reports no online CPU".into());
    }
    let online_only = |cpus: &[u32]| -> Vec<u32> { cpus.iter().copied().filter(|c| usable.contains(c)).collect() };
    let out = match spec {
        CpusetSpec::Llc(i) => {
            let group = topo.llcs.get(*i as usize).ok_or_else(|| {
                format!("llc({i}) does not exist: the guest has {} LLC groups {:?}", topo.llcs.len(), topo.llcs)
            })?;
            online_only(group)
        }
        CpusetSpec::Numa(i) => {
            let node = topo
                .nodes
                .get(*i as usize)
                .ok_or_else(|| format!("numa({i}) does not exist: the guest has {} NUMA nodes", topo.nodes.len()))?;
            online_only(node)
        }
        CpusetSpec::Range { start, end } => {
            let lo = ((start * n as f64).floor().max(0.0) as usize).min(n - 1);
            let hi = ((end * n as f64).ceil() as usize).clamp(lo + 1, n);
            usable[lo..hi].to_vec()
        }
        CpusetSpec::Disjoint { index, of } => {
            let (s, e) = chunk(*index, *of, n)?;
            usable[s..e].to_vec()
        }
        CpusetSpec::Overlap { index, of, frac } => {
            let (s, e) = chunk(*index, *of, n)?;
            let widen = (frac * (e - s) as f64).ceil().max(0.0) as usize;
            usable[s.saturating_sub(widen)..(e + widen).min(n)].to_vec()
        }
        CpusetSpec::Exact(cpus) => {
            if let Some(c) = cpus.iter().find(|c| !usable.contains(c)) {
                return Err(format!("exact CPU {c} is not online (online: {})", format_cpu_list(usable)));
            }
            let mut v = cpus.clone();
            v.sort_unstable();
            v.dedup();
            v
        }
    };
    if out.is_empty() {
        return Err(format!("{spec:?} resolves to no online CPU (online: {})", format_cpu_list(usable)));
    }
    Ok(out)
}

/// `[start, end)` of chunk `index` when `n` CPUs are split into `of` contiguous chunks
/// whose sizes differ by at most one (the first `n % of` chunks get the extra CPU).
fn chunk(index: u32, of: u32, n: usize) -> Result<(usize, usize), String> {
    let (i, of) = (index as usize, of as usize);
    if of == 0 || i >= of {
        return Err(format!("chunk {index} of {of} does not exist"));
    }
    let (base, rem) = (n / of, n % of);
    let start = i * base + i.min(rem);
    let len = base + usize::from(i < rem);
    if len == 0 {
        return Err(format!(
            "splitting {n} usable CPUs into {of} sets leaves set {index} empty: use of <= {n} or a larger topology"
        ));
    }
    Ok((start, start + len))
}

/// What affinity intents resolve against.
pub struct AffinityCtx<'a> {
    /// The cgroup's effective cpuset (sorted).
    pub allowed: &'a [u32],
    pub topo: &'a Topo,
    /// A CPU's SMT siblings (itself included).
    pub siblings: &'a dyn Fn(u32) -> Vec<u32>,
}

/// The CPUs worker `index` is pinned to, or `None` to leave its affinity alone.
/// `random` picks a random value below its argument.
pub fn affinity(
    intent: &AffinityIntent,
    index: u32,
    cx: &AffinityCtx,
    random: &mut dyn FnMut(usize) -> usize,
) -> Result<Option<Vec<u32>>, String> {
    let allowed = cx.allowed;
    if allowed.is_empty() {
        return Err("the cgroup's effective cpuset is empty".into());
    }
    let nth = |i: u32| allowed[i as usize % allowed.len()];
    let set = match intent {
        AffinityIntent::Inherit => return Ok(None),
        AffinityIntent::RandomSubset(k) => {
            let mut pool = allowed.to_vec();
            let mut picked = Vec::new();
            for _ in 0..(*k as usize).min(pool.len()) {
                picked.push(pool.swap_remove(random(pool.len())));
            }
            picked
        }
        AffinityIntent::LlcAligned => {
            let first = allowed[0];
            let llc = cx.topo.llcs.iter().find(|g| g.contains(&first)).cloned().unwrap_or_else(|| vec![first]);
            llc.into_iter().filter(|c| allowed.contains(c)).collect()
        }
        AffinityIntent::CrossCgroup => cx.topo.online.clone(),
        AffinityIntent::SingleCpu => vec![nth(index)],
        AffinityIntent::Exact(cpus) => cpus.clone(),
        AffinityIntent::SmtSiblingPair => {
            // The allowed CPUs grouped by core; worker `index` takes the cores in turn.
            let mut cores: Vec<Vec<u32>> = Vec::new();
            for &cpu in allowed {
                if !cores.iter().any(|c| c.contains(&cpu)) {
                    let mut core: Vec<u32> = (cx.siblings)(cpu).into_iter().filter(|c| allowed.contains(c)).collect();
                    if !core.contains(&cpu) {
                        core.push(cpu);
                    }
                    cores.push(core);
                }
            }
            cores[index as usize % cores.len()].clone()
        }
    };
    let mut set = set;
    set.sort_unstable();
    set.dedup();
    Ok(Some(set))
}

/// `0-3,6,8-9`.
pub fn format_cpu_list(cpus: &[u32]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { sorted[i].to_string() } else { format!("{}-{}", sorted[i], sorted[j]) });
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(n: u32, llc: u32) -> Topo {
        let online: Vec<u32> = (0..n).collect();
        let llcs = online.chunks(llc as usize).map(<[u32]>::to_vec).collect();
        Topo { nodes: vec![online.clone()], online, llcs }
    }

    fn r(spec: CpusetSpec, t: &Topo) -> Vec<u32> {
        resolve(&spec, t).unwrap_or_else(|e| panic!("{spec:?}: {e}"))
    }

    #[test]
    fn four_cpus() {
        let t = topo(4, 2);
        assert_eq!(r(CpusetSpec::llc(1), &t), [2, 3]);
        assert_eq!(r(CpusetSpec::numa(0), &t), [0, 1, 2, 3]);
        assert_eq!(r(CpusetSpec::range(0.0, 0.5), &t), [0, 1]);
        assert_eq!(r(CpusetSpec::range(0.3, 0.6), &t), [1, 2]);
        assert_eq!(r(CpusetSpec::range(0.5, 0.5), &t), [2], "at least one CPU");
        assert_eq!(r(CpusetSpec::range(1.0, 1.0), &t), [3]);
        assert_eq!(r(CpusetSpec::disjoint(0, 2), &t), [0, 1]);
        assert_eq!(r(CpusetSpec::disjoint(1, 2), &t), [2, 3]);
        assert_eq!(r(CpusetSpec::disjoint(0, 3), &t), [0, 1], "the first chunk takes the remainder");
        assert_eq!(r(CpusetSpec::disjoint(2, 3), &t), [3]);
        assert_eq!(r(CpusetSpec::disjoint(3, 4), &t), [3]);
        assert_eq!(r(CpusetSpec::overlap(0, 2, 0.5), &t), [0, 1, 2]);
        assert_eq!(r(CpusetSpec::overlap(1, 2, 0.5), &t), [1, 2, 3]);
        assert_eq!(r(CpusetSpec::overlap(1, 2, 0.0), &t), [2, 3]);
        assert_eq!(r(CpusetSpec::exact([3, 1]), &t), [1, 3]);
        let e = resolve(&CpusetSpec::disjoint(4, 5), &t).unwrap_err();
        assert!(e.contains("leaves set 4 empty"), "{e}");
        let e = resolve(&CpusetSpec::exact([5]), &t).unwrap_err();
        assert!(e.contains("CPU 5 is not online"), "{e}");
        assert!(resolve(&CpusetSpec::llc(2), &t).unwrap_err().contains("2 LLC groups"));
        assert!(resolve(&CpusetSpec::numa(1), &t).unwrap_err().contains("1 NUMA nodes"));
    }

    #[test]
    fn eight_cpus() {
        let t = topo(8, 4);
        assert_eq!(r(CpusetSpec::llc(1), &t), [4, 5, 6, 7]);
        assert_eq!(r(CpusetSpec::range(0.25, 0.75), &t), [2, 3, 4, 5]);
        assert_eq!(r(CpusetSpec::range(0.1, 0.2), &t), [0, 1]);
        assert_eq!(r(CpusetSpec::disjoint(1, 3), &t), [3, 4, 5]);
        assert_eq!(r(CpusetSpec::disjoint(2, 3), &t), [6, 7]);
        assert_eq!(r(CpusetSpec::disjoint(3, 4), &t), [6, 7]);
        assert_eq!(r(CpusetSpec::overlap(1, 4, 0.5), &t), [1, 2, 3, 4]);
        assert_eq!(r(CpusetSpec::overlap(0, 4, 0.25), &t), [0, 1, 2]);
        assert_eq!(r(CpusetSpec::overlap(3, 4, 1.0), &t), [4, 5, 6, 7]);
        // Offline CPUs are not usable: chunks and fractions skip them.
        let holes = Topo { online: vec![0, 1, 2, 3, 6, 7], ..t.clone() };
        assert_eq!(r(CpusetSpec::disjoint(1, 2), &holes), [3, 6, 7]);
        assert_eq!(r(CpusetSpec::llc(1), &holes), [6, 7]);
    }

    #[test]
    fn affinity_intents() {
        let t = topo(8, 4);
        let allowed = [2, 3, 4, 5];
        let siblings = |c: u32| vec![c & !1, c | 1];
        let cx = AffinityCtx { allowed: &allowed, topo: &t, siblings: &siblings };
        let mut first = |_: usize| 0;
        let mut a = |i: AffinityIntent, idx| affinity(&i, idx, &cx, &mut first).unwrap();
        assert_eq!(a(AffinityIntent::Inherit, 0), None);
        assert_eq!(a(AffinityIntent::SingleCpu, 5), Some(vec![3]));
        assert_eq!(a(AffinityIntent::LlcAligned, 0), Some(vec![2, 3]));
        assert_eq!(a(AffinityIntent::CrossCgroup, 0), Some((0..8).collect()));
        assert_eq!(a(AffinityIntent::RandomSubset(2), 0), Some(vec![2, 5]));
        assert_eq!(a(AffinityIntent::RandomSubset(9), 0), Some(vec![2, 3, 4, 5]));
        assert_eq!(a(AffinityIntent::SmtSiblingPair, 0), Some(vec![2, 3]));
        assert_eq!(a(AffinityIntent::SmtSiblingPair, 1), Some(vec![4, 5]), "the next worker takes the next core");
        assert_eq!(a(AffinityIntent::SmtSiblingPair, 2), Some(vec![2, 3]));
        assert_eq!(a(AffinityIntent::Exact(vec![7, 0]), 0), Some(vec![0, 7]));
        let odd = [3, 4];
        let cx = AffinityCtx { allowed: &odd, topo: &t, siblings: &siblings };
        let pair = affinity(&AffinityIntent::SmtSiblingPair, 0, &cx, &mut first).unwrap();
        assert_eq!(pair, Some(vec![3]), "siblings outside the cpuset are left out");
    }

    #[test]
    fn cpu_lists_are_compact() {
        assert_eq!(format_cpu_list(&[3, 0, 1, 2, 6, 8, 9]), "0-3,6,8-9");
        assert_eq!(format_cpu_list(&[]), "");
        assert_eq!(crate::topology::parse_cpu_list(&format_cpu_list(&[1, 2, 5])), [1, 2, 5]);
    }
}
