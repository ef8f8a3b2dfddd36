//! The virtio console driven from the driver side, the way Linux's
//! virtio_mmio and virtio_console drivers do, through the MMIO bus and with
//! real rings in guest RAM.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::console::{PENDING_LIMIT, RECEIVEQ, TRANSMITQ};
use super::mmio::reg;
use super::queue::{VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use super::*;
use crate::bus::{Bus, SharedDevice};
use crate::memory::GuestMemory;
use crate::serial::SerialOutput;

const BASE: u64 = VIRTIO_CONSOLE.0;
const RAM: u64 = 16 << 20;
/// Receive buffers start here, transmit data at TX_DATA.
const RX_DATA: u64 = 0x10_0000;
const TX_DATA: u64 = 0x20_0000;

type Console = Arc<Mutex<MmioTransport<VirtioConsole>>>;

/// A minimal virtio driver for the console.
struct Driver {
    mem: Arc<GuestMemory>,
    bus: Bus,
    dev: Console,
    out: Arc<SerialOutput>,
    size: u16,
    next_desc: [u16; 2],
    avail_idx: [u16; 2],
}

/// Descriptor table, available ring and used ring of queue `q`.
fn rings(q: usize) -> (u64, u64, u64) {
    let base = 0x1_0000 * (q as u64 + 1);
    (base, base + 0x4000, base + 0x8000)
}

impl Driver {
    fn new() -> Self {
        let mem = Arc::new(GuestMemory::new(RAM).unwrap());
        let out = Arc::new(SerialOutput::default());
        let dev = Arc::new(Mutex::new(MmioTransport::new(VirtioConsole::new(out.clone()), mem.clone()).unwrap()));
        let mut bus = Bus::default();
        bus.insert(BASE, MMIO_SIZE, dev.clone() as SharedDevice).unwrap();
        Self { mem, bus, dev, out, size: 0, next_desc: [0; 2], avail_idx: [0; 2] }
    }

    fn r(&self, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        assert!(self.bus.read(BASE + offset, &mut b));
        u32::from_le_bytes(b)
    }

    fn w(&self, offset: u64, v: u32) {
        assert!(self.bus.write(BASE + offset, &v.to_le_bytes()).is_some());
    }

    fn add_status(&self, bits: u32) {
        self.w(reg::STATUS, self.r(reg::STATUS) | bits);
    }

    /// Linux's probe: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queues, DRIVER_OK.
    fn init(&mut self, size: u16) {
        self.w(reg::STATUS, 0);
        assert_eq!(self.r(reg::STATUS), 0);
        self.add_status(status::ACKNOWLEDGE);
        self.add_status(status::DRIVER);
        self.w(reg::DEVICE_FEATURES_SEL, 1);
        let high = self.r(reg::DEVICE_FEATURES);
        self.w(reg::DEVICE_FEATURES_SEL, 0);
        let low = self.r(reg::DEVICE_FEATURES);
        assert_eq!((u64::from(high) << 32) | u64::from(low), VIRTIO_F_VERSION_1, "VERSION_1 only");
        self.w(reg::DRIVER_FEATURES_SEL, 1);
        self.w(reg::DRIVER_FEATURES, 1);
        self.w(reg::DRIVER_FEATURES_SEL, 0);
        self.w(reg::DRIVER_FEATURES, 0);
        self.add_status(status::FEATURES_OK);
        assert_ne!(self.r(reg::STATUS) & status::FEATURES_OK, 0, "features accepted");
        self.size = size;
        for q in 0..2 {
            let (desc, avail, used) = rings(q);
            // Fresh rings, as a new driver would allocate.
            self.mem.write(desc, &vec![0; 0xc000]).unwrap();
            self.w(reg::QUEUE_SEL, q as u32);
            assert_eq!(self.r(reg::QUEUE_READY), 0);
            assert!(self.r(reg::QUEUE_NUM_MAX) >= u32::from(size));
            self.w(reg::QUEUE_NUM, u32::from(size));
            for (lo, hi, addr) in [
                (reg::QUEUE_DESC_LOW, reg::QUEUE_DESC_HIGH, desc),
                (reg::QUEUE_DRIVER_LOW, reg::QUEUE_DRIVER_HIGH, avail),
                (reg::QUEUE_DEVICE_LOW, reg::QUEUE_DEVICE_HIGH, used),
            ] {
                self.w(lo, addr as u32);
                self.w(hi, (addr >> 32) as u32);
            }
            self.w(reg::QUEUE_READY, 1);
        }
        self.next_desc = [0; 2];
        self.avail_idx = [0; 2];
        self.add_status(status::DRIVER_OK);
        assert_eq!(self.r(reg::STATUS), 0xf);
    }

    /// Writes a raw descriptor.
    fn desc(&self, q: usize, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..16].copy_from_slice(&next.to_le_bytes());
        self.mem.write(rings(q).0 + 16 * u64::from(index), &d).unwrap();
    }

    /// Makes chain `head` available (without notifying).
    fn publish(&mut self, q: usize, head: u16) {
        let avail = rings(q).1;
        let slot = u64::from(self.avail_idx[q] % self.size);
        self.mem.write(avail + 4 + 2 * slot, &head.to_le_bytes()).unwrap();
        self.avail_idx[q] = self.avail_idx[q].wrapping_add(1);
        self.mem.write(avail + 2, &self.avail_idx[q].to_le_bytes()).unwrap();
    }

    /// Posts a chain of `(addr, len, device-writable)` buffers; returns its head.
    fn post(&mut self, q: usize, bufs: &[(u64, u32, bool)]) -> u16 {
        let head = self.next_desc[q];
        for (i, &(addr, len, writable)) in bufs.iter().enumerate() {
            let index = self.next_desc[q];
            let next = (index + 1) % self.size;
            let mut flags = if writable { VIRTQ_DESC_F_WRITE } else { 0 };
            if i + 1 < bufs.len() {
                flags |= VIRTQ_DESC_F_NEXT;
            }
            self.desc(q, index, addr, len, flags, next);
            self.next_desc[q] = next;
        }
        self.publish(q, head);
        head
    }

    /// Puts `data` in guest RAM at `addr` and posts it on the transmitq.
    fn transmit(&mut self, parts: &[(u64, &[u8])]) -> u16 {
        let bufs: Vec<_> = parts
            .iter()
            .map(|&(addr, data)| {
                self.mem.write(addr, data).unwrap();
                (addr, data.len() as u32, false)
            })
            .collect();
        self.post(TRANSMITQ, &bufs)
    }

    fn notify(&self, q: usize) {
        self.w(reg::QUEUE_NOTIFY, q as u32);
    }

    /// The used ring: its index and every element written so far (at most `size`).
    fn used(&self, q: usize) -> (u16, Vec<(u32, u32)>) {
        let used = rings(q).2;
        let mut b = [0u8; 2];
        self.mem.read(used + 2, &mut b).unwrap();
        let idx = u16::from_le_bytes(b);
        let elems = (0..idx.min(self.size))
            .map(|i| {
                let mut e = [0u8; 8];
                self.mem.read(used + 4 + 8 * u64::from(i), &mut e).unwrap();
                (u32::from_le_bytes(e[..4].try_into().unwrap()), u32::from_le_bytes(e[4..].try_into().unwrap()))
            })
            .collect();
        (idx, elems)
    }

    fn read_ram(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        self.mem.read(addr, &mut b).unwrap();
        b
    }

    /// Interrupts raised since the last call.
    fn irqs(&self) -> u64 {
        self.dev.lock().unwrap().irq_fd().read().unwrap_or(0)
    }

    fn send(&self, data: &[u8]) -> usize {
        self.dev.lock().unwrap().send(data)
    }

    fn needs_reset(&self) -> bool {
        self.r(reg::STATUS) & status::DEVICE_NEEDS_RESET != 0
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn identity_registers_and_config_space() {
    let d = Driver::new();
    assert_eq!(d.r(reg::MAGIC_VALUE), 0x7472_6976);
    assert_eq!(d.r(reg::VERSION), 2);
    assert_eq!(d.r(reg::DEVICE_ID), 3);
    assert_eq!(d.r(reg::VENDOR_ID), u32::from_le_bytes(*b"SBOX"));
    for (q, max) in [(0, 256), (1, 256), (2, 0)] {
        d.w(reg::QUEUE_SEL, q);
        assert_eq!(d.r(reg::QUEUE_NUM_MAX), max, "queue {q}");
    }
    let mut cfg = [0xaau8; 12];
    assert!(d.bus.read(BASE + reg::CONFIG, &mut cfg));
    assert_eq!(cfg, [0; 12], "cols, rows, max_nr_ports, emerg_wr");
    let mut byte = [0xaau8];
    d.bus.read(BASE + reg::CONFIG + 2, &mut byte);
    assert_eq!(byte, [0], "config space takes any width");
    let mut short = [0u8; 2];
    d.bus.read(BASE + reg::MAGIC_VALUE, &mut short);
    assert_eq!(short, [0xff, 0xff], "registers are 32-bit only");
}

#[test]
fn features_without_version_1_are_refused() {
    let d = Driver::new();
    d.add_status(status::ACKNOWLEDGE | status::DRIVER);
    d.w(reg::DRIVER_FEATURES_SEL, 0);
    d.w(reg::DRIVER_FEATURES, 0);
    d.add_status(status::FEATURES_OK);
    assert_eq!(d.r(reg::STATUS) & status::FEATURES_OK, 0);
    // Neither are features the device did not offer.
    d.w(reg::STATUS, 0);
    d.add_status(status::ACKNOWLEDGE | status::DRIVER);
    d.w(reg::DRIVER_FEATURES_SEL, 1);
    d.w(reg::DRIVER_FEATURES, 1);
    d.w(reg::DRIVER_FEATURES_SEL, 0);
    d.w(reg::DRIVER_FEATURES, 1 << 1); // VIRTIO_CONSOLE_F_MULTIPORT
    d.add_status(status::FEATURES_OK);
    assert_eq!(d.r(reg::STATUS) & status::FEATURES_OK, 0);
}

#[test]
fn guest_transmit_reaches_the_output_in_order() {
    let mut d = Driver::new();
    d.init(8);
    assert_eq!(d.irqs(), 0);
    let a = d.transmit(&[(TX_DATA, b"hello ")]);
    let b = d.transmit(&[(TX_DATA + 0x1000, b"wor"), (TX_DATA + 0x3000, b"ld\n")]);
    let c = d.transmit(&[(TX_DATA + 0x5000, b"bye")]);
    assert_eq!((a, b, c), (0, 1, 3));
    d.notify(TRANSMITQ);
    assert_eq!(d.out.contents(), b"hello world\nbye");
    assert_eq!(d.used(TRANSMITQ), (3, vec![(0, 0), (1, 0), (3, 0)]));
    assert_eq!(d.r(reg::INTERRUPT_STATUS), INT_VRING);
    assert_eq!(d.irqs(), 1);
    d.w(reg::INTERRUPT_ACK, INT_VRING);
    assert_eq!(d.r(reg::INTERRUPT_STATUS), 0);
    // A notify with nothing new changes nothing.
    d.notify(TRANSMITQ);
    assert_eq!((d.used(TRANSMITQ).0, d.irqs(), d.out.total()), (3, 0, 15));
    // Around the ring (size 8) a few times.
    for i in 0..20u8 {
        d.transmit(&[(TX_DATA + 0x8000, &[b'a' + i])]);
        d.notify(TRANSMITQ);
    }
    assert!(d.out.contents().ends_with(b"byeabcdefghijklmnopqrst"));
    assert_eq!(d.used(TRANSMITQ).0, 23);
    assert!(!d.needs_reset());
}

#[test]
fn no_interrupt_flag_suppresses_the_interrupt_not_the_work() {
    let mut d = Driver::new();
    d.init(8);
    d.mem.write(rings(TRANSMITQ).1, &VIRTQ_AVAIL_F_NO_INTERRUPT.to_le_bytes()).unwrap();
    d.transmit(&[(TX_DATA, b"quiet")]);
    d.notify(TRANSMITQ);
    assert_eq!(d.out.contents(), b"quiet");
    assert_eq!(d.used(TRANSMITQ).0, 1);
    assert_eq!((d.irqs(), d.r(reg::INTERRUPT_STATUS)), (0, 0));
}

#[test]
fn host_send_fills_posted_buffers_in_order() {
    let mut d = Driver::new();
    d.init(16);
    for i in 0..3 {
        d.post(RECEIVEQ, &[(RX_DATA + i * 0x1000, 4096, true)]);
    }
    d.notify(RECEIVEQ);
    assert_eq!(d.used(RECEIVEQ).0, 0, "nothing to deliver yet");
    let data = pattern(10_000);
    assert_eq!(d.send(&data), data.len());
    assert_eq!(d.used(RECEIVEQ), (3, vec![(0, 4096), (1, 4096), (2, 10_000 - 8192)]));
    assert_eq!(d.read_ram(RX_DATA, 10_000), data);
    assert_eq!(d.r(reg::INTERRUPT_STATUS), INT_VRING);
    assert_eq!(d.irqs(), 1);
    assert_eq!(d.dev.lock().unwrap().device().pending(), 0);
    // A chain of two writable buffers takes bytes into both.
    d.post(RECEIVEQ, &[(RX_DATA + 0x8000, 3, true), (RX_DATA + 0x9000, 100, true)]);
    assert_eq!(d.send(b"abcdefgh"), 8);
    assert_eq!(d.used(RECEIVEQ).1[3], (3, 8));
    assert_eq!(
        (d.read_ram(RX_DATA + 0x8000, 3), d.read_ram(RX_DATA + 0x9000, 5)),
        (b"abc".to_vec(), b"defgh".to_vec())
    );
}

#[test]
fn host_send_waits_for_buffers_and_is_bounded() {
    let mut d = Driver::new();
    // Before the driver is up, bytes are taken but nothing is touched.
    assert_eq!(d.send(b"early "), 6);
    d.init(8);
    assert_eq!(d.send(b"bird"), 4);
    assert_eq!(d.used(RECEIVEQ).0, 0, "no buffers posted");
    assert_eq!(d.irqs(), 0);
    // The pending buffer is bounded: the rest is refused until the guest reads.
    let big = pattern(PENDING_LIMIT);
    assert_eq!(d.send(&big), PENDING_LIMIT - 10);
    assert_eq!(d.send(b"more"), 0);
    // Posting buffers and notifying delivers in order.
    d.post(RECEIVEQ, &[(RX_DATA, 8, true)]);
    d.post(RECEIVEQ, &[(RX_DATA + 0x1000, 8, true)]);
    d.notify(RECEIVEQ);
    assert_eq!(d.used(RECEIVEQ), (2, vec![(0, 8), (1, 8)]));
    assert_eq!(d.read_ram(RX_DATA, 8), b"early bi");
    assert_eq!(d.read_ram(RX_DATA + 0x1000, 8), [b"rd".as_slice(), &big[..6]].concat());
    assert_eq!(d.irqs(), 1);
    assert_eq!(d.send(b"more"), 4, "room again");
}

#[test]
fn a_host_thread_streams_while_the_guest_reads() {
    let mut d = Driver::new();
    d.init(8);
    let data = pattern(300_000);
    let sender = {
        let (dev, data) = (d.dev.clone(), data.clone());
        std::thread::spawn(move || {
            let mut off = 0;
            while off < data.len() {
                // Small pieces, so the pending buffer runs dry now and then.
                let end = (off + 5000).min(data.len());
                let took = dev.lock().unwrap().send(&data[off..end]);
                off += took;
                if took == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        })
    };
    // The guest keeps 4 buffers of 1 KiB posted, in a loop like hvc's.
    let mut got = Vec::new();
    let mut seen = 0u16;
    for i in 0..4 {
        d.post(RECEIVEQ, &[(RX_DATA + i * 0x1000, 1024, true)]);
    }
    d.notify(RECEIVEQ);
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < data.len() {
        assert!(Instant::now() < deadline, "stalled after {} bytes", got.len());
        // flags | idx << 16, loaded with Acquire like a driver's used index read.
        let idx = (d.mem.read_u32(rings(RECEIVEQ).2).unwrap() >> 16) as u16;
        if idx == seen {
            std::thread::yield_now();
            continue;
        }
        let used = rings(RECEIVEQ).2;
        let mut e = [0u8; 8];
        d.mem.read(used + 4 + 8 * u64::from(seen % 8), &mut e).unwrap();
        let (id, len) =
            (u32::from_le_bytes(e[..4].try_into().unwrap()), u32::from_le_bytes(e[4..].try_into().unwrap()));
        let mut desc = [0u8; 16];
        d.mem.read(rings(RECEIVEQ).0 + 16 * u64::from(id), &mut desc).unwrap();
        let addr = u64::from_le_bytes(desc[..8].try_into().unwrap());
        got.extend(d.read_ram(addr, len as usize));
        seen = seen.wrapping_add(1);
        // Re-post the same buffer under the same descriptor.
        d.publish(RECEIVEQ, id as u16);
        d.notify(RECEIVEQ);
    }
    sender.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the stream arrives intact and in order");
}

#[test]
fn a_looping_chain_marks_the_device_broken_without_hanging() {
    let mut d = Driver::new();
    d.init(8);
    d.mem.write(TX_DATA, b"xy").unwrap();
    d.desc(TRANSMITQ, 0, TX_DATA, 1, VIRTQ_DESC_F_NEXT, 1);
    d.desc(TRANSMITQ, 1, TX_DATA + 1, 1, VIRTQ_DESC_F_NEXT, 0);
    d.publish(TRANSMITQ, 0);
    d.notify(TRANSMITQ);
    assert!(d.needs_reset());
    assert_eq!(d.r(reg::INTERRUPT_STATUS), INT_CONFIG);
    assert_eq!(d.irqs(), 1);
    assert_eq!((d.used(TRANSMITQ).0, d.out.total()), (0, 0));
    // Broken: further notifications and host input do nothing until a reset.
    d.transmit(&[(TX_DATA + 0x1000, b"ignored")]);
    d.notify(TRANSMITQ);
    assert_eq!(d.out.total(), 0);
    // The driver's status writes keep the bit.
    d.add_status(status::DRIVER_OK);
    assert!(d.needs_reset());
    d.init(8);
    assert!(!d.needs_reset());
    d.transmit(&[(TX_DATA, b"ok")]);
    d.notify(TRANSMITQ);
    assert_eq!(d.out.contents(), b"ok");
}

#[test]
fn buffers_outside_ram_and_bad_indices_mark_the_device_broken() {
    type Corrupt = fn(&mut Driver);
    let cases: [(&str, Corrupt); 5] = [
        ("address past RAM", |d| {
            d.post(TRANSMITQ, &[(RAM - 4, 8, false)]);
        }),
        ("address in the MMIO hole", |d| {
            d.post(TRANSMITQ, &[(0xd000_0000, 16, false)]);
        }),
        ("head index past the queue", |d| d.publish(TRANSMITQ, 8)),
        ("next index past the queue", |d| {
            d.desc(TRANSMITQ, 0, TX_DATA, 1, VIRTQ_DESC_F_NEXT, 200);
            d.publish(TRANSMITQ, 0);
        }),
        ("available index too far ahead", |d| {
            d.mem.write(rings(TRANSMITQ).1 + 2, &9u16.to_le_bytes()).unwrap();
        }),
    ];
    for (what, corrupt) in cases {
        let mut d = Driver::new();
        d.init(8);
        corrupt(&mut d);
        d.notify(TRANSMITQ);
        assert!(d.needs_reset(), "{what}");
        assert_eq!((d.used(TRANSMITQ).0, d.out.total()), (0, 0), "{what}");
    }
    // A receive buffer outside RAM, found by the host's send.
    let mut d = Driver::new();
    d.init(8);
    d.post(RECEIVEQ, &[(RAM + 0x1000, 64, true)]);
    assert_eq!(d.send(b"data"), 4);
    assert!(d.needs_reset());
    // A queue placed outside RAM is refused when used.
    let d = Driver::new();
    d.add_status(status::ACKNOWLEDGE | status::DRIVER);
    d.w(reg::DRIVER_FEATURES_SEL, 1);
    d.w(reg::DRIVER_FEATURES, 1);
    d.add_status(status::FEATURES_OK);
    d.w(reg::QUEUE_SEL, 1);
    d.w(reg::QUEUE_NUM, 8);
    d.w(reg::QUEUE_DESC_LOW, 0xe000_0000);
    d.w(reg::QUEUE_READY, 1);
    d.add_status(status::DRIVER_OK);
    d.notify(TRANSMITQ);
    assert!(d.needs_reset());
}

#[test]
fn status_zero_resets_the_queues() {
    let mut d = Driver::new();
    d.init(8);
    d.transmit(&[(TX_DATA, b"one")]);
    d.notify(TRANSMITQ);
    assert_eq!(d.r(reg::INTERRUPT_STATUS), INT_VRING);
    d.w(reg::STATUS, 0);
    assert_eq!((d.r(reg::STATUS), d.r(reg::INTERRUPT_STATUS)), (0, 0));
    for q in 0..2 {
        d.w(reg::QUEUE_SEL, q);
        assert_eq!((d.r(reg::QUEUE_READY), d.r(reg::QUEUE_NUM)), (0, 256), "queue {q}");
    }
    {
        let dev = d.dev.lock().unwrap();
        assert!(!dev.live());
    }
    // Notifications while reset do nothing.
    d.notify(TRANSMITQ);
    assert_eq!(d.out.total(), 3);
    // A new driver with fresh rings starts again at index 0.
    d.init(4);
    d.transmit(&[(TX_DATA, b"two")]);
    d.notify(TRANSMITQ);
    assert_eq!(d.out.contents(), b"onetwo");
    assert_eq!(d.used(TRANSMITQ), (1, vec![(0, 0)]));
}

#[test]
fn queue_configuration_is_frozen_while_ready() {
    let mut d = Driver::new();
    d.init(8);
    d.w(reg::QUEUE_SEL, TRANSMITQ as u32);
    d.w(reg::QUEUE_DESC_LOW, 0x5000);
    d.w(reg::QUEUE_NUM, 2);
    assert_eq!(d.r(reg::QUEUE_NUM), 8);
    d.transmit(&[(TX_DATA, b"still")]);
    d.notify(TRANSMITQ);
    assert_eq!(d.out.contents(), b"still");
}
