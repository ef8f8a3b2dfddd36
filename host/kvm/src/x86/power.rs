//! The ACPI sleep control/status registers of a hardware-reduced platform:
//! writing SLP_TYP=S5 with SLP_EN powers the VM off.

use crate::bus::{BusDevice, DeviceAction};
use crate::x86::acpi::S5_SLP_TYP;

const SLP_EN: u8 = 1 << 5;

/// Sleep control (offset 0) and sleep status (offset 1).
#[derive(Debug, Default)]
pub struct SleepControl;

impl BusDevice for SleepControl {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> DeviceAction {
        match (offset, data.first()) {
            (0, Some(&v)) if v & SLP_EN != 0 && (v >> 2) & 7 == S5_SLP_TYP => DeviceAction::PowerOff,
            (0, Some(&v)) => {
                tracing::debug!(value = v, "sleep control write ignored (only S5 is supported)");
                DeviceAction::None
            }
            _ => DeviceAction::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_s5_with_slp_en_powers_off() {
        let mut d = SleepControl;
        assert_eq!(d.write(0, &[(5 << 2) | SLP_EN]), DeviceAction::PowerOff);
        assert_eq!(d.write(0, &[5 << 2]), DeviceAction::None, "no SLP_EN");
        assert_eq!(d.write(0, &[(3 << 2) | SLP_EN]), DeviceAction::None, "S3");
        assert_eq!(d.write(1, &[0xff]), DeviceAction::None, "status register");
    }
}
