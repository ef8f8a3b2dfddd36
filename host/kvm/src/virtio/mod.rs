//! Virtio 1.x devices on the virtio-mmio transport (MMIO version 2, "modern").
//!
//! [`mmio::MmioTransport`] implements the register layout of the virtio spec
//! §4.2.2 on the MMIO bus and owns the split virtqueues ([`queue::Queue`]);
//! a [`VirtioDevice`] (today only [`console::VirtioConsole`]) consumes and
//! fills their buffers. The guest finds the device through the ACPI DSDT
//! (`_HID` "LNRO0005", see [`crate::x86::acpi`]); its interrupt is an eventfd
//! the VM wires to an edge-triggered GSI with KVM_IRQFD.

pub mod console;
pub mod mmio;
pub mod queue;

#[cfg(test)]
mod tests;

use vm_memory::GuestMemoryMmap;

pub use console::{VirtioConsole, VIRTIO_CONSOLE};
pub use mmio::{MmioTransport, MMIO_SIZE};
pub use queue::{Descriptor, DescriptorChain, Queue, QueueError};

/// Device status bits (virtio spec §2.1).
pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    /// Set by the device when it hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u32 = 0x40;
    pub const FAILED: u32 = 0x80;
}

/// VIRTIO_F_VERSION_1: the device is virtio 1.x ("modern"); always offered.
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;

/// InterruptStatus bit: the device added used buffers.
pub const INT_VRING: u32 = 1;
/// InterruptStatus bit: the configuration (or the device status) changed.
pub const INT_CONFIG: u32 = 2;

/// A virtio device behind a transport. The transport calls it only while
/// the driver is live (FEATURES_OK and DRIVER_OK set, not broken).
pub trait VirtioDevice: Send {
    /// Virtio device ID (§5: 3 = console).
    fn device_type(&self) -> u32;
    /// Device-specific feature bits offered; the transport adds [`VIRTIO_F_VERSION_1`].
    fn features(&self) -> u64;
    /// The maximum size of each queue; its length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Reads `data.len()` bytes of device configuration space at `offset`
    /// (bytes past the end read as zero).
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// A driver write to configuration space; ignored by default.
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        let _ = (offset, data);
    }
    /// Consumes or fills the available buffers of queue `index` (already
    /// checked to be ready and well placed). Returns whether it added used
    /// buffers; an error leaves the device needing a reset.
    fn process(&mut self, index: usize, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, QueueError>;
    /// The driver reset the device (status 0).
    fn reset(&mut self) {}
}
