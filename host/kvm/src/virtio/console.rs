//! A virtio console (device ID 3) with one port and no optional features
//! (no VIRTIO_CONSOLE_F_MULTIPORT, so no control queues): queue 0 is the
//! receiveq (host → guest, into guest-posted writable buffers), queue 1 the
//! transmitq (guest → host, from readable buffers). Linux makes the port an
//! hvc tty, `/dev/hvc0` when it is the first one.
//!
//! Guest output lands in a [`SerialOutput`], like a 16550's. Host input
//! waits in a bounded pending buffer until the guest posts receive buffers,
//! so [`MmioTransport::send`] takes bytes before the driver is up and while
//! the guest is slow to read, and returns 0 only when that buffer is full.

use std::collections::VecDeque;
use std::sync::Arc;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::mmio::MmioTransport;
use super::queue::{DescriptorChain, Queue, QueueError};
use super::VirtioDevice;
use crate::serial::SerialOutput;

/// MMIO base and GSI of the virtio console of a [`crate::linux::LinuxVm`]
/// (in the 32-bit MMIO hole, clear of the IOAPIC, LAPIC and the KVM TSS).
pub const VIRTIO_CONSOLE: (u64, u32) = (0xd000_0000, 5);

/// Virtio device ID of a console.
pub const DEVICE_ID: u32 = 3;
/// Queue 0: device → driver.
pub const RECEIVEQ: usize = 0;
/// Queue 1: driver → device.
pub const TRANSMITQ: usize = 1;
/// QueueNumMax of both queues.
pub const QUEUE_SIZE: u16 = 256;
/// Host bytes kept waiting for guest receive buffers at most.
pub const PENDING_LIMIT: usize = 1 << 20;
/// Guest output is read in pieces of at most this size.
const CHUNK: usize = 64 << 10;

/// The console device (behind an [`MmioTransport`]).
#[derive(Debug)]
pub struct VirtioConsole {
    output: Arc<SerialOutput>,
    pending: VecDeque<u8>,
}

impl VirtioConsole {
    /// A console whose guest output goes to `output`.
    pub fn new(output: Arc<SerialOutput>) -> Self {
        Self { output, pending: VecDeque::new() }
    }

    /// Everything the guest transmitted.
    pub fn output(&self) -> &Arc<SerialOutput> {
        &self.output
    }

    /// Host bytes not yet delivered to the guest.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Buffers host bytes for the guest; returns how many fit under [`PENDING_LIMIT`].
    pub fn queue_input(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(PENDING_LIMIT.saturating_sub(self.pending.len()));
        self.pending.extend(&data[..n]);
        n
    }

    /// Copies every readable buffer of every available chain to the output,
    /// in order, and returns each chain with 0 bytes written.
    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, QueueError> {
        let mut bytes = Vec::new();
        let result = (|| {
            let mut used = false;
            while let Some(chain) = queue.pop(mem)? {
                for d in chain.descriptors.iter().filter(|d| !d.writable) {
                    let (mut addr, mut left) = (d.addr, d.len as usize);
                    while left > 0 {
                        let n = left.min(CHUNK);
                        let start = bytes.len();
                        bytes.resize(start + n, 0);
                        mem.read_slice(&mut bytes[start..], GuestAddress(addr))?;
                        (addr, left) = (addr + n as u64, left - n);
                        if bytes.len() >= CHUNK {
                            self.output.push(&bytes);
                            bytes.clear();
                        }
                    }
                }
                queue.add_used(mem, chain.head, 0)?;
                used = true;
            }
            Ok(used)
        })();
        // What was read before an error still reaches the host.
        self.output.push(&bytes);
        result
    }

    /// Fills available receive buffers from the pending bytes, in order.
    fn receive(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, QueueError> {
        let mut used = false;
        while !self.pending.is_empty() {
            let Some(chain) = queue.pop(mem)? else { break };
            let written = self.fill(&chain, mem)?;
            queue.add_used(mem, chain.head, written)?;
            used = true;
        }
        Ok(used)
    }

    /// Writes pending bytes into the writable buffers of `chain`; returns how many.
    fn fill(&mut self, chain: &DescriptorChain, mem: &GuestMemoryMmap) -> Result<u32, QueueError> {
        let mut written = 0u32;
        for d in chain.descriptors.iter().filter(|d| d.writable) {
            let mut at = d.addr;
            let mut room = d.len as usize;
            while room > 0 && !self.pending.is_empty() {
                let front = self.pending.as_slices().0;
                let n = front.len().min(room);
                mem.write_slice(&front[..n], GuestAddress(at))?;
                self.pending.drain(..n);
                (at, room) = (at + n as u64, room - n);
                written += n as u32;
            }
        }
        Ok(written)
    }
}

impl VirtioDevice for VirtioConsole {
    fn device_type(&self) -> u32 {
        DEVICE_ID
    }

    fn features(&self) -> u64 {
        0
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        // struct virtio_console_config {cols u16, rows u16, max_nr_ports u32,
        // emerg_wr u32}: all zero, and meaningful only with features not offered.
        data.fill(0);
    }

    fn process(&mut self, index: usize, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, QueueError> {
        match index {
            RECEIVEQ => self.receive(queue, mem),
            TRANSMITQ => self.transmit(queue, mem),
            _ => Ok(false),
        }
    }

    // Pending host bytes survive a driver reset: the host sees one byte
    // stream, and a re-probed driver picks it up where the old one stopped.
}

impl MmioTransport<VirtioConsole> {
    /// Takes host bytes for the guest (up to [`PENDING_LIMIT`] waiting) and
    /// delivers what the guest's posted receive buffers hold; returns how
    /// many bytes were taken (0 only while the pending buffer is full).
    pub fn send(&mut self, data: &[u8]) -> usize {
        let n = self.device_mut().queue_input(data);
        self.kick(RECEIVEQ);
        n
    }
}
