//! The few AML constructs the DSDT needs: names, integers, strings, packages,
//! buffers, devices and scopes (ACPI 6.5 §20), and the resource templates
//! of its devices (§6.4).

const NAME_OP: u8 = 0x08;
const BYTE_PREFIX: u8 = 0x0a;
const WORD_PREFIX: u8 = 0x0b;
const DWORD_PREFIX: u8 = 0x0c;
const STRING_PREFIX: u8 = 0x0d;
const ZERO_OP: u8 = 0x00;
const ONE_OP: u8 = 0x01;
const PACKAGE_OP: u8 = 0x12;
const BUFFER_OP: u8 = 0x11;
const SCOPE_OP: u8 = 0x10;
const EXT_OP_PREFIX: u8 = 0x5b;
const DEVICE_OP: u8 = 0x82;

/// A 4-character name segment, or a root path like `\_SB_`.
fn name_string(name: &str) -> Vec<u8> {
    let (root, seg) = match name.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    assert!(seg.len() == 4 && seg.is_ascii(), "AML name segment {seg:?} must be 4 ASCII characters");
    let mut out = Vec::with_capacity(5);
    if root {
        out.push(b'\\');
    }
    out.extend_from_slice(seg.as_bytes());
    out
}

/// PkgLength encoding of `body` bytes plus the PkgLength itself (§20.2.4).
pub fn pkg_length(body: usize) -> Vec<u8> {
    for extra in 0..4usize {
        let total = body + 1 + extra;
        let fits = match extra {
            0 => total < 1 << 6,
            1 => total < 1 << 12,
            2 => total < 1 << 20,
            _ => total < 1 << 28,
        };
        if fits {
            if extra == 0 {
                return vec![total as u8];
            }
            let mut out = vec![((extra as u8) << 6) | (total & 0xf) as u8];
            out.extend((0..extra).map(|i| (total >> (4 + 8 * i)) as u8));
            return out;
        }
    }
    panic!("AML package of {body} bytes is too large")
}

/// An integer with the shortest encoding.
pub fn integer(v: u64) -> Vec<u8> {
    match v {
        0 => vec![ZERO_OP],
        1 => vec![ONE_OP],
        2..=0xff => vec![BYTE_PREFIX, v as u8],
        0x100..=0xffff => [&[WORD_PREFIX][..], &(v as u16).to_le_bytes()].concat(),
        _ => {
            assert!(v <= u64::from(u32::MAX), "AML QWORD constants are not needed here");
            [&[DWORD_PREFIX][..], &(v as u32).to_le_bytes()].concat()
        }
    }
}

/// A NUL-terminated ASCII `String` constant, e.g. a `_HID` like "LNRO0005".
pub fn string(s: &str) -> Vec<u8> {
    assert!(s.is_ascii() && !s.contains('\0'), "AML string {s:?} must be ASCII without NUL");
    [&[STRING_PREFIX][..], s.as_bytes(), &[0]].concat()
}

/// `Name(name, value)`.
pub fn name(name: &str, value: &[u8]) -> Vec<u8> {
    [&[NAME_OP][..], &name_string(name), value].concat()
}

/// `Package() { elements }`.
pub fn package(elements: &[Vec<u8>]) -> Vec<u8> {
    let mut body = vec![elements.len() as u8];
    body.extend(elements.iter().flatten());
    [&[PACKAGE_OP][..], &pkg_length(body.len()), &body].concat()
}

/// `Buffer() { bytes }`.
pub fn buffer(bytes: &[u8]) -> Vec<u8> {
    let body = [&integer(bytes.len() as u64)[..], bytes].concat();
    [&[BUFFER_OP][..], &pkg_length(body.len()), &body].concat()
}

/// `Device(name) { body }`.
pub fn device(name: &str, body: &[Vec<u8>]) -> Vec<u8> {
    let inner = [name_string(name), body.concat()].concat();
    [&[EXT_OP_PREFIX, DEVICE_OP][..], &pkg_length(inner.len()), &inner].concat()
}

/// `Scope(name) { body }`.
pub fn scope(name: &str, body: &[Vec<u8>]) -> Vec<u8> {
    let inner = [name_string(name), body.concat()].concat();
    [&[SCOPE_OP][..], &pkg_length(inner.len()), &inner].concat()
}

/// `EisaId("PNP0501")` as its 32-bit value.
pub fn eisa_id(id: &str) -> u32 {
    let b = id.as_bytes();
    assert!(b.len() == 7, "EISA id {id:?} must be 3 letters and 4 hex digits");
    let c = |i: usize| u32::from(b[i] - 0x40) & 0x1f;
    let vendor = (c(0) << 10) | (c(1) << 5) | c(2);
    let product = u32::from_str_radix(&id[3..], 16).expect("EISA product id is hex");
    let be = (vendor << 16) | product;
    be.swap_bytes()
}

/// A resource template with one 16-bit I/O range and one ISA IRQ (§6.4.2).
pub fn io_irq_resources(port: u16, len: u8, irq: u8) -> Vec<u8> {
    let mut r = vec![0x47, 0x01];
    r.extend_from_slice(&port.to_le_bytes());
    r.extend_from_slice(&port.to_le_bytes());
    r.extend_from_slice(&[0x01, len]);
    r.push(0x22);
    r.extend_from_slice(&(1u16 << irq).to_le_bytes());
    r.extend_from_slice(&[0x79, 0x00]);
    r
}

/// A resource template with `Memory32Fixed(ReadWrite, base, len)` and one
/// `Interrupt(ResourceConsumer, Edge, ActiveHigh, Exclusive) { gsi }` (§6.4.3).
pub fn mmio_irq_resources(base: u32, len: u32, gsi: u32) -> Vec<u8> {
    // Memory32Fixed: tag 0x86, 9 bytes: information (bit 0: read-write), base, length.
    let mut r = vec![0x86, 0x09, 0x00, 0x01];
    r.extend_from_slice(&base.to_le_bytes());
    r.extend_from_slice(&len.to_le_bytes());
    // Extended Interrupt: tag 0x89, 6 bytes: flags (bit 0 consumer, bit 1
    // edge, bit 2 active-low, bit 3 shared), count, then each u32 interrupt.
    const CONSUMER: u8 = 1 << 0;
    const EDGE: u8 = 1 << 1;
    r.extend_from_slice(&[0x89, 0x06, 0x00, CONSUMER | EDGE, 1]);
    r.extend_from_slice(&gsi.to_le_bytes());
    r.extend_from_slice(&[0x79, 0x00]);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkg_length_uses_one_to_four_bytes() {
        assert_eq!(pkg_length(7), vec![8]);
        assert_eq!(pkg_length(62), vec![63]);
        // 63 + 2 = 65 = 0x41: low nibble 1 in the lead byte, 0x4 in the next.
        assert_eq!(pkg_length(63), vec![0x41, 0x04]);
        assert_eq!(pkg_length(0x1000), vec![0x83, 0x00, 0x01]);
    }

    #[test]
    fn s5_package_matches_the_reference_encoding() {
        let s5 = name("_S5_", &package(&[integer(5), integer(5), integer(0), integer(0)]));
        assert_eq!(s5, [0x08, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00]);
    }

    #[test]
    fn strings_are_nul_terminated_with_a_prefix() {
        assert_eq!(string("LNRO0005"), b"\x0dLNRO0005\x00");
    }

    #[test]
    fn mmio_irq_resources_match_the_reference_encoding() {
        assert_eq!(
            mmio_irq_resources(0xd000_0000, 0x200, 5),
            [
                0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x02, 0x00, 0x00, // Memory32Fixed
                0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00, // Interrupt {5}, consumer, edge, high
                0x79, 0x00, // end tag
            ]
        );
    }

    #[test]
    fn eisa_id_of_a_16550() {
        assert_eq!(eisa_id("PNP0501"), 0x0105_d041);
        assert_eq!(eisa_id("PNP0501").to_le_bytes(), [0x41, 0xd0, 0x05, 0x01]);
    }
}
