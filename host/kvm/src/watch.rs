//! Hardware watchpoints through KVM_SET_GUEST_DEBUG: DR0–DR3 hold linear
//! addresses, DR7 enables them. Slot 0 (DR0) is kept for the VMM itself, so
//! callers get slots 1–3.

use kvm_bindings::{kvm_guest_debug, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_USE_HW_BP};

use crate::error::{KvmError, Result};

/// What access fires a watchpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchKind {
    /// Data writes.
    Write,
    /// Data reads or writes.
    ReadWrite,
}

/// One hardware watchpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watchpoint {
    /// Debug register 1–3 (0 is reserved).
    pub slot: u8,
    /// Guest linear address, aligned to `len`.
    pub addr: u64,
    /// 1, 2, 4 or 8 bytes.
    pub len: u8,
    pub kind: WatchKind,
}

/// A watchpoint that fired, as the vCPU reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchHit {
    pub vcpu: usize,
    /// Slots whose condition was met (DR6 bits 0–3).
    pub slots: u8,
    /// Guest RIP after the access (data breakpoints are traps).
    pub rip: u64,
    pub dr6: u64,
}

impl Watchpoint {
    fn check(&self) -> Result<()> {
        if !(1..=3).contains(&self.slot) {
            return Err(KvmError::Invalid(format!("watchpoint slot {} is not 1–3 (slot 0 is reserved)", self.slot)));
        }
        if !matches!(self.len, 1 | 2 | 4 | 8) || !self.addr.is_multiple_of(u64::from(self.len)) {
            return Err(KvmError::Invalid(format!(
                "watchpoint of {} bytes at {:#x}: length must be 1, 2, 4 or 8 and the address aligned to it",
                self.len, self.addr
            )));
        }
        Ok(())
    }

    /// This watchpoint's enable, condition and length bits in DR7.
    fn dr7_bits(&self) -> u64 {
        let n = u64::from(self.slot);
        let rw: u64 = match self.kind {
            WatchKind::Write => 0b01,
            WatchKind::ReadWrite => 0b11,
        };
        let len: u64 = match self.len {
            1 => 0b00,
            2 => 0b01,
            8 => 0b10,
            _ => 0b11,
        };
        (1 << (2 * n)) | (rw << (16 + 4 * n)) | (len << (18 + 4 * n))
    }
}

/// The KVM_SET_GUEST_DEBUG argument for `points` (none: debugging off).
pub fn guest_debug(points: &[Watchpoint]) -> Result<kvm_guest_debug> {
    let mut dbg = kvm_guest_debug::default();
    if points.is_empty() {
        return Ok(dbg);
    }
    let mut dr7 = 1 << 10; // bit 10 reads as one
    let mut used = 0u8;
    for p in points {
        p.check()?;
        if used & (1 << p.slot) != 0 {
            return Err(KvmError::Invalid(format!("watchpoint slot {} given twice", p.slot)));
        }
        used |= 1 << p.slot;
        dbg.arch.debugreg[usize::from(p.slot)] = p.addr;
        dr7 |= p.dr7_bits();
    }
    dbg.arch.debugreg[7] = dr7;
    dbg.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
    Ok(dbg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dr7_encodes_slot_condition_and_length() {
        let w = Watchpoint { slot: 1, addr: 0x600, len: 2, kind: WatchKind::Write };
        let d = guest_debug(&[w, Watchpoint { slot: 3, addr: 0x1000, len: 8, kind: WatchKind::ReadWrite }]).unwrap();
        assert_eq!(d.arch.debugreg[1], 0x600);
        assert_eq!(d.arch.debugreg[3], 0x1000);
        assert_eq!(d.arch.debugreg[0], 0);
        // L1 (bit 2), RW1=01 (bits 20-21), LEN1=01 (bits 22-23); L3 (bit 6), RW3=11 (28-29), LEN3=10 (30-31).
        let want = (1 << 10) | (1 << 2) | (0b01 << 20) | (0b01 << 22) | (1 << 6) | (0b11 << 28) | (0b10 << 30);
        assert_eq!(d.arch.debugreg[7], want);
        assert_eq!(d.control, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP);
    }

    #[test]
    fn reserved_slot_misalignment_and_duplicates_are_refused() {
        let w = |slot, addr, len| Watchpoint { slot, addr, len, kind: WatchKind::Write };
        assert!(guest_debug(&[w(0, 0, 1)]).is_err());
        assert!(guest_debug(&[w(1, 2, 4)]).is_err());
        assert!(guest_debug(&[w(1, 0, 3)]).is_err());
        assert!(guest_debug(&[w(2, 0, 1), w(2, 8, 1)]).is_err());
        assert_eq!(guest_debug(&[]).unwrap().control, 0);
    }
}
