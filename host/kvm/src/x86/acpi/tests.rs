use super::*;

fn config(nodes: u32, cpus_per_node: u32) -> AcpiConfig {
    AcpiConfig {
        cpus: (0..nodes * cpus_per_node).map(|i| AcpiCpu { apic_id: i, node: i / cpus_per_node }).collect(),
        memory: (0..nodes).map(|n| AcpiMemory { base: u64::from(n) << 30, len: 1 << 30, node: n }).collect(),
        serial_ports: vec![(0x3f8, 4), (0x2f8, 3)],
        virtio_mmio: vec![(0xd000_0000, 0x200, 5)],
    }
}

fn sums_to_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)) == 0
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// (type, bytes) of each MADT/SRAT sub-table after `skip` bytes of fixed fields.
fn entries(table: &[u8], skip: usize) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 36 + skip;
    while at < table.len() {
        let len = usize::from(table[at + 1]);
        assert!(len >= 2, "zero-length entry at {at}");
        out.push((table[at], table[at..at + len].to_vec()));
        at += len;
    }
    assert_eq!(at, table.len(), "entries overrun the table");
    out
}

#[test]
fn every_table_checksums_and_states_its_length() {
    let c = config(2, 2);
    for t in [dsdt(&c), fadt(0x1234), madt(&c), srat(&c), slit(2), xsdt(&[1, 2])] {
        assert!(sums_to_zero(&t), "{} checksum", String::from_utf8_lossy(&t[..4]));
        assert_eq!(u32_at(&t, 4) as usize, t.len());
    }
    let r = rsdp(0xabc0);
    assert!(sums_to_zero(&r[..20]) && sums_to_zero(&r));
    assert_eq!(u64_at(&r, 24), 0xabc0);
}

#[test]
fn madt_lists_each_cpu_the_ioapic_and_the_legacy_irq_overrides() {
    let m = madt(&config(1, 4));
    let e = entries(&m, 8);
    let lapics: Vec<u8> = e.iter().filter(|(t, _)| *t == 0).map(|(_, b)| b[3]).collect();
    assert_eq!(lapics, vec![0, 1, 2, 3]);
    assert!(e.iter().filter(|(t, _)| *t == 0).all(|(_, b)| u32_at(b, 4) & 1 == 1), "enabled");
    let ioapic: Vec<_> = e.iter().filter(|(t, _)| *t == 1).collect();
    assert_eq!(ioapic.len(), 1);
    assert_eq!(u32_at(&ioapic[0].1, 4), IOAPIC_ADDR);
    let overrides: Vec<(u8, u32)> = e.iter().filter(|(t, _)| *t == 2).map(|(_, b)| (b[3], u32_at(b, 4))).collect();
    assert_eq!(overrides, vec![(0, 2), (4, 4), (3, 3), (5, 5)]);
    let flags: Vec<u16> = e.iter().filter(|(t, _)| *t == 2).map(|(_, b)| u16::from_le_bytes([b[8], b[9]])).collect();
    assert_eq!(flags[1..], [0x5, 0x5, 0x5], "serial and virtio IRQs: edge, active high like their _CRS");
}

#[test]
fn fadt_is_hardware_reduced_with_a_sleep_control_port_and_the_dsdt() {
    let f = fadt(0x000e_1000);
    assert_eq!(f.len(), 276);
    assert_eq!(u32_at(&f, 112) & (1 << 20), 1 << 20, "HW_REDUCED_ACPI");
    assert_eq!((u32_at(&f, 40), u64_at(&f, 140)), (0xe1000, 0xe1000));
    assert_eq!(f[244], 1, "sleep control in system I/O space");
    assert_eq!(u64_at(&f, 248), u64::from(SLEEP_CONTROL_PORT));
}

#[test]
fn dsdt_declares_s5_and_both_serial_ports() {
    let d = dsdt(&config(1, 1));
    let find = |needle: &[u8]| d.windows(needle.len()).filter(|w| *w == needle).count();
    assert_eq!(find(b"_S5_\x12\x08\x04\x0a\x05\x0a\x05"), 1);
    assert_eq!(find(&0x0105_d041u32.to_le_bytes()), 2, "two PNP0501 devices");
    // IO(Decode16, 0x3f8, 0x3f8, 1, 8) then IRQNoFlags(){4}.
    assert_eq!(find(&[0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00]), 1);
    assert_eq!(find(&[0x47, 0x01, 0xf8, 0x02, 0xf8, 0x02, 0x01, 0x08, 0x22, 0x08, 0x00]), 1);
}

#[test]
fn dsdt_declares_the_virtio_mmio_device_for_linux() {
    let d = dsdt(&config(1, 1));
    let at = d.windows(4).position(|w| w == b"VR00").expect("a VR00 device");
    // Device (ExtOp 0x82), PkgLength 0x3a = 1 + "VR00" + _HID (15) + _UID (6) + _CRS (32).
    assert_eq!(d[at - 3..at], [0x5b, 0x82, 0x3a]);
    #[rustfmt::skip]
    let body: &[u8] = &[
        b'V', b'R', b'0', b'0',
        0x08, b'_', b'H', b'I', b'D', 0x0d, b'L', b'N', b'R', b'O', b'0', b'0', b'0', b'5', 0x00,
        0x08, b'_', b'U', b'I', b'D', 0x00,
        0x08, b'_', b'C', b'R', b'S', 0x11, 0x1a, 0x0a, 0x17,
        0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x02, 0x00, 0x00,
        0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00,
        0x79, 0x00,
    ];
    assert_eq!(&d[at..at + body.len()], body);
    assert_eq!(at + body.len(), d.len(), "the last device of the table");
    // The \_SB_ scope's PkgLength covers both serial ports and the virtio device.
    let sb = d.windows(5).position(|w| w == b"\\_SB_").expect("\\_SB_ scope");
    assert_eq!(d[sb - 3], 0x10, "ScopeOp");
    let (lead, next) = (d[sb - 2], d[sb - 1]);
    let len = usize::from(lead & 0x0f) | usize::from(next) << 4;
    assert_eq!((lead >> 6, sb - 2 + len), (1, d.len()), "a two-byte PkgLength up to the end");
    assert!(sums_to_zero(&d));
}

#[test]
fn without_virtio_devices_the_dsdt_has_no_lnro0005() {
    let c = AcpiConfig { virtio_mmio: Vec::new(), ..config(1, 1) };
    assert!(!dsdt(&c).windows(8).any(|w| w == b"LNRO0005"));
    let overrides = entries(&madt(&c), 8).iter().filter(|(t, _)| *t == 2).count();
    assert_eq!(overrides, 3);
}

#[test]
fn srat_and_slit_describe_two_nodes() {
    let c = config(2, 2);
    let s = srat(&c);
    let e = entries(&s, 12);
    let cpus: Vec<(u8, u8)> = e.iter().filter(|(t, _)| *t == 0).map(|(_, b)| (b[3], b[2])).collect();
    assert_eq!(cpus, vec![(0, 0), (1, 0), (2, 1), (3, 1)]);
    let mem: Vec<(u32, u64, u64)> =
        e.iter().filter(|(t, _)| *t == 1).map(|(_, b)| (u32_at(b, 2), u64_at(b, 8), u64_at(b, 16))).collect();
    assert_eq!(mem, vec![(0, 0, 1 << 30), (1, 1 << 30, 1 << 30)]);
    let l = slit(2);
    assert_eq!(u64_at(&l, 36), 2);
    assert_eq!(&l[44..], &[10, 20, 20, 10]);
}

#[test]
fn written_tables_are_reachable_from_the_rsdp() {
    let mem = GuestMemory::new(1 << 20).unwrap();
    let (rsdp_addr, end) = write_tables(&mem, 0xe0000, &config(2, 1)).unwrap();
    assert_eq!(rsdp_addr, 0xe0000);
    let read = |a: u64, n: usize| {
        let mut b = vec![0u8; n];
        mem.read(a, &mut b).unwrap();
        b
    };
    let xsdt_addr = u64_at(&read(rsdp_addr, 36), 24);
    let xsdt_len = u32_at(&read(xsdt_addr, 8), 4) as usize;
    let x = read(xsdt_addr, xsdt_len);
    let sigs: Vec<String> =
        (36..xsdt_len).step_by(8).map(|o| String::from_utf8_lossy(&read(u64_at(&x, o), 4)).into_owned()).collect();
    assert_eq!(sigs, ["FACP", "APIC", "SRAT", "SLIT"]);
    assert!(end <= 0x100000 && end > xsdt_addr);
}
