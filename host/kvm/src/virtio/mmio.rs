//! The virtio-mmio transport, version 2 (virtio spec §4.2.2).
//!
//! Registers are 32-bit and accessed with 4-byte accesses (others are
//! ignored, and read as all ones); device configuration space starts at
//! 0x100 and takes any width. Notifications are handled synchronously on
//! the notifying vCPU (Linux's hvc busy-waits for its transmit buffer to
//! come back), and interrupts are pulses of an eventfd for an edge GSI.

use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

use super::queue::{Queue, QueueError};
use super::{status, VirtioDevice, INT_CONFIG, INT_VRING, VIRTIO_F_VERSION_1};
use crate::bus::{BusDevice, DeviceAction};
use crate::error::{KvmError, Result};
use crate::memory::GuestMemory;

/// Bytes of MMIO a device occupies (registers and configuration space).
pub const MMIO_SIZE: u64 = 0x200;

/// "virt", little-endian.
pub const MAGIC_VALUE: u32 = 0x7472_6976;
/// The transport version: 2 is virtio 1.x ("modern"); 1 was legacy.
pub const VERSION: u32 = 2;
/// Vendor ID reported to the driver ("SBOX").
pub const VENDOR_ID: u32 = u32::from_le_bytes(*b"SBOX");

/// Register offsets (§4.2.2).
pub mod reg {
    pub const MAGIC_VALUE: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const SHM_SEL: u64 = 0x0ac;
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    pub const SHM_LEN_HIGH: u64 = 0x0b4;
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    pub const CONFIG: u64 = 0x100;
}

/// A virtio device on the MMIO bus: transport registers, queues, interrupt.
pub struct MmioTransport<D> {
    device: D,
    mem: Arc<GuestMemory>,
    queues: Vec<Queue>,
    irq: EventFd,
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    interrupt_status: u32,
}

impl<D: VirtioDevice> MmioTransport<D> {
    /// `device` on guest RAM `mem`, in its reset state; its interrupt
    /// eventfd is [`MmioTransport::irq_fd`].
    pub fn new(device: D, mem: Arc<GuestMemory>) -> Result<Self> {
        let irq = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)
            .map_err(|e| KvmError::Device(format!("virtio eventfd: {e}")))?;
        let queues = device.queue_max_sizes().iter().map(|&m| Queue::new(m)).collect();
        Ok(Self {
            device,
            mem,
            queues,
            irq,
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            interrupt_status: 0,
        })
    }

    /// The interrupt eventfd (for KVM_IRQFD on an edge-triggered GSI).
    pub fn irq_fd(&self) -> &EventFd {
        &self.irq
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device, mutably (host-side input; follow with [`MmioTransport::kick`]).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The device status register.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// Whether the driver finished initialisation and the device is not broken.
    pub fn live(&self) -> bool {
        let up = status::FEATURES_OK | status::DRIVER_OK;
        self.status & up == up && self.status & (status::DEVICE_NEEDS_RESET | status::FAILED) == 0
    }

    /// Every feature bit offered.
    fn offered_features(&self) -> u64 {
        self.device.features() | VIRTIO_F_VERSION_1
    }

    /// Processes queue `index` as on a driver notification: a no-op unless
    /// the device is live and the queue ready. Used buffers raise the
    /// interrupt (unless the driver suppressed it); an error marks the
    /// device DEVICE_NEEDS_RESET.
    pub fn kick(&mut self, index: usize) {
        if !self.live() {
            return;
        }
        let Some(queue) = self.queues.get_mut(index).filter(|q| q.ready) else {
            return;
        };
        let mem = self.mem.memory();
        let result = queue.check(mem).and_then(|()| self.device.process(index, queue, mem));
        match result {
            Ok(true) => {
                if !queue.interrupt_suppressed(mem) {
                    self.raise(INT_VRING);
                }
            }
            Ok(false) => {}
            Err(e) => self.fail(index, &e),
        }
    }

    /// Marks the device broken until the driver resets it, and tells the driver.
    fn fail(&mut self, index: usize, e: &QueueError) {
        tracing::warn!(device = self.device.device_type(), queue = index, error = %e, "virtio device needs a reset");
        self.status |= status::DEVICE_NEEDS_RESET;
        self.raise(INT_CONFIG);
    }

    fn raise(&mut self, bits: u32) {
        self.interrupt_status |= bits;
        if let Err(e) = self.irq.write(1) {
            tracing::debug!(error = %e, "virtio interrupt eventfd");
        }
    }

    fn reset(&mut self) {
        self.status = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.interrupt_status = 0;
        self.queues.iter_mut().for_each(Queue::reset);
        self.device.reset();
    }

    fn set_status(&mut self, value: u32) {
        let value = value & 0xff;
        if value == 0 {
            tracing::debug!(device = self.device.device_type(), "virtio reset");
            self.reset();
            return;
        }
        let old = self.status;
        let mut new = value | (old & status::DEVICE_NEEDS_RESET);
        if new & status::FEATURES_OK != 0 && old & status::FEATURES_OK == 0 {
            let extra = self.driver_features & !self.offered_features();
            if extra != 0 || self.driver_features & VIRTIO_F_VERSION_1 == 0 {
                tracing::warn!(driver = self.driver_features, "virtio driver features refused");
                new &= !status::FEATURES_OK;
            }
        }
        self.status = new;
        if new & status::DRIVER_OK != 0 && old & status::DRIVER_OK == 0 {
            tracing::debug!(device = self.device.device_type(), features = self.driver_features, "virtio driver ok");
            // Buffers (or host data) may already be waiting.
            (0..self.queues.len()).for_each(|i| self.kick(i));
        }
    }

    fn selected(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    /// Applies `f` to the selected queue's configuration, which may change only while it is not ready.
    fn configure(&mut self, f: impl FnOnce(&mut Queue)) {
        match self.selected() {
            Some(q) if !q.ready => f(q),
            Some(_) => tracing::debug!("virtio queue configured while ready: ignored"),
            None => {}
        }
    }

    fn read_register(&mut self, offset: u64) -> u32 {
        let features = self.offered_features();
        match offset {
            reg::MAGIC_VALUE => MAGIC_VALUE,
            reg::VERSION => VERSION,
            reg::DEVICE_ID => self.device.device_type(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => features as u32,
                1 => (features >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => self.selected().map_or(0, |q| u32::from(q.max_size())),
            reg::QUEUE_NUM => self.selected().map_or(0, |q| u32::from(q.size)),
            reg::QUEUE_READY => self.selected().map_or(0, |q| u32::from(q.ready)),
            reg::INTERRUPT_STATUS => self.interrupt_status,
            reg::STATUS => self.status,
            // No shared memory regions: length all ones.
            reg::SHM_LEN_LOW | reg::SHM_LEN_HIGH | reg::SHM_BASE_LOW | reg::SHM_BASE_HIGH => u32::MAX,
            reg::CONFIG_GENERATION => 0,
            _ => 0,
        }
    }

    fn write_register(&mut self, offset: u64, v: u32) {
        let low = |old: u64| (old & !0xffff_ffff) | u64::from(v);
        let high = |old: u64| (old & 0xffff_ffff) | (u64::from(v) << 32);
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = v,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            reg::DRIVER_FEATURES => {
                if self.status & status::FEATURES_OK != 0 {
                    tracing::debug!("virtio driver features written after FEATURES_OK: ignored");
                    return;
                }
                match self.driver_features_sel {
                    0 => self.driver_features = low(self.driver_features),
                    1 => self.driver_features = high(self.driver_features),
                    _ => {}
                }
            }
            reg::QUEUE_SEL => self.queue_sel = v,
            reg::QUEUE_NUM => self.configure(|q| q.size = u16::try_from(v).unwrap_or(0)),
            reg::QUEUE_READY => {
                if let Some(q) = self.selected() {
                    q.set_ready(v & 1 != 0);
                }
            }
            reg::QUEUE_NOTIFY => self.kick((v & 0xffff) as usize),
            reg::INTERRUPT_ACK => self.interrupt_status &= !v,
            reg::STATUS => self.set_status(v),
            reg::QUEUE_DESC_LOW => self.configure(|q| q.desc_table = low(q.desc_table)),
            reg::QUEUE_DESC_HIGH => self.configure(|q| q.desc_table = high(q.desc_table)),
            reg::QUEUE_DRIVER_LOW => self.configure(|q| q.avail_ring = low(q.avail_ring)),
            reg::QUEUE_DRIVER_HIGH => self.configure(|q| q.avail_ring = high(q.avail_ring)),
            reg::QUEUE_DEVICE_LOW => self.configure(|q| q.used_ring = low(q.used_ring)),
            reg::QUEUE_DEVICE_HIGH => self.configure(|q| q.used_ring = high(q.used_ring)),
            reg::SHM_SEL => {}
            _ => tracing::debug!(offset, value = v, "virtio-mmio write to an unknown register"),
        }
    }
}

impl<D: VirtioDevice> BusDevice for MmioTransport<D> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= reg::CONFIG {
            data.fill(0);
            self.device.read_config(offset - reg::CONFIG, data);
            return;
        }
        match <&mut [u8; 4]>::try_from(&mut *data) {
            Ok(word) => *word = self.read_register(offset).to_le_bytes(),
            Err(_) => {
                tracing::debug!(offset, len = data.len(), "virtio-mmio register read of the wrong width");
                data.fill(0xff);
            }
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> DeviceAction {
        if offset >= reg::CONFIG {
            self.device.write_config(offset - reg::CONFIG, data);
        } else if let Ok(word) = <[u8; 4]>::try_from(data) {
            self.write_register(offset, u32::from_le_bytes(word));
        } else {
            tracing::debug!(offset, len = data.len(), "virtio-mmio register write of the wrong width");
        }
        DeviceAction::None
    }
}
