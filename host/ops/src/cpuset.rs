//! Cpuset specifications: how a cpuset is computed from the guest topology.

use serde::{Deserialize, Serialize};

/// How to compute a cpuset from the guest's topology.
///
/// Fractions and indices are checked by [`crate::validate`]: NaN, out-of-range
/// fractions, `index >= of` and empty exact sets are rejected before anything runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
pub enum CpusetSpec {
    /// All CPUs of one LLC.
    Llc(u32),
    /// All CPUs of one NUMA node.
    Numa(u32),
    /// The fractional range `[start, end)` of the usable CPUs.
    Range { start: f64, end: f64 },
    /// Split the usable CPUs into `of` equal disjoint sets; take set `index`.
    Disjoint { index: u32, of: u32 },
    /// Like `Disjoint`, widened by `frac` of a set's size into its neighbours.
    Overlap { index: u32, of: u32, frac: f64 },
    /// Exactly these CPUs (sorted, deduplicated).
    Exact(Vec<u32>),
}

impl CpusetSpec {
    pub const fn llc(index: u32) -> Self {
        Self::Llc(index)
    }
    pub const fn numa(index: u32) -> Self {
        Self::Numa(index)
    }
    pub const fn range(start: f64, end: f64) -> Self {
        Self::Range { start, end }
    }
    pub const fn disjoint(index: u32, of: u32) -> Self {
        Self::Disjoint { index, of }
    }
    pub const fn overlap(index: u32, of: u32, frac: f64) -> Self {
        Self::Overlap { index, of, frac }
    }
    /// An exact set; the ids are sorted and deduplicated.
    pub fn exact(cpus: impl IntoIterator<Item = u32>) -> Self {
        let mut v: Vec<u32> = cpus.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        Self::Exact(v)
    }
}
