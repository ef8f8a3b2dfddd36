//! CPUID for a requested topology: nodes × LLCs × cores × threads in one
//! package, each level padded to a power of two in the APIC ID.
//!
//! Patched leaves: 1 (APIC ID, logical count, feature hiding), 4 and
//! 0x8000001D (cache sharing, so the guest groups CPUs by LLC), 0xB/0x1F
//! (SMT and package levels), 0x80000008 (core count, APIC ID size) and
//! 0x8000001E (AMD core/node IDs). XSAVE/AVX can be hidden (their state size
//! must match what the host saves, which fails under some nested setups) and
//! so can CMPXCHG16B (PVM's emulator lacks it).

use kvm_bindings::{kvm_cpuid_entry2, CpuId, KVM_CPUID_FLAG_SIGNIFCANT_INDEX};

use crate::error::{KvmError, Result};

/// The shape of the guest's CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuShape {
    pub nodes: u32,
    pub llcs_per_node: u32,
    pub cores_per_llc: u32,
    pub threads_per_core: u32,
    /// Fewest APIC ID bits below the LLC level (see [`llc_align_bits`]); 0 packs LLCs densely.
    pub min_llc_bits: u32,
}

/// Bits needed for `n` distinct values.
fn bits(n: u32) -> u32 {
    n.next_power_of_two().trailing_zeros()
}

impl CpuShape {
    /// Refuses empty levels and shapes past 255 APIC IDs (no x2APIC boot support yet).
    pub fn validate(&self) -> Result<()> {
        let levels = [self.nodes, self.llcs_per_node, self.cores_per_llc, self.threads_per_core];
        if levels.contains(&0) {
            return Err(KvmError::Invalid(format!("CPU shape {self:?} has an empty level")));
        }
        if self.package_bits() > 8 {
            return Err(KvmError::Invalid(format!("CPU shape {self:?} needs APIC IDs past 255")));
        }
        Ok(())
    }

    /// Logical CPUs.
    pub fn cpus(&self) -> u32 {
        self.nodes * self.llcs_per_node * self.cores_per_llc * self.threads_per_core
    }

    fn thread_bits(&self) -> u32 {
        bits(self.threads_per_core)
    }

    /// Bits of thread + core within one LLC.
    fn llc_bits(&self) -> u32 {
        (self.thread_bits() + bits(self.cores_per_llc)).max(self.min_llc_bits)
    }

    /// Bits of the whole package (every LLC of every node).
    fn package_bits(&self) -> u32 {
        self.llc_bits() + bits(self.nodes * self.llcs_per_node)
    }

    /// CPU `cpu`'s (node, global LLC, core within LLC, thread).
    fn place(&self, cpu: u32) -> (u32, u32, u32, u32) {
        let thread = cpu % self.threads_per_core;
        let core = cpu / self.threads_per_core % self.cores_per_llc;
        let llc = cpu / (self.threads_per_core * self.cores_per_llc);
        (llc / self.llcs_per_node, llc, core, thread)
    }

    /// The APIC ID of logical CPU `cpu` (CPUs numbered thread-fastest).
    pub fn apic_id(&self, cpu: u32) -> u32 {
        let (_, llc, core, thread) = self.place(cpu);
        (llc << self.llc_bits()) | (core << self.thread_bits()) | thread
    }

    /// NUMA node of logical CPU `cpu`.
    pub fn node_of(&self, cpu: u32) -> u32 {
        self.place(cpu).0
    }
}

/// The APIC ID bits below the LLC level that the CPU model in `supported`
/// implies regardless of the cache leaves: AMD family 17h models up to 0x1F
/// (Zen 1, and QEMU's `EPYC` model) put the core complex, which shares the
/// L3, at APIC ID bit 3, and Linux groups LLCs by that bit there. 0 otherwise.
pub fn llc_align_bits(supported: &CpuId) -> u32 {
    let Some(l1) = supported.as_slice().iter().find(|e| e.function == 1) else { return 0 };
    let amd = is_amd(supported);
    let base = (l1.eax >> 8) & 0xf;
    let family = if base == 0xf { base + ((l1.eax >> 20) & 0xff) } else { base };
    let model = ((l1.eax >> 4) & 0xf) | (((l1.eax >> 16) & 0xf) << 4);
    if amd && family == 0x17 && model <= 0x1f {
        3
    } else {
        0
    }
}

fn is_amd(cpuid: &CpuId) -> bool {
    cpuid.as_slice().iter().find(|e| e.function == 0).is_some_and(|l0| (l0.ebx, l0.edx, l0.ecx) == AMD_VENDOR)
}

/// "AuthenticAMD" in leaf 0's EBX, EDX, ECX.
const AMD_VENDOR: (u32, u32, u32) = (0x6874_7541, 0x6974_6e65, 0x444d_4163);
const EXT1_ECX_TOPOEXT: u32 = 1 << 22;

/// On AMD, Linux reads cache sharing (hence LLC groups) from leaf 0x8000001D
/// only with TOPOEXT; without it (QEMU's `EPYC` under TCG, older hosts) it
/// guesses from 0x80000006 and puts every CPU of a node in one LLC. So TOPOEXT
/// is always set, leaf 0x8000001E (core and node IDs) always present, and when
/// the host offers no 0x8000001D it is added with a typical Zen hierarchy
/// (32 KiB L1d/L1i, 512 KiB L2, 8 MiB L3); the sharing is patched per shape afterwards.
fn add_amd_cache_leaves(entries: &mut Vec<kvm_cpuid_entry2>) {
    for e in entries.iter_mut() {
        match e.function {
            0x8000_0000 => e.eax = e.eax.max(0x8000_001e),
            0x8000_0001 => e.ecx |= EXT1_ECX_TOPOEXT,
            _ => {}
        }
    }
    if !entries.iter().any(|e| e.function == 0x8000_001e) {
        entries.push(kvm_cpuid_entry2 { function: 0x8000_001e, ..Default::default() });
    }
    if entries.iter().any(|e| e.function == 0x8000_001d && e.eax & 0x1f != 0) {
        return;
    }
    entries.retain(|e| e.function != 0x8000_001d);
    // (type: 1 data, 2 instruction, 3 unified; level; bytes; ways), 64-byte lines.
    let caches = [(1u32, 1u32, 32u32 << 10, 8u32), (2, 1, 32 << 10, 8), (3, 2, 512 << 10, 8), (3, 3, 8 << 20, 16)];
    for (index, (kind, level, size, ways)) in caches.into_iter().enumerate() {
        entries.push(kvm_cpuid_entry2 {
            function: 0x8000_001d,
            index: index as u32,
            flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
            eax: kind | (level << 5) | (1 << 8),
            ebx: 63 | ((ways - 1) << 22),
            ecx: size / 64 / ways - 1,
            edx: 0,
            ..Default::default()
        });
    }
    entries.push(kvm_cpuid_entry2 {
        function: 0x8000_001d,
        index: caches.len() as u32,
        flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
        ..Default::default()
    });
}

/// Features to hide from the guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidOptions {
    /// XSAVE, OSXSAVE, AVX and everything built on them; drops leaf 0xD.
    pub hide_xsave: bool,
    /// CMPXCHG16B.
    pub hide_cx16: bool,
}

const LEAF1_ECX_CX16: u32 = 1 << 13;
const LEAF1_ECX_FMA: u32 = 1 << 12;
const LEAF1_ECX_XSAVE: u32 = 1 << 26;
const LEAF1_ECX_OSXSAVE: u32 = 1 << 27;
const LEAF1_ECX_AVX: u32 = 1 << 28;
const LEAF1_ECX_F16C: u32 = 1 << 29;
const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
const LEAF1_EDX_HTT: u32 = 1 << 28;
/// Leaf 7 EBX: AVX2 and the AVX-512 family.
const LEAF7_EBX_AVX: u32 =
    (1 << 5) | (1 << 16) | (1 << 17) | (1 << 21) | (1 << 26) | (1 << 27) | (1 << 28) | (1 << 30) | (1 << 31);
/// Leaf 7 ECX: AVX-512 VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ, VAES/VPCLMULQDQ (VEX-encoded).
const LEAF7_ECX_AVX: u32 = (1 << 1) | (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 14);
/// Leaf 7.1 EAX: AVX-VNNI, AVX512-BF16.
const LEAF7_1_EAX_AVX: u32 = (1 << 4) | (1 << 5);

/// The CPUID of logical CPU `cpu`: `supported` (from KVM_GET_SUPPORTED_CPUID)
/// with the topology leaves of `shape` and `options` applied.
pub fn cpuid_for(supported: &CpuId, shape: &CpuShape, cpu: u32, options: CpuidOptions) -> Result<CpuId> {
    shape.validate()?;
    let mut entries: Vec<kvm_cpuid_entry2> = supported
        .as_slice()
        .iter()
        .filter(|e| {
            let topo = matches!(e.function, 0xb | 0x1f | 0x8000_0026);
            let xsave = options.hide_xsave && e.function == 0xd;
            !topo && !xsave
        })
        .copied()
        .collect();
    let apic = shape.apic_id(cpu);
    let max_basic = supported.as_slice().iter().find(|e| e.function == 0).map_or(0, |e| e.eax);
    let intel_cache = entries.iter().any(|e| e.function == 4 && e.eax & 0x1f != 0);
    if is_amd(supported) {
        add_amd_cache_leaves(&mut entries);
    }
    for e in &mut entries {
        match (e.function, e.index) {
            (1, _) => {
                e.ebx = (e.ebx & 0xffff) | (apic << 24) | ((1 << shape.package_bits()).min(255) << 16);
                e.ecx |= LEAF1_ECX_HYPERVISOR;
                if shape.cpus() > 1 {
                    e.edx |= LEAF1_EDX_HTT;
                }
                if options.hide_xsave {
                    e.ecx &= !(LEAF1_ECX_XSAVE | LEAF1_ECX_OSXSAVE | LEAF1_ECX_AVX | LEAF1_ECX_FMA | LEAF1_ECX_F16C);
                }
                if options.hide_cx16 {
                    e.ecx &= !LEAF1_ECX_CX16;
                }
            }
            (4, _) if intel_cache && e.eax & 0x1f != 0 => {
                let sharing = cache_sharing_bits(shape, (e.eax >> 5) & 7);
                let cores = (1u32 << (shape.package_bits() - shape.thread_bits())) - 1;
                e.eax = (e.eax & 0x3fff) | (((1 << sharing) - 1) << 14) | (cores.min(63) << 26);
            }
            (7, 0) if options.hide_xsave => {
                e.ebx &= !LEAF7_EBX_AVX;
                e.ecx &= !LEAF7_ECX_AVX;
            }
            (7, 1) if options.hide_xsave => e.eax &= !LEAF7_1_EAX_AVX,
            (0x8000_0008, _) => {
                e.ecx = (e.ecx & !0xf0ff) | (shape.package_bits() << 12) | ((shape.cpus() - 1) & 0xff);
            }
            (0x8000_001d, _) if e.eax & 0x1f != 0 => {
                let sharing = cache_sharing_bits(shape, (e.eax >> 5) & 7);
                e.eax = (e.eax & 0x3fff) | (((1 << sharing) - 1) << 14);
            }
            (0x8000_001e, _) => {
                e.eax = apic;
                e.ebx = (apic >> shape.thread_bits()) & 0xff | ((shape.threads_per_core - 1) << 8);
                e.ecx = (shape.node_of(cpu) & 0xff) | ((shape.nodes - 1).min(7) << 8);
            }
            _ => {}
        }
    }
    // SMT and package levels for 0xB (and 0x1F where the host offers it).
    for leaf in [0xb, 0x1f] {
        if max_basic < leaf && leaf == 0x1f {
            continue;
        }
        let levels =
            [(shape.thread_bits(), shape.threads_per_core, 1), (shape.package_bits(), shape.cpus(), 2), (0, 0, 0)];
        for (index, (shift, count, kind)) in levels.into_iter().enumerate() {
            entries.push(kvm_cpuid_entry2 {
                function: leaf,
                index: index as u32,
                flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
                eax: shift,
                ebx: count,
                ecx: (kind << 8) | index as u32,
                edx: apic,
                ..Default::default()
            });
        }
    }
    if max_basic < 0xb {
        if let Some(e) = entries.iter_mut().find(|e| e.function == 0) {
            e.eax = 0xb;
        }
    }
    CpuId::from_entries(&entries).map_err(|e| KvmError::Invalid(format!("CPUID table: {e:?}")))
}

/// Bits of APIC ID covered by the CPUs sharing a cache of `level`.
fn cache_sharing_bits(shape: &CpuShape, level: u32) -> u32 {
    match level {
        1 | 2 => shape.thread_bits(),
        _ => shape.llc_bits(),
    }
}

#[cfg(test)]
mod tests;
