//! The guest agent: a static musl binary, so the initramfs needs no libc or loader.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

pub const TARGET: &str = "x86_64-unknown-linux-musl";

/// `PT_INTERP`: the program header naming a dynamic loader.
const PT_INTERP: u32 = 3;

/// Where `build_agent` leaves the agent.
pub fn agent_path(root: &Path) -> PathBuf {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(|d| root.join(d)).unwrap_or_else(|| root.join("target"));
    target_dir.join(TARGET).join("release/schedbox-agent")
}

/// Builds `schedbox-agent` for musl (release) and checks it is static.
pub fn build_agent(root: &Path) -> Result<PathBuf> {
    crate::prereqs::rust_target(TARGET)?;
    crate::run(root, "cargo", &["build", "--release", "--quiet", "-p", "schedbox-agent", "--target", TARGET])?;
    let path = agent_path(root);
    let elf = std::fs::read(&path).with_context(|| format!("the agent build left no {}", path.display()))?;
    if has_interpreter(&elf).with_context(|| format!("{} is not an ELF64 executable", path.display()))? {
        bail!(
            "{} is dynamically linked (it has a PT_INTERP); the guest has no loader. \
             Is `-C target-feature=-crt-static` set in RUSTFLAGS or .cargo/config.toml?",
            path.display()
        );
    }
    Ok(path)
}

/// Whether an ELF64 little-endian file asks for a dynamic loader.
pub(crate) fn has_interpreter(elf: &[u8]) -> Result<bool> {
    if !elf.starts_with(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        bail!("no ELF64 little-endian header");
    }
    let n = |at: usize, len: usize| -> Result<u64> {
        let b = elf.get(at..at + len).context("truncated ELF headers")?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| acc << 8 | x as u64))
    };
    let (phoff, phentsize, phnum) = (n(32, 8)? as usize, n(54, 2)? as usize, n(56, 2)? as usize);
    for i in 0..phnum {
        if n(phoff + i * phentsize, 4)? == PT_INTERP as u64 {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(types: &[u32]) -> Vec<u8> {
        let mut e = vec![0u8; 64 + 56 * types.len()];
        e[..4].copy_from_slice(b"\x7fELF");
        (e[4], e[5]) = (2, 1);
        e[32..40].copy_from_slice(&64u64.to_le_bytes());
        e[54..56].copy_from_slice(&56u16.to_le_bytes());
        e[56..58].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for (i, t) in types.iter().enumerate() {
            e[64 + 56 * i..68 + 56 * i].copy_from_slice(&t.to_le_bytes());
        }
        e
    }

    #[test]
    fn interpreter_detection() {
        assert!(!has_interpreter(&elf(&[6, 1, 1, 2])).unwrap(), "static-pie: PT_DYNAMIC but no PT_INTERP");
        assert!(has_interpreter(&elf(&[6, PT_INTERP, 1])).unwrap());
        assert!(has_interpreter(b"#!/bin/sh\n").is_err());
        let mut truncated = elf(&[1, 1]);
        truncated.truncate(100);
        assert!(has_interpreter(&truncated).is_err());
    }
}
