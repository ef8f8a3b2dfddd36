//! The monitor: resolves kernel targets to guest physical addresses and reads
//! or writes them through the mapped guest RAM — the same code on every
//! backend, which only needs the [`Machine`] trait (guest RAM, registers,
//! pause/resume, a watchpoint hook). Cold accesses happen inside a freeze
//! rendezvous (every vCPU parked); hot ones while the guest runs.
//!
//! Targets: `symbol` (kallsyms, image mapping), `direct` (`kva - PAGE_OFFSET`),
//! `kva` (page-table walk, [`pagewalk`]), `per-cpu-field` (`__per_cpu_offset` +
//! BTF), `task-field` (task list walk + safety gates, `task.rs`); watch-snapshot
//! captures are planned in `watch.rs`.

mod btf;
pub mod pagewalk;
mod task;
mod watch;

use std::collections::HashMap;
use std::path::PathBuf;

use schedbox_wire::{RequestBody, ResponseBody};
use vm_memory::{Bytes, GuestAddress};

pub use btf::{elf_section, FieldLoc, KernelBtf};
pub use pagewalk::{translate, PhysMem, Translation, WalkError};
pub use watch::{WatchLog, WatchPlan};

use crate::machine::Machine;
use crate::op_model::{KernelTarget, KernelValue, KernelValueWidth, KernelWrite};

/// Start of the kernel image mapping (x86-64).
const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;
/// The image mapping's size (`KERNEL_IMAGE_SIZE` with KASLR); modules follow it.
const KERNEL_IMAGE_SIZE: u64 = 1 << 30;
/// Default direct-map base when `page_offset_base` cannot be read.
const DEFAULT_PAGE_OFFSET: u64 = 0xffff_8880_0000_0000;

/// The kernel's own top-level page table (`swapper_pg_dir` is a macro for
/// `init_top_pgt` on x86-64).
const KERNEL_PGD: &[&str] = &["init_top_pgt", "swapper_pg_dir"];
/// First address of the kernel half (x86-64, 4- and 5-level paging).
const KERNEL_HALF: u64 = 0xff00_0000_0000_0000;

/// A target resolved to a guest physical address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub kva: u64,
    pub gpa: u64,
    /// Bytes physically contiguous from `gpa` (the rest of the page for a
    /// page-table walk; unbounded for the image and the direct map).
    pub span: u64,
    /// A struct field target (`per-cpu-field`, `task-field`): its name and size in
    /// bytes (BTF); an access must match it.
    pub field: Option<(String, u64)>,
}

impl Resolved {
    fn linear(kva: u64, gpa: u64) -> Self {
        Self { kva, gpa, span: u64::MAX, field: None }
    }

    fn sized(mut self, name: String, size: Option<u64>) -> Self {
        self.field = size.map(|n| (name, n));
        self
    }

    /// Fails when an access of `len` bytes (`exact`: a u32/u64; else a bytes read) does
    /// not fit the field: a wider one would take bytes of the next field, a narrower
    /// u32/u64 half of this one.
    fn check_width(&self, len: usize, exact: bool) -> Result<(), String> {
        let Some((name, size)) = &self.field else { return Ok(()) };
        let fits = if exact { len as u64 == *size } else { len as u64 <= *size };
        if fits {
            return Ok(());
        }
        let as_int = match size {
            4 => "access it as u32".to_owned(),
            8 => "access it as u64".to_owned(),
            n => format!("access it as bytes({n})"),
        };
        Err(format!("{name} is {size} bytes wide, not {len}: {as_int}"))
    }

    /// Fails when `len` bytes would run past the physically contiguous span.
    fn check_len(&self, len: usize) -> Result<(), String> {
        if len as u64 > self.span {
            return Err(format!(
                "{len} bytes at kva {:#x} cross into the next page ({} bytes left in this one); split the access",
                self.kva, self.span
            ));
        }
        Ok(())
    }
}

/// Per-machine resolution state (symbols and BTF are loaded once).
pub struct Monitor {
    vmlinux: PathBuf,
    btf: Option<KernelBtf>,
    symbols: HashMap<String, Option<u64>>,
    /// 5-level paging (CR4.LA57), learned once.
    la57: Option<bool>,
    /// Every vCPU is parked (a cold access): CR3 from the registers is coherent.
    frozen: bool,
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
        Self { vmlinux, btf: None, symbols: HashMap::new(), la57: None, frozen: false, rendezvous: 0 }
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

    /// Tells the monitor whether every vCPU is parked (set around a freeze).
    pub fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
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
        // The page directory too: a symbol outside the image (a module's) is walked.
        let mut names = vec!["page_offset_base", "__per_cpu_offset", "phys_base"];
        names.extend(KERNEL_PGD);
        for t in targets {
            match t {
                KernelTarget::Symbol(s) => names.push(s),
                KernelTarget::PerCpuField { symbol, .. } => names.push(symbol),
                KernelTarget::TaskField { .. } => names.extend(["init_task", "ext_sched_class"]),
                KernelTarget::Kva(_) | KernelTarget::Direct(_) => {}
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
                if in_image(kva) {
                    Ok(Resolved::linear(kva, self.image_gpa(m, kva)?))
                } else {
                    // A module's symbol: modules are mapped page by page.
                    let t = self.walk(m, kva).map_err(|e| format!("symbol {s:?}: {e}"))?;
                    Ok(Resolved { kva, gpa: t.gpa, span: t.span(), field: None })
                }
            }
            KernelTarget::Direct(kva) => Ok(Resolved::linear(*kva, self.direct_gpa(m, *kva)?)),
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
                let name = format!("per-cpu-field {symbol}.{field} (struct {st})");
                Ok(Resolved::linear(kva, self.direct_gpa(m, kva)?).sized(name, loc.size))
            }
            KernelTarget::Kva(kva) => {
                let t = self.walk(m, *kva).map_err(|e| format!("kva target: {e}"))?;
                Ok(Resolved { kva: *kva, gpa: t.gpa, span: t.span(), field: None })
            }
            KernelTarget::TaskField { pid, expected_start_time_ns, field } => {
                self.task_field(m, *pid, *expected_start_time_ns, field)
            }
        }
    }

    /// Whether the guest runs 5-level paging (CR4.LA57), asked once.
    fn la57(&mut self, m: &mut dyn Machine) -> Result<bool, String> {
        if let Some(l) = self.la57 {
            return Ok(l);
        }
        let regs = m.paging_registers().map_err(|e| format!("reading CR4 for the paging mode: {e}"))?;
        let cr4 = regs.first().ok_or("no vCPU reported CR4")?.cr4;
        let la57 = cr4 & pagewalk::CR4_LA57 != 0;
        tracing::debug!("guest paging: {} levels (CR4 {cr4:#x})", if la57 { 5 } else { 4 });
        self.la57 = Some(la57);
        Ok(la57)
    }

    /// Page-table walk of `kva`: from the CR3 of a vCPU running in the kernel when
    /// frozen (falling back to `swapper_pg_dir`), else from `swapper_pg_dir`, whose
    /// kernel half every address space shares (the vmalloc area's upper levels
    /// are preallocated at boot, so its mappings show there too).
    pub fn walk(&mut self, m: &mut dyn Machine, kva: u64) -> Result<Translation, String> {
        let la57 = self.la57(m)?;
        let found = self.symbols(m, KERNEL_PGD)?;
        let swapper = found.into_iter().flatten().next().ok_or_else(|| {
            format!("the kernel's page directory is not in /proc/kallsyms (looked for {KERNEL_PGD:?})")
        })?;
        let swapper = self.image_gpa(m, swapper)?;
        if self.frozen {
            let regs = m.paging_registers().map_err(|e| e.to_string())?;
            if let Some(r) = regs.iter().find(|r| r.rip >= KERNEL_HALF) {
                match translate(m.guest_ram(), r.cr3, la57, kva) {
                    Ok(t) => return Ok(t),
                    Err(e) => {
                        tracing::debug!("walk from vCPU {}'s CR3 {:#x}: {e}; trying swapper_pg_dir", r.cpu, r.cr3)
                    }
                }
            }
        }
        translate(m.guest_ram(), swapper, la57, kva).map_err(|e| e.to_string())
    }

    /// GPA of a kernel pointer found in kernel memory: image, direct map, or a walk.
    fn pointer_gpa(&mut self, m: &mut dyn Machine, kva: u64) -> Result<u64, String> {
        if in_image(kva) {
            return self.image_gpa(m, kva);
        }
        if let Ok(gpa) = self.direct_gpa(m, kva) {
            return Ok(gpa);
        }
        Ok(self.walk(m, kva)?.gpa)
    }

    /// Reads `width` bytes at `t`.
    pub fn read(
        &mut self,
        m: &mut dyn Machine,
        t: &KernelTarget,
        width: &KernelValueWidth,
    ) -> Result<KernelValue, String> {
        let r = self.resolve(m, t)?;
        r.check_len(width.len())?;
        r.check_width(width.len(), !matches!(width, KernelValueWidth::Bytes(_)))?;
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
        r.check_len(w.value.width())?;
        r.check_width(w.value.width(), !matches!(w.value, KernelValue::Bytes(_)))?;
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

/// Whether `kva` lies in the kernel image mapping (linearly mapped from `phys_base`).
fn in_image(kva: u64) -> bool {
    (START_KERNEL_MAP..START_KERNEL_MAP + KERNEL_IMAGE_SIZE).contains(&kva)
}

fn read_u64(m: &dyn Machine, gpa: u64) -> Result<u64, String> {
    let mut b = [0u8; 8];
    m.guest_ram().read(gpa, &mut b).map_err(|e| format!("reading gpa {gpa:#x}: {e}"))?;
    Ok(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::Resolved;

    #[test]
    fn field_accesses_must_match_the_field_width() {
        let nr_running = Resolved::linear(0x1000, 0x1000).sized("per-cpu-field runqueues.nr_running".into(), Some(4));
        let e = nr_running.check_width(8, true).unwrap_err();
        assert_eq!(e, "per-cpu-field runqueues.nr_running is 4 bytes wide, not 8: access it as u32");
        assert!(nr_running.check_width(4, true).is_ok());
        assert!(nr_running.check_width(2, false).is_ok(), "a bytes read of part of it");
        assert!(nr_running.check_width(5, false).is_err());
        let clock = Resolved::linear(0, 0).sized("per-cpu-field runqueues.clock".into(), Some(8));
        assert!(clock.check_width(4, true).unwrap_err().ends_with("access it as u64"));
        assert!(Resolved::linear(0, 0).check_width(8, true).is_ok(), "a symbol has no field width");
    }

    #[test]
    fn per_cpu_symbols_map_to_structs() {
        assert_eq!(super::per_cpu_struct("runqueues"), Some("rq"));
        assert_eq!(super::per_cpu_struct("init_task"), None);
    }
}
