//! Port I/O and MMIO dispatch: address ranges mapped to devices.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::error::{KvmError, Result};

/// What a device asks of the VM after a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceAction {
    /// Nothing: the vCPU goes on.
    None,
    /// The guest asked to power off (ACPI S5).
    PowerOff,
    /// The guest asked to reset.
    Reset,
}

/// A device on the port I/O or MMIO bus. `offset` is relative to the range's
/// base; `data` is the access (1, 2, 4 or 8 bytes).
pub trait BusDevice: Send {
    /// Fills `data`; unimplemented registers read as all ones by convention.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// Consumes a write.
    fn write(&mut self, offset: u64, data: &[u8]) -> DeviceAction;
}

/// A shared device.
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

/// Non-overlapping `[base, base + len)` ranges mapped to devices.
#[derive(Clone, Default)]
pub struct Bus {
    ranges: BTreeMap<u64, (u64, SharedDevice)>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.ranges.iter().map(|(b, (l, _))| (*b, *l))).finish()
    }
}

impl Bus {
    /// Maps `device` at `[base, base + len)`; refuses overlaps.
    pub fn insert(&mut self, base: u64, len: u64, device: SharedDevice) -> Result<()> {
        if len == 0 {
            return Err(KvmError::Invalid(format!("empty bus range at {base:#x}")));
        }
        let end = base + len;
        let clash = self.ranges.range(..end).next_back().is_some_and(|(b, (l, _))| b + l > base);
        if clash {
            return Err(KvmError::Invalid(format!("bus range {base:#x}+{len:#x} overlaps another device")));
        }
        self.ranges.insert(base, (len, device));
        Ok(())
    }

    fn find(&self, addr: u64) -> Option<(u64, &SharedDevice)> {
        let (base, (len, dev)) = self.ranges.range(..=addr).next_back()?;
        (addr < base + len).then_some((addr - base, dev))
    }

    /// Dispatches a read; returns false (and fills all ones) where no device is mapped.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.find(addr) {
            Some((offset, dev)) => {
                lock(dev).read(offset, data);
                true
            }
            None => {
                data.fill(0xff);
                false
            }
        }
    }

    /// Dispatches a write; `None` where no device is mapped.
    pub fn write(&self, addr: u64, data: &[u8]) -> Option<DeviceAction> {
        let (offset, dev) = self.find(addr)?;
        Some(lock(dev).write(offset, data))
    }
}

/// Locks a device, recovering from a panicked holder (a device's state is
/// plain registers, still meaningful after a panic elsewhere).
pub(crate) fn lock(dev: &SharedDevice) -> std::sync::MutexGuard<'_, dyn BusDevice + 'static> {
    dev.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Reg(u8);
    impl BusDevice for Reg {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(self.0.wrapping_add(offset as u8));
        }
        fn write(&mut self, _offset: u64, data: &[u8]) -> DeviceAction {
            self.0 = data[0];
            DeviceAction::None
        }
    }

    #[test]
    fn dispatches_by_range_and_refuses_overlaps() {
        let mut bus = Bus::default();
        bus.insert(0x100, 8, Arc::new(Mutex::new(Reg(1)))).unwrap();
        bus.insert(0x108, 8, Arc::new(Mutex::new(Reg(0x40)))).unwrap();
        assert!(bus.insert(0x104, 2, Arc::new(Mutex::new(Reg(0)))).is_err());
        assert!(bus.insert(0xfc, 8, Arc::new(Mutex::new(Reg(0)))).is_err());
        let mut b = [0u8; 1];
        assert!(bus.read(0x103, &mut b));
        assert_eq!(b[0], 4);
        assert_eq!(bus.write(0x10a, &[7]), Some(DeviceAction::None));
        bus.read(0x108, &mut b);
        assert_eq!(b[0], 7);
        assert!(!bus.read(0x110, &mut b));
        assert_eq!(b[0], 0xff);
        assert_eq!(bus.write(0xff, &[1]), None);
    }
}
