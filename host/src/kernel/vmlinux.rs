//! vmlinux from a bzImage: the boot header locates the compressed payload, a pure-Rust
//! zstd decoder inflates it, and the result must be an ELF64 x86-64 kernel. Whether it
//! carries a PVH entry note decides if QEMU can boot it directly with `-kernel vmlinux`
//! (microvm, no firmware).

use std::io::Read;

/// Xen's `XEN_ELFNOTE_PHYS32_ENTRY`: the 32-bit physical PVH entry point.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
const PT_NOTE: u32 = 4;
const PT_LOAD: u32 = 1;
const EM_X86_64: u16 = 62;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

#[derive(Debug, thiserror::Error)]
pub enum VmlinuxError {
    #[error("not a bzImage (no `HdrS` boot header) and no zstd payload in it; pass a bzImage or a vmlinux ELF")]
    NotBzImage,
    #[error(
        "the kernel payload is {0}-compressed; schedbox decompresses zstd only: \
         build with CONFIG_KERNEL_ZSTD=y, or extract it with the kernel's scripts/extract-vmlinux and pass the vmlinux"
    )]
    Unsupported(&'static str),
    #[error("the zstd payload does not decompress ({0}); the image is truncated or corrupt: fetch it again")]
    Zstd(String),
    #[error("decompressed {got} bytes but the image records {want}; the image is corrupt: fetch it again")]
    SizeMismatch { got: usize, want: usize },
    #[error("not an ELF64 x86-64 kernel: {0}")]
    NotElf(&'static str),
}

/// What the host needs to know about a vmlinux ELF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfInfo {
    /// `e_entry` (the 64-bit virtual entry, unused for PVH boots).
    pub entry: u64,
    /// The PVH entry (`XEN_ELFNOTE_PHYS32_ENTRY`): present iff `CONFIG_PVH=y`.
    pub pvh_entry: Option<u32>,
    pub load_segments: usize,
}

/// The uncompressed vmlinux ELF inside `image` (returned as is when already an ELF).
pub fn extract_vmlinux(image: &[u8]) -> Result<Vec<u8>, VmlinuxError> {
    if image.starts_with(b"\x7fELF") {
        inspect_elf(image)?;
        return Ok(image.to_vec());
    }
    // With a boot header the payload is exact and the kernel build appended the
    // uncompressed size (u32 LE) to it; without one, take the first zstd frame.
    let (payload, size_trailer) = match payload(image) {
        Some(p) => (p, p.len().checked_sub(4).and_then(|n| u32_at(p, n))),
        None => (&image[find(image, &ZSTD_MAGIC).ok_or(VmlinuxError::NotBzImage)?..], None),
    };
    if !payload.starts_with(&ZSTD_MAGIC) {
        return Err(VmlinuxError::Unsupported(compression_name(payload)));
    }
    let mut decoder = ruzstd::decoding::StreamingDecoder::new_with_max_window_size(payload, 1 << 31)
        .map_err(|e| VmlinuxError::Zstd(e.to_string()))?;
    let mut out = Vec::with_capacity(payload.len() * 5);
    decoder.read_to_end(&mut out).map_err(|e| VmlinuxError::Zstd(e.to_string()))?;
    let frame = &decoder.decoder;
    if let (Some(stored), Some(computed)) = (frame.get_checksum_from_data(), frame.get_calculated_checksum()) {
        if stored != computed {
            return Err(VmlinuxError::Zstd(format!("content checksum {computed:#x} != stored {stored:#x}")));
        }
    }
    if let Some(want) = size_trailer.map(|w| w as usize).filter(|&w| w != out.len()) {
        return Err(VmlinuxError::SizeMismatch { got: out.len(), want });
    }
    inspect_elf(&out)?;
    Ok(out)
}

/// The compressed payload per the x86 boot protocol (2.08+: payload_offset/length).
fn payload(image: &[u8]) -> Option<&[u8]> {
    if image.len() < 0x250 || &image[0x202..0x206] != b"HdrS" || u16_at(image, 0x206)? < 0x208 {
        return None;
    }
    let setup_sects = match image[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let start = (setup_sects + 1) * 512 + u32_at(image, 0x248)? as usize;
    let len = u32_at(image, 0x24c)? as usize;
    image.get(start..start.checked_add(len)?)
}

fn compression_name(p: &[u8]) -> &'static str {
    match p {
        [0x1f, 0x8b, ..] => "gzip",
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => "xz",
        [0x5d, 0, 0, ..] => "lzma",
        [b'B', b'Z', b'h', ..] => "bzip2",
        [0x02, 0x21, 0x4c, 0x18, ..] => "lz4",
        [0x89, b'L', b'Z', b'O', ..] => "lzo",
        _ => "an unknown format",
    }
}

/// Check that `elf` is an ELF64 little-endian x86-64 image and read its PVH note.
pub fn inspect_elf(elf: &[u8]) -> Result<ElfInfo, VmlinuxError> {
    if !elf.starts_with(b"\x7fELF") {
        return Err(VmlinuxError::NotElf("no ELF magic"));
    }
    if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err(VmlinuxError::NotElf("not 64-bit little-endian"));
    }
    if u16_at(elf, 18) != Some(EM_X86_64) {
        return Err(VmlinuxError::NotElf("e_machine is not x86-64"));
    }
    let bad = VmlinuxError::NotElf("truncated program headers");
    let entry = u64_at(elf, 24).ok_or(VmlinuxError::NotElf("truncated header"))?;
    let phoff = u64_at(elf, 32).ok_or(VmlinuxError::NotElf("truncated header"))? as usize;
    let phentsize = u16_at(elf, 54).ok_or(VmlinuxError::NotElf("truncated header"))? as usize;
    let phnum = u16_at(elf, 56).ok_or(VmlinuxError::NotElf("truncated header"))? as usize;
    let (mut pvh_entry, mut load_segments) = (None, 0);
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let (Some(kind), Some(off), Some(size)) = (u32_at(elf, ph), u64_at(elf, ph + 8), u64_at(elf, ph + 32)) else {
            return Err(bad);
        };
        match kind {
            PT_LOAD => load_segments += 1,
            PT_NOTE => {
                let notes =
                    elf.get(off as usize..(off + size) as usize).ok_or(VmlinuxError::NotElf("note outside file"))?;
                pvh_entry = pvh_entry.or_else(|| find_pvh_note(notes));
            }
            _ => {}
        }
    }
    Ok(ElfInfo { entry, pvh_entry, load_segments })
}

fn find_pvh_note(mut notes: &[u8]) -> Option<u32> {
    let align = |n: usize| (n + 3) & !3;
    while notes.len() >= 12 {
        let (namesz, descsz, kind) = (u32_at(notes, 0)? as usize, u32_at(notes, 4)? as usize, u32_at(notes, 8)?);
        let name = notes.get(12..12 + namesz)?;
        let desc_at = 12 + align(namesz);
        let desc = notes.get(desc_at..desc_at + descsz)?;
        if name == b"Xen\0" && kind == XEN_ELFNOTE_PHYS32_ENTRY && descsz >= 4 {
            return u32_at(desc, 0);
        }
        notes = notes.get(desc_at + align(descsz)..)?;
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
#[path = "vmlinux_tests.rs"]
mod tests;
