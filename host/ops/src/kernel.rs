//! Kernel-memory targets, values and read widths (host-side ops).

use serde::{Deserialize, Serialize};

/// A kernel address, named by the way the host resolves it.
///
/// Writes are not filtered by target: the scenario author owns the semantic
/// risk of writing scheduler bookkeeping (see the reference taxonomy). Policy
/// (which components may write at all) lives outside the op model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
pub enum KernelTarget {
    /// A kernel image symbol, resolved with the runtime (KASLR) base.
    Symbol(String),
    /// A direct-map KVA: `kva - PAGE_OFFSET`.
    Direct(u64),
    /// Any mapped KVA, translated by a page-table walk.
    Kva(u64),
    /// `symbol + __per_cpu_offset[cpu] + offsetof(field)`.
    PerCpuField { symbol: String, field: String, cpu: u32 },
    /// A field of an SCX task, located by pid and checked by start time.
    TaskField { pid: u32, expected_start_time_ns: u64, field: String },
}

/// Per-CPU symbols whose struct type the host knows.
pub const PER_CPU_SYMBOLS: &[&str] = &["runqueues", "kernel_cpustat", "kstat", "tick_cpu_sched"];

impl KernelTarget {
    pub fn symbol(name: impl Into<String>) -> Self {
        Self::Symbol(name.into())
    }
    pub const fn direct(kva: u64) -> Self {
        Self::Direct(kva)
    }
    pub const fn kva(kva: u64) -> Self {
        Self::Kva(kva)
    }
    pub fn per_cpu_field(symbol: impl Into<String>, field: impl Into<String>, cpu: u32) -> Self {
        Self::PerCpuField { symbol: symbol.into(), field: field.into(), cpu }
    }
    pub fn task_field(pid: u32, expected_start_time_ns: u64, field: impl Into<String>) -> Self {
        Self::TaskField { pid, expected_start_time_ns, field: field.into() }
    }

    /// The raw address when the target carries one.
    pub fn raw_address(&self) -> Option<u64> {
        match self {
            Self::Direct(a) | Self::Kva(a) => Some(*a),
            _ => None,
        }
    }
}

/// A value to write; also the shape of a value read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
pub enum KernelValue {
    U32(u32),
    U64(u64),
    Bytes(Vec<u8>),
    /// Read-modify-write OR of a u32 mask under the freeze (cold writes only).
    OrU32(u32),
}

impl KernelValue {
    /// The number of bytes the value covers in guest memory.
    pub fn width(&self) -> usize {
        match self {
            Self::U32(_) | Self::OrU32(_) => 4,
            Self::U64(_) => 8,
            Self::Bytes(b) => b.len(),
        }
    }
}

/// The width of a kernel read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "kebab-case")]
pub enum KernelValueWidth {
    U32,
    U64,
    Bytes(u32),
}

impl KernelValueWidth {
    /// Bytes read.
    pub fn len(&self) -> usize {
        match self {
            Self::U32 => 4,
            Self::U64 => 8,
            Self::Bytes(n) => *n as usize,
        }
    }
    /// True for a zero-length bytes read (rejected by validation).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Largest `bytes` read or write one op may carry.
pub const MAX_KERNEL_BYTES: usize = 4096;

/// One `(target, value)` pair of a kernel write batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelWrite {
    pub target: KernelTarget,
    pub value: KernelValue,
}
