//! The Linux x86 64-bit boot protocol: vmlinux ELF loading, the initramfs,
//! the command line, and the zero page (boot_params) with its e820 map and
//! the RSDP address.

use std::fs::File;
use std::path::Path;

use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use linux_loader::loader::{bzimage::BzImage, elf::Elf, KernelLoader};
use vm_memory::{Bytes, GuestAddress};

use crate::error::{KvmError, Result};
use crate::memory::{GuestMemory, FOUR_GIB};

/// The zero page.
pub const BOOT_PARAMS_ADDR: u64 = 0x7000;
/// The initial stack (grows down towards the GDT at 0x8000's page start).
pub const BOOT_STACK: u64 = 0x8ff0;
/// The kernel command line.
pub const CMDLINE_ADDR: u64 = 0x20000;
/// Longest command line accepted (the kernel's COMMAND_LINE_SIZE on x86).
pub const CMDLINE_MAX: usize = 2048;
/// Start of the reserved legacy area (EBDA, ROMs, ACPI tables) up to 1 MiB.
pub const EBDA_START: u64 = 0x9fc00;
/// ACPI tables live here, inside the reserved area.
pub const ACPI_ADDR: u64 = 0xe0000;
/// The kernel loads at or above 1 MiB.
pub const HIMEM_START: u64 = 0x10_0000;
/// Where a bzImage's protected-mode part goes (2 MiB: the x86-64 kernel alignment).
pub const BZIMAGE_LOAD: u64 = 0x20_0000;
/// Offset of the 64-bit entry point (`startup_64`) in a bzImage's protected-mode part.
const BZIMAGE_ENTRY_64: u64 = 0x200;
/// `xloadflags` bit: the kernel has a 64-bit entry point.
const XLF_KERNEL_64: u16 = 1;

// The ACPI tables sit in the reserved legacy area.
const _: () = assert!(ACPI_ADDR >= EBDA_START && ACPI_ADDR < HIMEM_START);

const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;

/// One e820 entry: `(address, length, type)`.
pub type E820 = (u64, u64, u32);

/// The e820 map of `mem`: low RAM, the reserved legacy area, RAM from 1 MiB
/// up to the MMIO hole, and RAM from 4 GiB.
pub fn e820_map(mem: &GuestMemory) -> Vec<E820> {
    let mut map = vec![(0, EBDA_START, E820_RAM), (EBDA_START, HIMEM_START - EBDA_START, E820_RESERVED)];
    for (base, len) in mem.ranges() {
        let start = base.max(HIMEM_START);
        let end = base + len;
        if end > start {
            map.push((start, end - start, E820_RAM));
        }
    }
    map
}

/// A kernel placed in guest memory.
#[derive(Clone, Copy, Debug)]
pub struct LoadedKernel {
    /// 64-bit entry point.
    pub entry: u64,
    /// First byte past the image.
    pub end: u64,
    /// A bzImage's setup header, which the zero page must carry.
    pub setup_header: Option<setup_header>,
}

/// Loads a vmlinux ELF (at its physical addresses) or a bzImage (its
/// protected-mode part at [`BZIMAGE_LOAD`], entered at `startup_64`).
pub fn load_kernel(mem: &GuestMemory, path: &Path) -> Result<LoadedKernel> {
    let what = |e: &dyn std::fmt::Display| KvmError::Loader(format!("{}: {e}", path.display()));
    let mut file = File::open(path).map_err(|e| what(&e))?;
    let mut magic = [0u8; 4];
    std::io::Read::read_exact(&mut file, &mut magic).map_err(|e| what(&e))?;
    if &magic == b"\x7fELF" {
        let loaded = Elf::load(mem.memory(), None, &mut file, Some(GuestAddress(HIMEM_START))).map_err(|e| what(&e))?;
        return Ok(LoadedKernel { entry: loaded.kernel_load.0, end: loaded.kernel_end, setup_header: None });
    }
    let loaded =
        BzImage::load(mem.memory(), Some(GuestAddress(BZIMAGE_LOAD)), &mut file, Some(GuestAddress(HIMEM_START)))
            .map_err(|e| what(&format!("{e} (neither an ELF vmlinux nor a bzImage)")))?;
    let hdr = loaded.setup_header.ok_or_else(|| what(&"the bzImage has no setup header"))?;
    if hdr.xloadflags & XLF_KERNEL_64 == 0 {
        return Err(what(&"the bzImage has no 64-bit entry point (xloadflags lacks XLF_KERNEL_64)"));
    }
    Ok(LoadedKernel { entry: loaded.kernel_load.0 + BZIMAGE_ENTRY_64, end: loaded.kernel_end, setup_header: Some(hdr) })
}

/// Loads a vmlinux ELF at its physical addresses; returns its entry point and end.
pub fn load_vmlinux(mem: &GuestMemory, path: &Path) -> Result<(u64, u64)> {
    let k = load_kernel(mem, path)?;
    match k.setup_header {
        None => Ok((k.entry, k.end)),
        Some(_) => Err(KvmError::Loader(format!("{}: a bzImage, not a vmlinux ELF", path.display()))),
    }
}

/// Copies the initramfs to the top of RAM below the MMIO hole (page aligned),
/// above `kernel_end`; returns `(address, size)`.
pub fn load_initramfs(mem: &GuestMemory, path: &Path, kernel_end: u64) -> Result<(u64, u64)> {
    let data = std::fs::read(path).map_err(|e| KvmError::Loader(format!("{}: {e}", path.display())))?;
    let size = data.len() as u64;
    let top = mem.ranges().first().map_or(0, |(b, l)| b + l).min(FOUR_GIB);
    let addr = top.checked_sub(size).map(|a| a & !0xfff).filter(|a| *a >= kernel_end).ok_or_else(|| {
        KvmError::Loader(format!(
            "the initramfs ({size} bytes) does not fit between the kernel's end {kernel_end:#x} and {top:#x}: \
             give the guest more memory"
        ))
    })?;
    mem.write(addr, &data)?;
    Ok((addr, size))
}

/// Writes the command line (NUL-terminated) at [`CMDLINE_ADDR`].
pub fn write_cmdline(mem: &GuestMemory, cmdline: &str) -> Result<()> {
    if cmdline.len() >= CMDLINE_MAX || cmdline.contains('\0') {
        return Err(KvmError::Invalid(format!(
            "kernel command line of {} bytes: must be under {CMDLINE_MAX} and contain no NUL",
            cmdline.len()
        )));
    }
    mem.write(CMDLINE_ADDR, &[cmdline.as_bytes(), &[0]].concat())
}

/// What goes into the zero page.
#[derive(Clone, Debug)]
pub struct ZeroPage {
    /// A bzImage's setup header (the zero page starts from it), if any.
    pub setup_header: Option<setup_header>,
    pub cmdline_len: usize,
    pub initramfs: Option<(u64, u64)>,
    pub rsdp: u64,
    pub e820: Vec<E820>,
}

/// Builds and writes boot_params at [`BOOT_PARAMS_ADDR`].
pub fn write_zero_page(mem: &GuestMemory, zp: &ZeroPage) -> Result<()> {
    let mut bp = boot_params::default();
    if let Some(hdr) = zp.setup_header {
        bp.hdr = hdr;
    }
    bp.hdr.boot_flag = 0xaa55;
    bp.hdr.header = 0x5372_6448; // "HdrS"
    bp.hdr.version = 0x020f;
    bp.hdr.type_of_loader = 0xff;
    bp.hdr.kernel_alignment = 0x100_0000;
    bp.hdr.cmd_line_ptr = CMDLINE_ADDR as u32;
    bp.hdr.cmdline_size = zp.cmdline_len as u32;
    if let Some((addr, size)) = zp.initramfs {
        bp.hdr.ramdisk_image = addr as u32;
        bp.ext_ramdisk_image = (addr >> 32) as u32;
        bp.hdr.ramdisk_size = size as u32;
        bp.ext_ramdisk_size = (size >> 32) as u32;
    }
    bp.acpi_rsdp_addr = zp.rsdp;
    if zp.e820.len() > bp.e820_table.len() {
        return Err(KvmError::Invalid(format!("{} e820 entries do not fit the zero page", zp.e820.len())));
    }
    for (slot, &(addr, size, type_)) in bp.e820_table.iter_mut().zip(&zp.e820) {
        *slot = boot_e820_entry { addr, size, r#type: type_ };
    }
    bp.e820_entries = zp.e820.len() as u8;
    mem.memory()
        .write_obj(bp, GuestAddress(BOOT_PARAMS_ADDR))
        .map_err(|e| KvmError::Memory(format!("writing boot_params: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::PCI_HOLE_START;

    #[test]
    fn e820_reserves_the_legacy_area_and_skips_the_hole() {
        let mem = GuestMemory::new(PCI_HOLE_START + (1 << 20)).unwrap();
        assert_eq!(
            e820_map(&mem),
            vec![
                (0, EBDA_START, E820_RAM),
                (EBDA_START, HIMEM_START - EBDA_START, E820_RESERVED),
                (HIMEM_START, PCI_HOLE_START - HIMEM_START, E820_RAM),
                (FOUR_GIB, 1 << 20, E820_RAM),
            ]
        );
    }

    #[test]
    fn zero_page_carries_cmdline_initramfs_rsdp_and_e820() {
        let mem = GuestMemory::new(16 << 20).unwrap();
        write_cmdline(&mem, "console=ttyS0").unwrap();
        let zp = ZeroPage {
            setup_header: None,
            cmdline_len: 13,
            initramfs: Some((0xf0_0000, 0x1234)),
            rsdp: ACPI_ADDR,
            e820: e820_map(&mem),
        };
        write_zero_page(&mem, &zp).unwrap();
        let bp: boot_params = mem.memory().read_obj(GuestAddress(BOOT_PARAMS_ADDR)).unwrap();
        assert_eq!({ bp.hdr.cmd_line_ptr }, CMDLINE_ADDR as u32);
        assert_eq!(({ bp.hdr.ramdisk_image }, { bp.hdr.ramdisk_size }), (0xf0_0000, 0x1234));
        assert_eq!({ bp.acpi_rsdp_addr }, ACPI_ADDR);
        assert_eq!(bp.e820_entries, 3);
        let mut raw = [0u8; 4];
        mem.read(BOOT_PARAMS_ADDR + 0x1e8, &mut raw[..1]).unwrap();
        assert_eq!(raw[0], 3, "e820_entries at its ABI offset");
        mem.read(BOOT_PARAMS_ADDR + 0x228, &mut raw).unwrap();
        assert_eq!(u32::from_le_bytes(raw), CMDLINE_ADDR as u32, "cmd_line_ptr at its ABI offset");
        let mut line = [0u8; 14];
        mem.read(CMDLINE_ADDR, &mut line).unwrap();
        assert_eq!(&line, b"console=ttyS0\0");
    }

    #[test]
    fn oversized_cmdline_and_initramfs_are_refused() {
        let mem = GuestMemory::new(2 << 20).unwrap();
        assert!(write_cmdline(&mem, &"x".repeat(CMDLINE_MAX)).is_err());
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("initrd");
        std::fs::write(&big, vec![0u8; 3 << 20]).unwrap();
        let err = load_initramfs(&mem, &big, HIMEM_START).unwrap_err();
        assert!(err.to_string().contains("more memory"), "{err}");
    }
}
