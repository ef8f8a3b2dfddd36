//! watch-snapshot: what a watchpoint hit captures. The addresses are resolved
//! when the watch is armed (the agent cannot answer while the guest is
//! stopped), so a hit only reads guest RAM and the registers the backend hands
//! over. One hit = one snapshot tagged with the symbol; a later hit replaces it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vm_memory::{Bytes, GuestAddress};

use super::Monitor;
use crate::machine::{Machine, WatchHandler, WatchHit};
use crate::op_model::{KernelTarget, KernelValue, KernelValueWidth};
use crate::results::Snapshot;

/// `enum scx_enable_state`, as `/sys/kernel/sched_ext/state` prints it.
const SCX_STATES: [&str; 4] = ["enabling", "enabled", "disabling", "disabled"];

/// The reads one hit makes, at guest physical addresses.
pub struct WatchPlan {
    symbol: String,
    reads: Vec<(String, u64, KernelValueWidth)>,
    scx_state_gpa: Option<u64>,
}

/// Snapshots from watchpoint hits: the latest per symbol, with its hit count,
/// and each hit's latency (the backend learning of it → snapshot taken).
#[derive(Clone, Default)]
pub struct WatchLog(Arc<Mutex<LogInner>>);

#[derive(Default)]
struct LogInner {
    /// Symbols with an armed watch.
    armed: BTreeSet<String>,
    latest: BTreeMap<String, (Snapshot, u64)>,
    latencies: Vec<Duration>,
}

impl WatchLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a watch on `symbol` is armed (a repeated watch op is a no-op).
    pub fn is_armed(&self, symbol: &str) -> bool {
        self.lock().armed.contains(symbol)
    }

    /// Records that a watch on `symbol` was armed.
    pub fn mark_armed(&self, symbol: &str) {
        self.lock().armed.insert(symbol.to_owned());
    }

    /// Hits so far for `symbol`.
    pub fn hits(&self, symbol: &str) -> u64 {
        self.lock().latest.get(symbol).map_or(0, |(_, n)| *n)
    }

    /// Hit → snapshot latencies so far.
    pub fn latencies(&self) -> Vec<Duration> {
        self.lock().latencies.clone()
    }

    /// The latest snapshot per symbol, each with a `watch.hits` value; empties
    /// the log (call it once the watches are removed).
    pub fn drain(&self) -> Vec<Snapshot> {
        let mut inner = self.lock();
        inner.latencies.clear();
        inner.armed.clear();
        std::mem::take(&mut inner.latest)
            .into_values()
            .map(|(mut s, hits)| {
                s.values.push(("watch.hits".into(), KernelValue::U64(hits)));
                s
            })
            .collect()
    }
}

impl Monitor {
    /// Resolves `symbol` for a watch: its KVA (checked 4-byte aligned) and what a hit reads.
    pub fn watch_plan(&mut self, m: &mut dyn Machine, symbol: &str) -> Result<(u64, WatchPlan), String> {
        let cpus = m.facts().cpus_online.clone();
        self.prefetch(m, &[&KernelTarget::symbol(symbol), &KernelTarget::symbol("jiffies_64")])?;
        let kva = self.symbol(m, symbol)?;
        if kva & 3 != 0 {
            return Err(format!(
                "watch symbol {symbol:?} is at {kva:#x}, not 4-byte aligned: a 4-byte write watchpoint \
                 needs an address with addr & 3 == 0; watch an aligned variable"
            ));
        }
        let mut reads = Vec::new();
        let mut add = |name: String, t: KernelTarget, w: KernelValueWidth, me: &mut Self| -> Result<(), String> {
            reads.push((name, me.resolve(m, &t)?.gpa, w));
            Ok(())
        };
        add(symbol.to_owned(), KernelTarget::symbol(symbol), KernelValueWidth::U64, self)?;
        add("jiffies_64".into(), KernelTarget::symbol("jiffies_64"), KernelValueWidth::U64, self)?;
        for &cpu in &cpus {
            let rq = |f: &str| KernelTarget::per_cpu_field("runqueues", f, cpu);
            add(format!("cpu{cpu}.rq.nr_running"), rq("nr_running"), KernelValueWidth::U32, self)?;
            add(format!("cpu{cpu}.rq.clock"), rq("clock"), KernelValueWidth::U64, self)?;
        }
        let scx_state_gpa = match self.symbols(m, &["scx_enable_state_var"])?[0] {
            Some(k) => Some(self.image_gpa(m, k)?),
            None => None,
        };
        let values = reads.iter().map(|(n, _, _)| n.as_str()).collect::<Vec<_>>().join(", ");
        tracing::debug!("watch {symbol:?} at {kva:#x}: each hit reads {values}");
        Ok((kva, WatchPlan { symbol: symbol.to_owned(), reads, scx_state_gpa }))
    }
}

impl WatchPlan {
    /// The backend handler: builds the snapshot from `hit` into `log`.
    pub fn handler(self, log: WatchLog) -> WatchHandler {
        Box::new(move |hit: WatchHit<'_>| {
            let snap = self.capture(&hit);
            let mut inner = log.lock();
            let hits = inner.latest.get(&self.symbol).map_or(0, |(_, n)| *n) + 1;
            inner.latest.insert(self.symbol.clone(), (snap, hits));
            inner.latencies.push(hit.at.elapsed());
        })
    }

    fn capture(&self, hit: &WatchHit<'_>) -> Snapshot {
        let mem = hit.ram.memory();
        let mut values = vec![("watch.address".to_owned(), KernelValue::U64(hit.addr))];
        for (name, gpa, width) in &self.reads {
            let at = GuestAddress(*gpa);
            let v = match width {
                KernelValueWidth::U32 => mem.read_obj::<u32>(at).map(KernelValue::U32),
                _ => mem.read_obj::<u64>(at).map(KernelValue::U64),
            };
            match v {
                Ok(v) => values.push((name.clone(), v)),
                Err(e) => tracing::warn!("watch {:?}: reading {name} at gpa {gpa:#x}: {e}", self.symbol),
            }
        }
        let sched_ext_state = self
            .scx_state_gpa
            .and_then(|gpa| mem.read_obj::<u32>(GuestAddress(gpa)).ok())
            .and_then(|s| SCX_STATES.get(s as usize))
            .map_or("unknown".to_owned(), |s| (*s).to_owned());
        Snapshot { name: self.symbol.clone(), vcpus: hit.vcpus.clone(), values, sched_ext_state }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::GuestRam;
    use schedbox_ops::results::VcpuRegisters;

    #[test]
    fn each_hit_replaces_the_snapshot_and_counts() {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(4096).unwrap();
        let ram = GuestRam::map_files(&[(file.path(), 4096)]).unwrap();
        let plan = WatchPlan {
            symbol: "jiffies_64".into(),
            reads: vec![
                ("jiffies_64".into(), 8, KernelValueWidth::U64),
                ("cpu0.rq.nr_running".into(), 16, KernelValueWidth::U32),
            ],
            scx_state_gpa: Some(24),
        };
        let log = WatchLog::default();
        log.mark_armed("jiffies_64");
        let mut handler = plan.handler(log.clone());
        let vcpus = vec![VcpuRegisters { cpu: 0, rip: 0xffff_ffff_8100_0000, rsp: 0, cr3: 0x1000 }];
        for (jiffies, state) in [(100u64, 3u32), (101, 1)] {
            ram.memory().write_obj(jiffies, GuestAddress(8)).unwrap();
            ram.memory().write_obj(2u32, GuestAddress(16)).unwrap();
            ram.memory().write_obj(state, GuestAddress(24)).unwrap();
            let at = std::time::Instant::now();
            handler(WatchHit { addr: 0xffff_ffff_8300_0000, at, vcpus: vcpus.clone(), ram: &ram });
        }
        assert_eq!(log.hits("jiffies_64"), 2);
        assert_eq!(log.latencies().len(), 2);
        assert!(log.is_armed("jiffies_64"));
        let snaps = log.drain();
        assert_eq!(snaps.len(), 1);
        let s = &snaps[0];
        assert_eq!((s.name.as_str(), s.sched_ext_state.as_str(), s.vcpus.len()), ("jiffies_64", "enabled", 1));
        let v = |n: &str| s.values.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(v("jiffies_64"), Some(KernelValue::U64(101)), "the latest hit's value");
        assert_eq!(v("cpu0.rq.nr_running"), Some(KernelValue::U32(2)));
        assert_eq!(v("watch.address"), Some(KernelValue::U64(0xffff_ffff_8300_0000)));
        assert_eq!(v("watch.hits"), Some(KernelValue::U64(2)));
        assert!(!log.is_armed("jiffies_64") && log.drain().is_empty(), "drained");
    }
}
