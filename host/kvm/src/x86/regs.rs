//! Initial vCPU register states: real mode for tiny test guests, 64-bit long
//! mode (identity-mapped low 4 GiB) for Linux and long-mode test guests.

use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};
use kvm_ioctls::VcpuFd;

use crate::error::{KvmError, Result};
use crate::memory::GuestMemory;

/// Where the boot GDT lives.
pub const GDT_ADDR: u64 = 0x8000;
/// PML4, then the PDPT, then four page directories (0x9000..0xf000).
pub const PML4_ADDR: u64 = 0x9000;
const PDPT_ADDR: u64 = PML4_ADDR + 0x1000;
const PD_ADDR: u64 = PML4_ADDR + 0x2000;
/// End of the boot page tables (first free byte).
pub const PAGE_TABLES_END: u64 = PD_ADDR + 4 * 0x1000;

/// Null, 64-bit code (0x08), data (0x10), TSS (0x18).
const GDT: [u64; 4] = [0, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff, 0x008f_8b00_0000_ffff];
const CODE_SEL: u16 = 0x08;
const DATA_SEL: u16 = 0x10;
const TSS_SEL: u16 = 0x18;

const CR0_PE: u64 = 1;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// Real mode with every segment at base 0, starting at `ip`, with the given
/// general registers preset (RIP and RFLAGS are set here).
pub fn set_real_mode_entry(fd: &VcpuFd, ip: u16, gprs: kvm_regs) -> Result<()> {
    let mut sregs = get_sregs(fd)?;
    for seg in [&mut sregs.cs, &mut sregs.ds, &mut sregs.es, &mut sregs.fs, &mut sregs.gs, &mut sregs.ss] {
        seg.base = 0;
        seg.selector = 0;
    }
    fd.set_sregs(&sregs).map_err(|e| KvmError::ioctl("KVM_SET_SREGS", e))?;
    set_regs(fd, kvm_regs { rip: u64::from(ip), rflags: 0x2, ..gprs })
}

/// Writes the boot GDT and page tables identity-mapping the low 4 GiB with
/// 2 MiB pages. Needs RAM up to [`PAGE_TABLES_END`].
pub fn write_long_mode_tables(mem: &GuestMemory) -> Result<()> {
    let gdt: Vec<u8> = GDT.iter().flat_map(|d| d.to_le_bytes()).collect();
    mem.write(GDT_ADDR, &gdt)?;
    mem.write(PML4_ADDR, &(PDPT_ADDR | 0x3).to_le_bytes())?;
    let pdpt: Vec<u8> = (0..4u64).flat_map(|i| ((PD_ADDR + i * 0x1000) | 0x3).to_le_bytes()).collect();
    mem.write(PDPT_ADDR, &pdpt)?;
    let pds: Vec<u8> = (0..4 * 512u64).flat_map(|i| ((i << 21) | 0x83).to_le_bytes()).collect();
    mem.write(PD_ADDR, &pds)
}

/// 64-bit long mode on the tables of [`write_long_mode_tables`], at `gprs.rip`
/// (RFLAGS is set here; other registers as given).
pub fn set_long_mode_entry(fd: &VcpuFd, gprs: kvm_regs) -> Result<()> {
    let mut sregs = get_sregs(fd)?;
    long_mode_sregs(&mut sregs);
    fd.set_sregs(&sregs).map_err(|e| KvmError::ioctl("KVM_SET_SREGS", e))?;
    set_regs(fd, kvm_regs { rflags: 0x2, ..gprs })
}

/// Fills the segment, descriptor-table and control registers for long mode.
pub fn long_mode_sregs(sregs: &mut kvm_sregs) {
    let seg = |selector: u16, type_: u8, l: u8, db: u8, s: u8| kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl: 0,
        db,
        s,
        l,
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    sregs.cs = seg(CODE_SEL, 0xb, 1, 0, 1);
    let data = seg(DATA_SEL, 0x3, 0, 1, 1);
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.tr = seg(TSS_SEL, 0xb, 0, 0, 0);
    sregs.tr.limit = 0xfffff;
    sregs.tr.g = 0;
    sregs.gdt.base = GDT_ADDR;
    sregs.gdt.limit = (GDT.len() * 8 - 1) as u16;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr3 = PML4_ADDR;
    sregs.cr4 |= CR4_PAE;
    sregs.cr0 |= CR0_PE | CR0_ET | CR0_PG;
    sregs.efer |= EFER_LME | EFER_LMA;
}

/// LINT0 as ExtINT and LINT1 as NMI, as firmware leaves the local APIC for Linux.
pub fn set_lint(fd: &VcpuFd) -> Result<()> {
    const LVT_LINT0: usize = 0x350;
    const LVT_LINT1: usize = 0x360;
    const EXTINT: u32 = 7 << 8;
    const NMI: u32 = 4 << 8;
    let mut lapic = fd.get_lapic().map_err(|e| KvmError::ioctl("KVM_GET_LAPIC", e))?;
    for (off, mode) in [(LVT_LINT0, EXTINT), (LVT_LINT1, NMI)] {
        let reg = &mut lapic.regs[off..off + 4];
        let old = u32::from_le_bytes([reg[0] as u8, reg[1] as u8, reg[2] as u8, reg[3] as u8]);
        let new = (old & !0x700) | mode;
        for (dst, b) in reg.iter_mut().zip(new.to_le_bytes()) {
            *dst = b as _;
        }
    }
    fd.set_lapic(&lapic).map_err(|e| KvmError::ioctl("KVM_SET_LAPIC", e))
}

/// The FPU as after FNINIT, with SSE exceptions masked.
pub fn set_fpu_defaults(fd: &VcpuFd) -> Result<()> {
    let fpu = kvm_bindings::kvm_fpu { fcw: 0x37f, mxcsr: 0x1f80, ..Default::default() };
    fd.set_fpu(&fpu).map_err(|e| KvmError::ioctl("KVM_SET_FPU", e))
}

fn get_sregs(fd: &VcpuFd) -> Result<kvm_sregs> {
    fd.get_sregs().map_err(|e| KvmError::ioctl("KVM_GET_SREGS", e))
}

fn set_regs(fd: &VcpuFd, regs: kvm_regs) -> Result<()> {
    fd.set_regs(&regs).map_err(|e| KvmError::ioctl("KVM_SET_REGS", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Bytes, GuestAddress};

    #[test]
    fn page_tables_identity_map_4g_with_2m_pages() {
        let mem = GuestMemory::new(0x10000).unwrap();
        write_long_mode_tables(&mem).unwrap();
        let m = mem.memory();
        let read = |a: u64| m.read_obj::<u64>(GuestAddress(a)).unwrap();
        let pdpt = read(PML4_ADDR) & !0xfff;
        // Walk the address 3 GiB + 6 MiB + 5.
        let va: u64 = (3 << 30) + (6 << 20) + 5;
        let pd = read(pdpt + 8 * ((va >> 30) & 511)) & !0xfff;
        let pde = read(pd + 8 * ((va >> 21) & 511));
        assert_eq!(pde & 0x83, 0x83, "present, writable, 2 MiB page");
        assert_eq!((pde & !0x1f_ffff & !(1 << 63)) | (va & 0x1f_ffff), va);
    }

    #[test]
    fn long_mode_sregs_enable_paging_in_64_bit_code() {
        let mut s = kvm_sregs::default();
        long_mode_sregs(&mut s);
        assert_eq!((s.cs.l, s.cs.db, s.cs.selector), (1, 0, CODE_SEL));
        assert_eq!(s.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_ne!(s.cr0 & CR0_PG, 0);
        assert_eq!(GDT[usize::from(CODE_SEL / 8)] >> 53 & 1, 1, "GDT code descriptor has L set");
    }
}
