//! Split virtqueues (virtio spec §2.7), read and written by hand in guest RAM.
//!
//! Layout, all little-endian: the descriptor table (16 bytes each: addr u64,
//! len u32, flags u16, next u16), the available ring (flags u16, idx u16,
//! then `size` u16 heads) and the used ring (flags u16, idx u16, then `size`
//! elements {id u32, len u32}). Neither VIRTIO_F_EVENT_IDX nor indirect descriptors
//! are negotiated. Every address the guest hands over is checked against
//! guest RAM and every chain walk is bounded by the queue size, so a
//! malformed queue yields a [`QueueError`], never a hang or a panic.

use std::sync::atomic::{fence, Ordering};

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryError, GuestMemoryMmap};

/// Descriptor flag: the chain continues at `next`.
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the buffer is device-writable.
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
/// Descriptor flag: the buffer is a table of descriptors (not negotiated here).
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;
/// Available ring flag: the driver asks not to be interrupted.
pub const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Why a queue cannot be used; the device then needs a reset.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue misconfigured: {0}")]
    Config(String),
    #[error("available index {avail} is {ahead} entries ahead of the device on a queue of {size}")]
    AvailIndex { avail: u16, ahead: u16, size: u16 },
    #[error("descriptor index {index} out of range (queue size {size})")]
    DescriptorIndex { index: u16, size: u16 },
    #[error("descriptor chain from head {head} is longer than the queue (a loop)")]
    ChainTooLong { head: u16 },
    #[error("indirect descriptor in chain {head} (VIRTIO_F_INDIRECT_DESC not negotiated)")]
    Indirect { head: u16 },
    #[error("buffer {addr:#x}+{len:#x} is not in guest RAM")]
    OutOfRam { addr: u64, len: u32 },
    #[error("guest memory: {0}")]
    Memory(#[from] GuestMemoryError),
}

/// One buffer of a chain, checked to lie in guest RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub addr: u64,
    pub len: u32,
    /// Device-writable (VIRTQ_DESC_F_WRITE); otherwise device-readable.
    pub writable: bool,
}

/// An available descriptor chain, taken off the available ring. It must be
/// returned with [`Queue::add_used`] (under its `head`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescriptorChain {
    pub head: u16,
    pub descriptors: Vec<Descriptor>,
}

/// One split virtqueue as the driver configured it through the transport,
/// plus the device's positions in its rings.
#[derive(Clone, Debug)]
pub struct Queue {
    max_size: u16,
    /// QueueNum: entries in each ring (a power of two ≤ `max_size`).
    pub size: u16,
    /// QueueReady.
    pub ready: bool,
    /// Guest addresses of the descriptor table, available (driver) ring and used (device) ring.
    pub desc_table: u64,
    pub avail_ring: u64,
    pub used_ring: u64,
    next_avail: u16,
    next_used: u16,
}

impl Queue {
    /// A queue of at most `max_size` entries, in its reset state.
    pub fn new(max_size: u16) -> Self {
        Self {
            max_size,
            size: max_size,
            ready: false,
            desc_table: 0,
            avail_ring: 0,
            used_ring: 0,
            next_avail: 0,
            next_used: 0,
        }
    }

    /// QueueNumMax.
    pub fn max_size(&self) -> u16 {
        self.max_size
    }

    /// Back to the reset state (not ready, no addresses, indices at zero).
    pub fn reset(&mut self) {
        *self = Self::new(self.max_size);
    }

    /// Marks the queue ready or not; becoming ready restarts both ring positions at zero.
    pub fn set_ready(&mut self, ready: bool) {
        if ready && !self.ready {
            self.next_avail = 0;
            self.next_used = 0;
        }
        self.ready = ready;
    }

    /// The next available ring position the device will read.
    pub fn next_avail(&self) -> u16 {
        self.next_avail
    }

    /// The next used ring position the device will write.
    pub fn next_used(&self) -> u16 {
        self.next_used
    }

    /// Checks that the queue is ready, of a valid size, and that its three
    /// areas are aligned (16/2/4) and in guest RAM.
    pub fn check(&self, mem: &GuestMemoryMmap) -> Result<(), QueueError> {
        if !self.ready {
            return Err(QueueError::Config("not ready".into()));
        }
        if self.size == 0 || self.size > self.max_size || !self.size.is_power_of_two() {
            return Err(QueueError::Config(format!("size {} (max {})", self.size, self.max_size)));
        }
        let n = usize::from(self.size);
        let areas = [
            ("descriptor table", self.desc_table, 16, 16 * n),
            ("available ring", self.avail_ring, 2, 6 + 2 * n),
            ("used ring", self.used_ring, 4, 6 + 8 * n),
        ];
        for (what, addr, align, len) in areas {
            if !addr.is_multiple_of(align) {
                return Err(QueueError::Config(format!("{what} at {addr:#x} is not {align}-byte aligned")));
            }
            if !mem.check_range(GuestAddress(addr), len) {
                return Err(QueueError::Config(format!("{what} {addr:#x}+{len:#x} is not in guest RAM")));
            }
        }
        Ok(())
    }

    /// Takes the next available chain, or `None` if the driver has made
    /// none available. The queue must have passed [`Queue::check`].
    pub fn pop(&mut self, mem: &GuestMemoryMmap) -> Result<Option<DescriptorChain>, QueueError> {
        let avail = u16::from_le(mem.load::<u16>(GuestAddress(self.avail_ring + 2), Ordering::Relaxed)?);
        let ahead = avail.wrapping_sub(self.next_avail);
        if ahead == 0 {
            return Ok(None);
        }
        if ahead > self.size {
            return Err(QueueError::AvailIndex { avail, ahead, size: self.size });
        }
        // Pairs with the driver's write barrier before it published `idx`:
        // the ring entry and the descriptors are read after the index.
        fence(Ordering::Acquire);
        let slot = u64::from(self.next_avail % self.size);
        let head = u16::from_le(mem.read_obj::<u16>(GuestAddress(self.avail_ring + 4 + 2 * slot))?);
        let descriptors = self.walk(mem, head)?;
        self.next_avail = self.next_avail.wrapping_add(1);
        Ok(Some(DescriptorChain { head, descriptors }))
    }

    /// Follows the chain from `head`, at most `size` descriptors.
    fn walk(&self, mem: &GuestMemoryMmap, head: u16) -> Result<Vec<Descriptor>, QueueError> {
        let mut out = Vec::new();
        let mut index = head;
        loop {
            if index >= self.size {
                return Err(QueueError::DescriptorIndex { index, size: self.size });
            }
            if out.len() >= usize::from(self.size) {
                return Err(QueueError::ChainTooLong { head });
            }
            let mut raw = [0u8; 16];
            mem.read_slice(&mut raw, GuestAddress(self.desc_table + 16 * u64::from(index)))?;
            let addr = u64::from_le_bytes(raw[0..8].try_into().expect("8 bytes"));
            let len = u32::from_le_bytes(raw[8..12].try_into().expect("4 bytes"));
            let flags = u16::from_le_bytes([raw[12], raw[13]]);
            let next = u16::from_le_bytes([raw[14], raw[15]]);
            if flags & VIRTQ_DESC_F_INDIRECT != 0 {
                return Err(QueueError::Indirect { head });
            }
            if !mem.check_range(GuestAddress(addr), len as usize) {
                return Err(QueueError::OutOfRam { addr, len });
            }
            out.push(Descriptor { addr, len, writable: flags & VIRTQ_DESC_F_WRITE != 0 });
            if flags & VIRTQ_DESC_F_NEXT == 0 {
                return Ok(out);
            }
            index = next;
        }
    }

    /// Returns chain `head` to the driver with `len` bytes written into it:
    /// the used element first, then (after a release fence) the used index.
    pub fn add_used(&mut self, mem: &GuestMemoryMmap, head: u16, len: u32) -> Result<(), QueueError> {
        let slot = u64::from(self.next_used % self.size);
        let elem = self.used_ring + 4 + 8 * slot;
        mem.write_obj(u32::from(head).to_le(), GuestAddress(elem))?;
        mem.write_obj(len.to_le(), GuestAddress(elem + 4))?;
        self.next_used = self.next_used.wrapping_add(1);
        // The element must be visible before the index that publishes it.
        fence(Ordering::Release);
        mem.store(self.next_used.to_le(), GuestAddress(self.used_ring + 2), Ordering::Relaxed)?;
        Ok(())
    }

    /// Whether the driver asked not to be interrupted (VIRTQ_AVAIL_F_NO_INTERRUPT);
    /// read after the used index was published.
    pub fn interrupt_suppressed(&self, mem: &GuestMemoryMmap) -> bool {
        // Order the used index store before the flags load (a driver that
        // re-enables interrupts then re-checks the used index).
        fence(Ordering::SeqCst);
        mem.load::<u16>(GuestAddress(self.avail_ring), Ordering::Relaxed)
            .is_ok_and(|f| u16::from_le(f) & VIRTQ_AVAIL_F_NO_INTERRUPT != 0)
    }
}
