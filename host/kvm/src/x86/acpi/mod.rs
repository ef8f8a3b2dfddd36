//! ACPI tables for a hardware-reduced x86 guest: RSDP → XSDT → FADT (→ DSDT
//! with `_S5_`, the two 16550s and the virtio-mmio devices), MADT (local
//! APICs, IOAPIC, interrupt source overrides), SRAT and SLIT for NUMA.
//!
//! Hardware-reduced ACPI has no legacy PIC and no fixed ISA IRQ mapping, so
//! the serial ports are declared as DSDT devices with their IRQs (the kernel
//! then routes them through the IOAPIC) and the MADT also carries identity
//! overrides for IRQ 3 and 4. Each virtio-mmio device is a `LNRO0005`
//! device (what Linux's virtio_mmio driver matches) with its MMIO window and
//! an edge, active-high interrupt, and an identity override saying the
//! same. Power-off is a write of SLP_TYP=5|SLP_EN to the FADT's sleep
//! control register, which [`crate::x86::power`] turns into a VM event.

pub mod aml;

use crate::error::Result;
use crate::memory::GuestMemory;

/// Local APIC and IOAPIC MMIO addresses.
pub const LAPIC_ADDR: u32 = 0xfee0_0000;
pub const IOAPIC_ADDR: u32 = 0xfec0_0000;
/// Port of the sleep control register (one byte).
pub const SLEEP_CONTROL_PORT: u16 = 0x3c0;
/// Port of the sleep status register (one byte).
pub const SLEEP_STATUS_PORT: u16 = 0x3c1;
/// `_S5_` sleep type written with SLP_EN to power off.
pub const S5_SLP_TYP: u8 = 5;

const OEM_ID: &[u8; 6] = b"SCHBOX";
const OEM_TABLE_ID: &[u8; 8] = b"SCHEDBOX";
const CREATOR_ID: &[u8; 4] = b"SBOX";

/// One vCPU as ACPI sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcpiCpu {
    pub apic_id: u32,
    /// NUMA node (proximity domain).
    pub node: u32,
}

/// One range of RAM and its NUMA node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcpiMemory {
    pub base: u64,
    pub len: u64,
    pub node: u32,
}

/// What the tables describe.
#[derive(Clone, Debug)]
pub struct AcpiConfig {
    pub cpus: Vec<AcpiCpu>,
    pub memory: Vec<AcpiMemory>,
    /// `(port, irq)` of each 16550 to declare.
    pub serial_ports: Vec<(u16, u8)>,
    /// `(base, len, irq)` of each virtio-mmio device to declare (below 4 GiB;
    /// the interrupt is edge-triggered, active high).
    pub virtio_mmio: Vec<(u32, u32, u8)>,
}

impl AcpiConfig {
    fn nodes(&self) -> u32 {
        self.cpus.iter().map(|c| c.node).chain(self.memory.iter().map(|m| m.node)).max().map_or(1, |n| n + 1)
    }
}

/// A table under construction: header, then body appended.
struct Table(Vec<u8>);

impl Table {
    fn new(signature: &[u8; 4], revision: u8) -> Self {
        let mut t = Vec::with_capacity(256);
        t.extend_from_slice(signature);
        t.extend_from_slice(&[0; 4]); // length, fixed in finish()
        t.push(revision);
        t.push(0); // checksum
        t.extend_from_slice(OEM_ID);
        t.extend_from_slice(OEM_TABLE_ID);
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(CREATOR_ID);
        t.extend_from_slice(&1u32.to_le_bytes());
        Table(t)
    }
    fn put(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn finish(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[4..8].copy_from_slice(&len.to_le_bytes());
        self.0[9] = checksum(&self.0);
        self.0
    }
}

/// The byte that makes `bytes` sum to zero (with the checksum byte at zero).
pub fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// A Generic Address Structure for a byte-wide I/O port.
fn gas_io_byte(port: u16) -> [u8; 12] {
    let mut g = [0u8; 12];
    g[0] = 1; // system I/O
    g[1] = 8; // bit width
    g[3] = 1; // byte access
    g[4..12].copy_from_slice(&u64::from(port).to_le_bytes());
    g
}

/// DSDT: `_S5_`, one PNP0501 device per serial port (`COMn`) and one
/// LNRO0005 device per virtio-mmio device (`VRnn`).
pub fn dsdt(config: &AcpiConfig) -> Vec<u8> {
    use aml::*;
    let s5 = name("_S5_", &package(&[integer(S5_SLP_TYP.into()), integer(S5_SLP_TYP.into()), integer(0), integer(0)]));
    let ports: Vec<Vec<u8>> = config
        .serial_ports
        .iter()
        .enumerate()
        .map(|(i, &(port, irq))| {
            device(
                &format!("COM{}", i + 1),
                &[
                    name("_HID", &integer(eisa_id("PNP0501").into())),
                    name("_UID", &integer(i as u64)),
                    name("_CRS", &buffer(&io_irq_resources(port, 8, irq))),
                ],
            )
        })
        .collect();
    let virtio = config.virtio_mmio.iter().enumerate().map(|(i, &(base, len, irq))| {
        device(
            &format!("VR{i:02}"),
            &[
                name("_HID", &string("LNRO0005")),
                name("_UID", &integer(i as u64)),
                name("_CRS", &buffer(&mmio_irq_resources(base, len, irq.into()))),
            ],
        )
    });
    let devices: Vec<Vec<u8>> = ports.into_iter().chain(virtio).collect();
    let mut t = Table::new(b"DSDT", 2);
    t.put(&s5).put(&scope("\\_SB_", &devices));
    t.finish()
}

/// FADT (revision 6): hardware-reduced, sleep control/status registers, DSDT pointer.
pub fn fadt(dsdt_addr: u64) -> Vec<u8> {
    const HW_REDUCED_ACPI: u32 = 1 << 20;
    const VGA_NOT_PRESENT: u16 = 1 << 2;
    const CMOS_RTC_NOT_PRESENT: u16 = 1 << 5;
    let mut body = [0u8; 276 - 36];
    let at = |off: usize| off - 36;
    body[at(40)..at(44)].copy_from_slice(&(dsdt_addr as u32).to_le_bytes());
    body[at(109)..at(111)].copy_from_slice(&(VGA_NOT_PRESENT | CMOS_RTC_NOT_PRESENT).to_le_bytes());
    body[at(112)..at(116)].copy_from_slice(&HW_REDUCED_ACPI.to_le_bytes());
    body[at(131)] = 5; // FADT minor version (6.5)
    body[at(140)..at(148)].copy_from_slice(&dsdt_addr.to_le_bytes());
    body[at(244)..at(256)].copy_from_slice(&gas_io_byte(SLEEP_CONTROL_PORT));
    body[at(256)..at(268)].copy_from_slice(&gas_io_byte(SLEEP_STATUS_PORT));
    body[at(268)..at(276)].copy_from_slice(b"SCHEDBOX");
    let mut t = Table::new(b"FACP", 6);
    t.put(&body);
    t.finish()
}

/// MADT: one enabled local APIC per CPU, the IOAPIC, IRQ 0 → GSI 2 and
/// identity overrides (edge, active high) for the serial and virtio IRQs, LINT1 as NMI.
pub fn madt(config: &AcpiConfig) -> Vec<u8> {
    const PCAT_COMPAT: u32 = 1;
    let mut t = Table::new(b"APIC", 5);
    t.put(&LAPIC_ADDR.to_le_bytes()).put(&PCAT_COMPAT.to_le_bytes());
    for (uid, cpu) in config.cpus.iter().enumerate() {
        if let Ok(id) = u8::try_from(cpu.apic_id) {
            t.put(&[0, 8, uid as u8, id]).put(&1u32.to_le_bytes());
        } else {
            // x2APIC entry for IDs past 255.
            t.put(&[9, 16, 0, 0])
                .put(&cpu.apic_id.to_le_bytes())
                .put(&1u32.to_le_bytes())
                .put(&(uid as u32).to_le_bytes());
        }
    }
    t.put(&[1, 12, 0, 0]).put(&IOAPIC_ADDR.to_le_bytes()).put(&0u32.to_le_bytes());
    // Flags 0: conforms to the bus (ISA: edge, active high).
    let mut overrides = vec![(0u8, 2u32, 0u16)];
    let irqs = config.serial_ports.iter().map(|&(_, irq)| irq).chain(config.virtio_mmio.iter().map(|&(.., irq)| irq));
    overrides.extend(irqs.map(|irq| (irq, u32::from(irq), 0x5u16)));
    for (irq, gsi, flags) in overrides {
        t.put(&[2, 10, 0, irq]).put(&gsi.to_le_bytes()).put(&flags.to_le_bytes());
    }
    t.put(&[4, 6, 0xff]).put(&0u16.to_le_bytes()).put(&[1]);
    t.finish()
}

/// SRAT: each CPU's and each memory range's proximity domain.
pub fn srat(config: &AcpiConfig) -> Vec<u8> {
    let mut t = Table::new(b"SRAT", 3);
    t.put(&1u32.to_le_bytes()).put(&[0; 8]);
    for cpu in &config.cpus {
        let d = cpu.node.to_le_bytes();
        if let Ok(id) = u8::try_from(cpu.apic_id) {
            t.put(&[0, 16, d[0], id]).put(&1u32.to_le_bytes()).put(&[0, d[1], d[2], d[3]]).put(&0u32.to_le_bytes());
        } else {
            t.put(&[2, 24, 0, 0]).put(&d).put(&cpu.apic_id.to_le_bytes()).put(&1u32.to_le_bytes()).put(&[0; 8]);
        }
    }
    for m in &config.memory {
        t.put(&[1, 40]).put(&m.node.to_le_bytes()).put(&[0; 2]);
        t.put(&m.base.to_le_bytes()).put(&m.len.to_le_bytes()).put(&[0; 4]);
        t.put(&1u32.to_le_bytes()).put(&[0; 8]);
    }
    t.finish()
}

/// SLIT: distance 10 to the own node, 20 to every other.
pub fn slit(nodes: u32) -> Vec<u8> {
    let mut t = Table::new(b"SLIT", 1);
    t.put(&u64::from(nodes).to_le_bytes());
    for i in 0..nodes {
        for j in 0..nodes {
            t.put(&[if i == j { 10 } else { 20 }]);
        }
    }
    t.finish()
}

/// XSDT listing `tables`.
pub fn xsdt(tables: &[u64]) -> Vec<u8> {
    let mut t = Table::new(b"XSDT", 1);
    for a in tables {
        t.put(&a.to_le_bytes());
    }
    t.finish()
}

/// RSDP (revision 2) pointing at the XSDT.
pub fn rsdp(xsdt_addr: u64) -> Vec<u8> {
    let mut r = Vec::with_capacity(36);
    r.extend_from_slice(b"RSD PTR ");
    r.push(0);
    r.extend_from_slice(OEM_ID);
    r.push(2);
    r.extend_from_slice(&0u32.to_le_bytes());
    r.extend_from_slice(&36u32.to_le_bytes());
    r.extend_from_slice(&xsdt_addr.to_le_bytes());
    r.push(0);
    r.extend_from_slice(&[0; 3]);
    r[8] = checksum(&r[..20]);
    r[32] = checksum(&r);
    r
}

/// Writes all tables from `base` (RSDP first, 16-byte aligned); returns the
/// RSDP's address and the end of the tables.
pub fn write_tables(mem: &GuestMemory, base: u64, config: &AcpiConfig) -> Result<(u64, u64)> {
    let align = |a: u64| (a + 15) & !15;
    let rsdp_addr = align(base);
    let mut at = rsdp_addr + 36;
    let mut place = |bytes: Vec<u8>| -> Result<u64> {
        let a = align(at);
        mem.write(a, &bytes)?;
        at = a + bytes.len() as u64;
        Ok(a)
    };
    let dsdt_addr = place(dsdt(config))?;
    let mut tables = vec![place(fadt(dsdt_addr))?, place(madt(config))?];
    let nodes = config.nodes();
    if nodes > 1 {
        tables.push(place(srat(config))?);
        tables.push(place(slit(nodes))?);
    }
    let xsdt_addr = place(xsdt(&tables))?;
    mem.write(rsdp_addr, &rsdp(xsdt_addr))?;
    Ok((rsdp_addr, at))
}

#[cfg(test)]
mod tests;
