//! Shared libraries of dynamically linked staged binaries: the guest has no
//! distribution, so a dynamic payload brings its loader and libraries along,
//! at the same absolute paths as on the host (as `ldd` resolves them; where
//! there is no `ldd`, as in a nested run's outer guest, by reading the ELF
//! files' `PT_INTERP` and `DT_NEEDED` and searching the standard directories).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The loader and libraries `binary` needs; empty for a static binary (found
/// without running `ldd`, which a guest may not have).
pub fn shared_libraries(binary: &Path) -> std::io::Result<Vec<PathBuf>> {
    if is_static_elf(binary) {
        return Ok(Vec::new());
    }
    let out = match Command::new("ldd").arg(binary).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return elf_libraries(binary),
        Err(e) => return Err(e),
    };
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

/// Where [`elf_libraries`] looks for a `DT_NEEDED` name (x86-64 Debian and most others).
const LIBRARY_DIRS: [&str; 6] =
    ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"];

/// The loader and libraries of `binary` without `ldd`: its interpreter, then
/// every `DT_NEEDED` library found in [`LIBRARY_DIRS`], transitively.
fn elf_libraries(binary: &Path) -> std::io::Result<Vec<PathBuf>> {
    let bad =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {what}", binary.display()));
    let elf = std::fs::read(binary)?;
    // Like ldd's "not a dynamic executable": nothing to bring along.
    let Some((interp, mut pending)) = elf_dynamic(&elf) else { return Ok(Vec::new()) };
    let mut found: Vec<PathBuf> = interp.into_iter().map(PathBuf::from).collect();
    // The loader is also libc's DT_NEEDED; it comes once, at the interpreter path.
    let mut seen: std::collections::HashSet<String> =
        found.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let path = LIBRARY_DIRS
            .iter()
            .map(|d| Path::new(d).join(&name))
            .find(|p| p.is_file())
            .ok_or_else(|| bad(&format!("needs {name}, which is in none of {LIBRARY_DIRS:?}")))?;
        let lib = std::fs::read(&path)?;
        pending.extend(elf_dynamic(&lib).map(|(_, needed)| needed).unwrap_or_default());
        found.push(path);
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// The interpreter (`PT_INTERP`) and `DT_NEEDED` names of an ELF64
/// little-endian file; `None` when it is not one or has no `PT_DYNAMIC`.
fn elf_dynamic(b: &[u8]) -> Option<(Option<String>, Vec<String>)> {
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?) as usize);
    let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
    let cstr = |o: usize| {
        let tail = b.get(o..)?;
        let end = tail.iter().position(|c| *c == 0)?;
        Some(String::from_utf8_lossy(&tail[..end]).into_owned())
    };
    let (phoff, phentsize, phnum) = (u64_at(32)? as usize, u16_at(54)?, u16_at(56)?);
    // (type, file offset, virtual address, file size) of each program header.
    let headers: Vec<(u32, u64, u64, u64)> = (0..phnum)
        .map(|i| {
            let h = phoff + i * phentsize;
            Some((u32_at(h)?, u64_at(h + 8)?, u64_at(h + 16)?, u64_at(h + 32)?))
        })
        .collect::<Option<_>>()?;
    let interp = headers.iter().find(|h| h.0 == 3).and_then(|h| cstr(h.1 as usize));
    let dynamic = headers.iter().find(|h| h.0 == 2)?;
    // A virtual address to its file offset, through the PT_LOAD that maps it.
    let to_offset = |vaddr: u64| {
        headers.iter().find(|h| h.0 == 1 && vaddr >= h.2 && vaddr < h.2 + h.3).map(|h| (vaddr - h.2 + h.1) as usize)
    };
    let (mut needed, mut strtab) = (Vec::new(), None);
    for at in (dynamic.1..dynamic.1 + dynamic.3).step_by(16) {
        let (tag, val) = (u64_at(at as usize)?, u64_at(at as usize + 8)?);
        match tag {
            0 => break,
            1 => needed.push(val),
            5 => strtab = to_offset(val),
            _ => {}
        }
    }
    let strtab = strtab?;
    Some((interp, needed.into_iter().filter_map(|o| cstr(strtab + o as usize)).collect()))
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
    fn reading_the_elf_finds_what_ldd_finds() {
        for bin in ["/bin/true", "/bin/sh", "/usr/bin/ls"] {
            let by_ldd = shared_libraries(Path::new(bin)).unwrap();
            let by_elf = elf_libraries(Path::new(bin)).unwrap();
            let names = |v: &[PathBuf]| {
                let mut n: Vec<_> = v.iter().map(|p| p.file_name().unwrap().to_owned()).collect();
                n.sort();
                n
            };
            assert_eq!(names(&by_elf), names(&by_ldd), "{bin}");
            assert!(by_elf.iter().all(|p| p.is_file()), "{by_elf:?}");
        }
        assert!(elf_libraries(Path::new("/etc/passwd")).unwrap().is_empty(), "not an ELF: nothing to bring");
    }

    #[test]
    fn a_dynamic_host_binary_needs_libc() {
        let libs = shared_libraries(Path::new("/bin/true")).unwrap();
        assert!(libs.iter().any(|l| l.to_string_lossy().contains("libc.so")), "{libs:?}");
    }
}
