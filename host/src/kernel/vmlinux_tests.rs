//! Synthetic kernels: a tiny ELF64 with (or without) a Xen PVH note, zstd-compressed
//! into a bzImage-shaped file with a boot header and the kernel's size trailer.

use super::*;

/// An ELF64 x86-64 header, one PT_LOAD and one PT_NOTE holding `notes`.
fn elf(machine: u16, notes: &[u8]) -> Vec<u8> {
    let mut e = vec![0u8; 64 + 2 * 56];
    e[..4].copy_from_slice(b"\x7fELF");
    e[4] = 2;
    e[5] = 1;
    e[18..20].copy_from_slice(&machine.to_le_bytes());
    e[24..32].copy_from_slice(&0xffff_ffff_8100_0000u64.to_le_bytes());
    e[32..40].copy_from_slice(&64u64.to_le_bytes());
    e[54..56].copy_from_slice(&56u16.to_le_bytes());
    e[56..58].copy_from_slice(&2u16.to_le_bytes());
    e[64..68].copy_from_slice(&PT_LOAD.to_le_bytes());
    let note_ph = 64 + 56;
    e[note_ph..note_ph + 4].copy_from_slice(&PT_NOTE.to_le_bytes());
    let off = e.len() as u64;
    e[note_ph + 8..note_ph + 16].copy_from_slice(&off.to_le_bytes());
    e[note_ph + 32..note_ph + 40].copy_from_slice(&(notes.len() as u64).to_le_bytes());
    e.extend_from_slice(notes);
    e.extend(std::iter::repeat_n(0x90u8, 4096)); // some "text" to compress
    e
}

fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    n.extend((name.len() as u32).to_le_bytes());
    n.extend((desc.len() as u32).to_le_bytes());
    n.extend(kind.to_le_bytes());
    n.extend(name);
    n.resize(n.len().next_multiple_of(4), 0);
    n.extend(desc);
    n.resize(n.len().next_multiple_of(4), 0);
    n
}

fn pvh_notes() -> Vec<u8> {
    let mut n = note(b"Linux\0", 6, b"7.2.13\0");
    n.extend(note(b"Xen\0", 6, b"linux\0"));
    n.extend(note(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &0x039c_e030u64.to_le_bytes()));
    n
}

/// A bzImage: setup sectors with the boot header, then the payload + size trailer.
fn bzimage(payload: &[u8], trailer: u32) -> Vec<u8> {
    let mut img = vec![0u8; 2 * 512];
    img[0x1f1] = 1; // setup_sects
    img[0x202..0x206].copy_from_slice(b"HdrS");
    img[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    let payload_offset = 0x40u32;
    img[0x248..0x24c].copy_from_slice(&payload_offset.to_le_bytes());
    img[0x24c..0x250].copy_from_slice(&(payload.len() as u32 + 4).to_le_bytes());
    img.resize(img.len() + payload_offset as usize, 0xee);
    img.extend_from_slice(payload);
    img.extend(trailer.to_le_bytes());
    img.extend([0u8; 64]); // whatever follows the payload
    img
}

fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

#[test]
fn extracts_a_zstd_bzimage_and_finds_the_pvh_entry() {
    let vmlinux = elf(EM_X86_64, &pvh_notes());
    let img = bzimage(&zstd(&vmlinux), vmlinux.len() as u32);
    let out = extract_vmlinux(&img).unwrap();
    assert_eq!(out, vmlinux);
    let info = inspect_elf(&out).unwrap();
    assert_eq!(info.pvh_entry, Some(0x039c_e030));
    assert_eq!(info.load_segments, 1);
    assert_eq!(info.entry, 0xffff_ffff_8100_0000);
}

#[test]
fn without_a_boot_header_the_first_zstd_frame_is_used() {
    let vmlinux = elf(EM_X86_64, &pvh_notes());
    let mut img = b"garbage before".to_vec();
    img.extend(zstd(&vmlinux));
    assert_eq!(extract_vmlinux(&img).unwrap(), vmlinux);
}

#[test]
fn an_elf_passes_through_and_no_note_means_no_pvh() {
    let vmlinux = elf(EM_X86_64, &note(b"Linux\0", 6, b"x\0"));
    assert_eq!(extract_vmlinux(&vmlinux).unwrap(), vmlinux);
    assert_eq!(inspect_elf(&vmlinux).unwrap().pvh_entry, None);
}

#[test]
fn refuses_what_it_cannot_use_with_a_way_out() {
    let gz = bzimage(&[0x1f, 0x8b, 8, 0, 0, 0], 10);
    let msg = extract_vmlinux(&gz).unwrap_err().to_string();
    assert!(msg.contains("gzip") && msg.contains("CONFIG_KERNEL_ZSTD"), "{msg}");
    assert!(matches!(extract_vmlinux(b"not a kernel at all"), Err(VmlinuxError::NotBzImage)));
    let arm = elf(183, &[]);
    assert!(matches!(extract_vmlinux(&arm), Err(VmlinuxError::NotElf(_))));
    let vmlinux = elf(EM_X86_64, &pvh_notes());
    let wrong_size = bzimage(&zstd(&vmlinux), 7);
    assert!(matches!(extract_vmlinux(&wrong_size), Err(VmlinuxError::SizeMismatch { want: 7, .. })));
    let mut truncated = zstd(&vmlinux);
    truncated.truncate(truncated.len() / 2);
    assert!(extract_vmlinux(&bzimage(&truncated, vmlinux.len() as u32)).is_err());
}
