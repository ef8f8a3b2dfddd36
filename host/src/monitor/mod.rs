//! The monitor: resolves kernel targets to guest physical addresses and reads
//! or writes them through the mapped guest RAM — the same code on every
//! backend. Cold accesses happen inside a freeze rendezvous (every vCPU
//! parked); hot ones while the guest runs.

mod btf;

use std::collections::HashMap;
use std::path::PathBuf;

use schedbox_wire::{RequestBody, ResponseBody};
use vm_memory::{Bytes, GuestAddress};

pub use btf::{elf_section, FieldLoc, KernelBtf};

use crate::machine::Machine;
use crate::op_model::{KernelTarget, KernelValue, KernelValueWidth, KernelWrite};

/// Start of the kernel image mapping (x86-64).
const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// Default direct-map base when `page_offset_base` cannot be read.
const DEFAULT_PAGE_OFFSET: u64 = 0xffff_8880_0000_0000;

/// A target resolved to a guest physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub kva: u64,
    pub gpa: u64,
}

/// Per-machine resolution state (symbols and BTF are loaded once).
pub struct Monitor {
    vmlinux: PathBuf,
    btf: Option<KernelBtf>,
    symbols: HashMap<String, Option<u64>>,
    /// How many freeze rendezvous this monitor ran.
    pub rendezvous: u64,
}

fn per_cpu_struct(symbol: &str) -> Option<&'static str> {
    Some(match symbol {
        "runqueues" => "rq",
        "kernel_cpustat" => "kernel_cpustat",
        "kstat" => "kernel_stat",
        "tick_cpu_sched" => "tick_sched",
        _ => return None,
    })
}

impl Monitor {
    pub fn new(vmlinux: PathBuf) -> Self {
        Self { vmlinux, btf: None, symbols: HashMap::new(), rendezvous: 0 }
    }

    /// Runtime addresses of `names` (asks the agent for those not cached).
    pub fn symbols(&mut self, m: &mut dyn Machine, names: &[&str]) -> Result<Vec<Option<u64>>, String> {
        let missing: Vec<String> =
            names.iter().filter(|n| !self.symbols.contains_key(**n)).map(|n| n.to_string()).collect();
        if !missing.is_empty() {
            match m.request(RequestBody::Symbols { names: missing.clone() }).map_err(|e| e.to_string())? {
                ResponseBody::Symbols(addrs) => {
                    for (n, a) in missing.into_iter().zip(addrs) {
                        self.symbols.insert(n, a);
                    }
                }
                other => return Err(format!("the agent answered a symbol lookup with {other:?}")),
            }
        }
        Ok(names.iter().map(|n| self.symbols.get(*n).copied().flatten()).collect())
    }

    fn symbol(&mut self, m: &mut dyn Machine, name: &str) -> Result<u64, String> {
        self.symbols(m, &[name])?[0]
            .ok_or_else(|| format!("kernel symbol {name:?} is not in /proc/kallsyms (check the spelling)"))
    }

    fn btf(&mut self) -> Result<&KernelBtf, String> {
        if self.btf.is_none() {
            self.btf = Some(KernelBtf::from_vmlinux(&self.vmlinux)?);
        }
        Ok(self.btf.as_ref().expect("just set"))
    }

    /// Everything a later translation needs from the agent, fetched now
    /// (the agent cannot answer while the guest is frozen).
    pub fn prefetch(&mut self, m: &mut dyn Machine, targets: &[&KernelTarget]) -> Result<(), String> {
        let mut names = vec!["page_offset_base", "__per_cpu_offset", "phys_base"];
        for t in targets {
            match t {
                KernelTarget::Symbol(s) => names.push(s),
                KernelTarget::PerCpuField { symbol, .. } => names.push(symbol),
                _ => {}
            }
        }
        self.symbols(m, &names).map(|_| ())
    }

    /// KVA of the kernel image → GPA (PVH boots the image unrelocated: phys_base 0
    /// unless the kernel says otherwise).
    fn image_gpa(&self, m: &dyn Machine, kva: u64) -> Result<u64, String> {
        let base =
            kva.checked_sub(START_KERNEL_MAP).ok_or_else(|| format!("{kva:#x} is not in the kernel image mapping"))?;
        let phys_base = match self.symbols.get("phys_base").copied().flatten() {
            Some(pb) => read_u64(m, pb - START_KERNEL_MAP).unwrap_or(0),
            None => 0,
        };
        Ok(base + phys_base)
    }

    fn direct_gpa(&self, m: &dyn Machine, kva: u64) -> Result<u64, String> {
        let page_offset = match self.symbols.get("page_offset_base").copied().flatten() {
            Some(sym) => read_u64(m, self.image_gpa(m, sym)?)?,
            None => DEFAULT_PAGE_OFFSET,
        };
        let gpa = kva.checked_sub(page_offset).ok_or_else(|| {
            format!("{kva:#x} is below the direct map (PAGE_OFFSET {page_offset:#x}); use a kva target")
        })?;
        if gpa >= m.guest_ram().size() {
            return Err(format!("{kva:#x} maps to {gpa:#x}, outside guest RAM ({} bytes)", m.guest_ram().size()));
        }
        Ok(gpa)
    }

    /// Resolves `t` to a guest physical address. Needs [`Monitor::prefetch`] first for
    /// symbolic targets if the guest is frozen.
    pub fn resolve(&mut self, m: &mut dyn Machine, t: &KernelTarget) -> Result<Resolved, String> {
        match t {
            KernelTarget::Symbol(s) => {
                let kva = self.symbol(m, s)?;
                Ok(Resolved { kva, gpa: self.image_gpa(m, kva)? })
            }
            KernelTarget::Direct(kva) => Ok(Resolved { kva: *kva, gpa: self.direct_gpa(m, *kva)? }),
            KernelTarget::PerCpuField { symbol, field, cpu } => {
                let st = per_cpu_struct(symbol).ok_or_else(|| format!("per-cpu symbol {symbol:?} is not supported"))?;
                let base = self.symbol(m, symbol)?;
                let offsets = self.symbol(m, "__per_cpu_offset")?;
                let ncpu = m.facts().cpus_online.len() as u32;
                if *cpu >= ncpu {
                    return Err(format!("per-cpu-field: CPU {cpu} is not online (the guest has {ncpu})"));
                }
                let off = read_u64(m, self.image_gpa(m, offsets + 8 * u64::from(*cpu))?)?;
                let loc = self.btf()?.field(st, field)?;
                let kva = base.wrapping_add(off).wrapping_add(loc.offset);
                Ok(Resolved { kva, gpa: self.direct_gpa(m, kva)? })
            }
            KernelTarget::Kva(kva) => Err(format!(
                "kva target {kva:#x}: page-table walks are not supported yet; use a direct or symbol target"
            )),
            KernelTarget::TaskField { pid, .. } => Err(format!("task-field (pid {pid}): not supported yet")),
        }
    }

    /// Reads `width` bytes at `t`.
    pub fn read(
        &mut self,
        m: &mut dyn Machine,
        t: &KernelTarget,
        width: &KernelValueWidth,
    ) -> Result<KernelValue, String> {
        let r = self.resolve(m, t)?;
        let mut buf = vec![0u8; width.len()];
        m.guest_ram().read(r.gpa, &mut buf).map_err(|e| format!("reading {:#x} (gpa {:#x}): {e}", r.kva, r.gpa))?;
        Ok(match width {
            KernelValueWidth::U32 => KernelValue::U32(u32::from_le_bytes(buf[..4].try_into().expect("4 bytes"))),
            KernelValueWidth::U64 => KernelValue::U64(u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"))),
            KernelValueWidth::Bytes(_) => KernelValue::Bytes(buf),
        })
    }

    /// Writes one pair; `or-u32` reads, ORs and writes back (callers freeze first).
    pub fn write(&mut self, m: &mut dyn Machine, w: &KernelWrite) -> Result<(), String> {
        let r = self.resolve(m, &w.target)?;
        let mem = m.guest_ram().memory();
        let at = GuestAddress(r.gpa);
        let err = |e: vm_memory::GuestMemoryError| format!("writing {:#x} (gpa {:#x}): {e}", r.kva, r.gpa);
        match &w.value {
            KernelValue::U32(v) => mem.write_obj(*v, at).map_err(err)?,
            KernelValue::U64(v) => mem.write_obj(*v, at).map_err(err)?,
            KernelValue::Bytes(b) => mem.write_slice(b, at).map_err(err)?,
            KernelValue::OrU32(mask) => {
                let old: u32 = mem.read_obj(at).map_err(err)?;
                mem.write_obj(old | mask, at).map_err(err)?;
            }
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        Ok(())
    }
}

fn read_u64(m: &dyn Machine, gpa: u64) -> Result<u64, String> {
    let mut b = [0u8; 8];
    m.guest_ram().read(gpa, &mut b).map_err(|e| format!("reading gpa {gpa:#x}: {e}"))?;
    Ok(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn per_cpu_symbols_map_to_structs() {
        assert_eq!(super::per_cpu_struct("runqueues"), Some("rq"));
        assert_eq!(super::per_cpu_struct("init_task"), None);
    }
}
