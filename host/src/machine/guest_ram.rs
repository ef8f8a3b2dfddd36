//! Guest RAM mapped in the host: the same `vm-memory` view on every backend,
//! so the monitor reads and writes guest memory identically.

use std::fs::File;
use std::path::Path;

use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryMmap};

/// Guest physical memory, as one or more contiguous file-backed regions.
#[derive(Debug)]
pub struct GuestRam {
    mem: GuestMemoryMmap,
    size: u64,
}

impl GuestRam {
    /// Maps `files` (each `(path, bytes)`) back to back from guest physical address 0.
    pub fn map_files(files: &[(&Path, u64)]) -> std::io::Result<Self> {
        let mut ranges = Vec::new();
        let mut base = 0u64;
        for (path, len) in files {
            let file = File::options().read(true).write(true).open(path)?;
            ranges.push((GuestAddress(base), *len as usize, Some(FileOffset::new(file, 0))));
            base += len;
        }
        let mem = GuestMemoryMmap::from_ranges_with_files(ranges).map_err(std::io::Error::other)?;
        Ok(Self { mem, size: base })
    }

    /// The vm-memory view.
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Reads `buf.len()` bytes at guest physical address `gpa`.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), vm_memory::GuestMemoryError> {
        self.mem.read_slice(buf, GuestAddress(gpa))
    }

    /// Finds the first occurrence of `needle` in the first `limit` bytes.
    pub fn find(&self, needle: &[u8], limit: u64) -> Option<u64> {
        const CHUNK: u64 = 1 << 20;
        let mut buf = vec![0u8; (CHUNK as usize) + needle.len()];
        let mut at = 0u64;
        let end = limit.min(self.size);
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            self.read(at, &mut buf[..n]).ok()?;
            if let Some(i) = buf[..n].windows(needle.len()).position(|w| w == needle) {
                return Some(at + i as u64);
            }
            at += CHUNK;
        }
        None
    }
}
