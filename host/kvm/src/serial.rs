//! A 16550 UART (vm-superio) whose output lands in a host-side buffer and
//! whose input the host feeds. Interrupts go out through an eventfd, which
//! the VM wires to a GSI when it has an in-kernel irqchip.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use crate::bus::{BusDevice, DeviceAction};
use crate::error::{KvmError, Result};

/// I/O port base and IRQ of COM1 (console) and COM2 (once the data
/// channel, now the virtio console's job; still present).
pub const COM1: (u16, u32) = (0x3f8, 4);
/// See [`COM1`].
pub const COM2: (u16, u32) = (0x2f8, 3);

/// Bytes the output buffer keeps; older output is dropped.
const KEEP: usize = 1 << 20;

/// The interrupt line of a serial port: an eventfd.
#[derive(Debug)]
pub struct IrqLine(pub EventFd);

impl Trigger for IrqLine {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// Everything a guest wrote to a port, shared with the host.
#[derive(Debug, Default)]
pub struct SerialOutput {
    buf: Mutex<OutputBuf>,
    grew: Condvar,
}

#[derive(Debug, Default)]
struct OutputBuf {
    bytes: VecDeque<u8>,
    /// Total bytes ever written (so readers can follow a stream).
    total: u64,
}

impl SerialOutput {
    /// A copy of the bytes kept so far.
    pub fn contents(&self) -> Vec<u8> {
        self.lock().bytes.iter().copied().collect()
    }

    /// Total bytes the guest wrote since start.
    pub fn total(&self) -> u64 {
        self.lock().total
    }

    /// Bytes written after stream position `from` (a previous [`Self::total`]),
    /// and the new position. Bytes dropped from the buffer are skipped.
    pub fn read_from(&self, from: u64) -> (Vec<u8>, u64) {
        let b = self.lock();
        let first = b.total - b.bytes.len() as u64;
        let skip = from.saturating_sub(first) as usize;
        (b.bytes.iter().skip(skip).copied().collect(), b.total)
    }

    /// Waits until the output contains `needle` or `timeout` passes; true if found.
    pub fn wait_for(&self, needle: &[u8], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut b = self.lock();
        loop {
            if b.bytes.make_contiguous().windows(needle.len()).any(|w| w == needle) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            b = self.grew.wait_timeout(b, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Waits until at least `n` bytes past stream position `from` exist.
    pub fn wait_bytes(&self, from: u64, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut b = self.lock();
        while b.total < from + n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            b = self.grew.wait_timeout(b, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }

    /// Appends guest output (dropping the oldest bytes past 1 MiB) and wakes waiters.
    pub(crate) fn push(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut b = self.lock();
        b.bytes.extend(data);
        b.total += data.len() as u64;
        let excess = b.bytes.len().saturating_sub(KEEP);
        b.bytes.drain(..excess);
        drop(b);
        self.grew.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutputBuf> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `Write` end vm-superio writes guest output into.
struct Sink(Arc<SerialOutput>);

impl io::Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.push(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A 16550 on the port I/O bus.
pub struct SerialDevice {
    uart: Serial<IrqLine, vm_superio::serial::NoEvents, Sink>,
}

impl SerialDevice {
    /// A UART whose output goes to `out`; its interrupt eventfd is returned
    /// by [`SerialDevice::irq_fd`].
    pub fn new(out: Arc<SerialOutput>) -> Result<Self> {
        let evt = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)
            .map_err(|e| KvmError::Device(format!("serial eventfd: {e}")))?;
        Ok(Self { uart: Serial::new(IrqLine(evt), Sink(out)) })
    }

    /// The interrupt eventfd (for KVM_IRQFD).
    pub fn irq_fd(&self) -> &EventFd {
        &self.uart.interrupt_evt().0
    }

    /// Queues host bytes for the guest to read; returns how many fit in the FIFO.
    pub fn feed(&mut self, data: &[u8]) -> usize {
        self.uart.enqueue_raw_bytes(data).unwrap_or(0)
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let (Ok(off), Some(first)) = (u8::try_from(offset), data.first_mut()) {
            *first = self.uart.read(off);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> DeviceAction {
        if let (Ok(off), Some(&value)) = (u8::try_from(offset), data.first()) {
            if let Err(e) = self.uart.write(off, value) {
                tracing::debug!(?e, "serial write");
            }
        }
        DeviceAction::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transmit_register_reaches_the_output_and_input_reaches_the_guest() {
        let out = Arc::new(SerialOutput::default());
        let mut dev = SerialDevice::new(out.clone()).unwrap();
        for b in b"ok\n" {
            dev.write(0, &[*b]);
        }
        assert_eq!(out.contents(), b"ok\n");
        assert!(out.wait_for(b"ok", Duration::ZERO));
        assert_eq!(out.read_from(1), (b"k\n".to_vec(), 3));
        assert_eq!(dev.feed(b"x"), 1);
        let mut lsr = [0u8];
        dev.read(5, &mut lsr);
        assert_eq!(lsr[0] & 1, 1, "data ready");
        let mut rbr = [0u8];
        dev.read(0, &mut rbr);
        assert_eq!(rbr[0], b'x');
    }
}
