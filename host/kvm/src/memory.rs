//! Guest RAM: one memfd, mapped with `vm-memory` and registered with KVM.
//!
//! x86 keeps [`PCI_HOLE_START`, 4 GiB) free for MMIO, so RAM above the hole's
//! start continues at 4 GiB. Both regions are windows of the same memfd, which
//! another mapping (the host monitor) can open through [`GuestMemory::fd_path`].

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::error::{KvmError, Result};

/// Start of the 32-bit MMIO hole; RAM beyond it is placed at 4 GiB.
pub const PCI_HOLE_START: u64 = 0xC000_0000;
/// End of the 32-bit MMIO hole.
pub const FOUR_GIB: u64 = 1 << 32;

/// Guest physical memory backed by a memfd.
#[derive(Debug)]
pub struct GuestMemory {
    mem: GuestMemoryMmap,
    file: File,
    size: u64,
}

impl GuestMemory {
    /// Creates `size` bytes (a multiple of 4 KiB) of zeroed guest RAM.
    pub fn new(size: u64) -> Result<Self> {
        if size == 0 || !size.is_multiple_of(4096) {
            return Err(KvmError::Invalid(format!("guest memory size {size} is not a positive multiple of 4 KiB")));
        }
        // SAFETY: the name is a valid NUL-terminated string and the flags are
        // valid; the result is checked before use.
        let fd = unsafe { libc::memfd_create(c"schedbox-guest-ram".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(KvmError::Memory(format!("memfd_create: {}", std::io::Error::last_os_error())));
        }
        // SAFETY: fd is a freshly created descriptor that nothing else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(size).map_err(|e| KvmError::Memory(format!("sizing guest RAM to {size} bytes: {e}")))?;
        let mut ranges = Vec::new();
        let low = size.min(PCI_HOLE_START);
        ranges.push((GuestAddress(0), low as usize, Some(FileOffset::new(clone(&file)?, 0))));
        if size > low {
            ranges.push((GuestAddress(FOUR_GIB), (size - low) as usize, Some(FileOffset::new(clone(&file)?, low))));
        }
        let mem = GuestMemoryMmap::from_ranges_with_files(ranges).map_err(|e| KvmError::Memory(e.to_string()))?;
        Ok(Self { mem, file, size })
    }

    /// The vm-memory view.
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// Bytes of RAM (not counting the hole).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The backing memfd: RAM below the hole at offset 0, the rest after it.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// A path another mapping in this process can open (`/proc/self/fd/N`).
    pub fn fd_path(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }

    /// RAM as `(guest address, length)` ranges, in address order.
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        self.mem.iter().map(|r| (r.start_addr().0, r.len())).collect()
    }

    /// Writes `data` at guest physical `gpa`.
    pub fn write(&self, gpa: u64, data: &[u8]) -> Result<()> {
        self.mem.write_slice(data, GuestAddress(gpa)).map_err(|e| KvmError::Memory(format!("write at {gpa:#x}: {e}")))
    }

    /// Reads `buf.len()` bytes at guest physical `gpa`.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<()> {
        self.mem.read_slice(buf, GuestAddress(gpa)).map_err(|e| KvmError::Memory(format!("read at {gpa:#x}: {e}")))
    }

    /// Reads a little-endian u32, atomically with respect to guest stores.
    pub fn read_u32(&self, gpa: u64) -> Result<u32> {
        self.mem
            .load::<u32>(GuestAddress(gpa), std::sync::atomic::Ordering::Acquire)
            .map_err(|e| KvmError::Memory(format!("read at {gpa:#x}: {e}")))
    }

    /// Registers every region with the VM as memory slots 0, 1, ….
    pub(crate) fn register(&self, vm: &VmFd) -> Result<()> {
        for (slot, region) in self.mem.iter().enumerate() {
            let host = self.mem.get_host_address(region.start_addr()).map_err(|e| KvmError::Memory(e.to_string()))?;
            let desc = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: host as u64,
            };
            // SAFETY: the mapping described lives in `self.mem`, which the Vm
            // owns and drops only after the VM fd (field order in `Vm`), so the
            // guest never sees freed memory.
            unsafe { vm.set_user_memory_region(desc) }.map_err(|e| KvmError::ioctl("KVM_SET_USER_MEMORY_REGION", e))?;
        }
        Ok(())
    }
}

fn clone(file: &File) -> Result<File> {
    file.try_clone().map_err(|e| KvmError::Memory(format!("dup of the guest RAM memfd: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_above_the_hole_moves_to_4g_and_shares_the_file() {
        let mem = GuestMemory::new(PCI_HOLE_START + 2 * 4096).unwrap();
        assert_eq!(mem.ranges(), vec![(0, PCI_HOLE_START), (FOUR_GIB, 8192)]);
        mem.write(FOUR_GIB + 4, b"high").unwrap();
        let mut buf = [0u8; 4];
        use std::os::unix::fs::FileExt;
        mem.file().read_exact_at(&mut buf, PCI_HOLE_START + 4).unwrap();
        assert_eq!(&buf, b"high");
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(GuestMemory::new(0).is_err());
        assert!(GuestMemory::new(4097).is_err());
    }
}
