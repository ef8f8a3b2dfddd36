//! Purpose-built guest images for tests and benchmarks: a minimal ELF64
//! executable around raw x86-64 code, loadable as a stand-in vmlinux.

/// Where [`elf64`] images load and start (the kernel's usual 1 MiB).
pub const STANDIN_ENTRY: u64 = 0x10_0000;

/// An ELF64 x86-64 executable with one PT_LOAD segment holding `code`,
/// loaded at and entered at [`STANDIN_ENTRY`].
pub fn elf64(code: &[u8]) -> Vec<u8> {
    const CODE_OFFSET: u64 = 0x1000;
    let mut f = Vec::with_capacity(CODE_OFFSET as usize + code.len());
    f.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0"); // 64-bit, little endian, SysV
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    f.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    f.extend_from_slice(&STANDIN_ENTRY.to_le_bytes());
    f.extend_from_slice(&64u64.to_le_bytes()); // e_phoff: right after this header
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff: no sections
    f.extend_from_slice(&0u32.to_le_bytes()); // e_flags

    // e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
    for v in [64u16, 56, 1, 64, 0, 0] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f.extend_from_slice(&5u32.to_le_bytes()); // R+X

    // p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
    let len = code.len() as u64;
    for v in [CODE_OFFSET, STANDIN_ENTRY, STANDIN_ENTRY, len, len, 0x1000] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.resize(CODE_OFFSET as usize, 0);
    f.extend_from_slice(code);
    f
}

/// A bzImage (boot protocol 2.15) whose protected-mode part holds `code` at
/// its 64-bit entry (offset 0x200; the 32-bit entry before it is `hlt`s).
pub fn bzimage(code: &[u8]) -> Vec<u8> {
    const SETUP_SECTS: u8 = 1;
    let mut f = vec![0u8; (usize::from(SETUP_SECTS) + 1) * 512];
    let mut put = |off: usize, bytes: &[u8]| f[off..off + bytes.len()].copy_from_slice(bytes);
    put(0x1f1, &[SETUP_SECTS]);
    put(0x1fe, &0xaa55u16.to_le_bytes());
    put(0x202, b"HdrS");
    put(0x206, &0x020fu16.to_le_bytes()); // protocol version
    put(0x211, &[0x01]); // loadflags: LOADED_HIGH
    put(0x214, &0x10_0000u32.to_le_bytes()); // code32_start
    put(0x230, &0x20_0000u32.to_le_bytes()); // kernel_alignment
    put(0x234, &[1]); // relocatable
    put(0x236, &0x0001u16.to_le_bytes()); // xloadflags: XLF_KERNEL_64
    f.extend_from_slice(&[0xf4; 0x200]);
    f.extend_from_slice(code);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::GuestMemory;

    #[test]
    fn linux_loader_places_the_code_at_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vmlinux");
        std::fs::write(&path, elf64(&[0xf4, 0x90])).unwrap();
        let mem = GuestMemory::new(4 << 20).unwrap();
        let (entry, end) = crate::x86::boot::load_vmlinux(&mem, &path).unwrap();
        assert_eq!((entry, end), (STANDIN_ENTRY, STANDIN_ENTRY + 2));
        let mut code = [0u8; 2];
        mem.read(STANDIN_ENTRY, &mut code).unwrap();
        assert_eq!(code, [0xf4, 0x90]);
    }

    #[test]
    fn a_bzimage_is_entered_at_startup_64_with_its_setup_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bzImage");
        std::fs::write(&path, bzimage(&[0x90, 0xf4])).unwrap();
        let mem = GuestMemory::new(4 << 20).unwrap();
        let k = crate::x86::boot::load_kernel(&mem, &path).unwrap();
        assert_eq!(k.entry, crate::x86::boot::BZIMAGE_LOAD + 0x200);
        assert_eq!(k.setup_header.map(|h| h.version), Some(0x020f));
        let mut code = [0u8; 2];
        mem.read(k.entry, &mut code).unwrap();
        assert_eq!(code, [0x90, 0xf4]);
        assert!(crate::x86::boot::load_vmlinux(&mem, &path).is_err(), "not an ELF");
    }
}
