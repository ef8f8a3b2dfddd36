//! Shared libraries of dynamically linked staged binaries: the guest has no
//! distribution, so a dynamic payload brings its loader and libraries along,
//! at the same absolute paths as on the host (as `ldd` resolves them).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The loader and libraries `binary` needs; empty for a static binary (found
/// without running `ldd`, which a guest may not have).
pub fn shared_libraries(binary: &Path) -> std::io::Result<Vec<PathBuf>> {
    if is_static_elf(binary) {
        return Ok(Vec::new());
    }
    let out = Command::new("ldd").arg(binary).output()?;
    // ldd exits non-zero ("not a dynamic executable") for static binaries.
    if !out.status.success() {
        return Ok(Vec::new());
    }
    Ok(parse_ldd(&String::from_utf8_lossy(&out.stdout)))
}

/// Absolute paths out of `ldd` output (`libc.so.6 => /lib/... (0x..)`, `/lib64/ld-... (0x..)`).
fn parse_ldd(text: &str) -> Vec<PathBuf> {
    let mut libs: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| {
            let target = l.split_once("=>").map_or(l, |(_, t)| t).trim();
            let path = target.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect();
    libs.sort();
    libs.dedup();
    libs
}

/// Whether `path` is an ELF executable without a program interpreter (PT_INTERP).
pub(crate) fn is_static_elf(path: &Path) -> bool {
    let Ok(b) = std::fs::read(path) else { return false };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[32..40].try_into().unwrap_or_default()) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        b.get(at..at + 4).is_some_and(|t| u32::from_le_bytes(t.try_into().unwrap_or_default()) != 3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text),
            vec![PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"), PathBuf::from("/lib64/ld-linux-x86-64.so.2")]
        );
    }

    #[test]
    fn a_dynamic_host_binary_needs_libc() {
        let libs = shared_libraries(Path::new("/bin/true")).unwrap();
        assert!(libs.iter().any(|l| l.to_string_lossy().contains("libc.so")), "{libs:?}");
    }
}
