//! vCPU registers from QEMU's `info registers -a` (through QMP's
//! human-monitor-command), until the gdbstub path of the monitor lands.

use schedbox_ops::results::VcpuRegisters;

fn hex_after(text: &str, key: &str) -> Option<u64> {
    let at = text.find(key)? + key.len();
    let digits: String = text[at..].chars().take_while(char::is_ascii_hexdigit).collect();
    u64::from_str_radix(&digits, 16).ok()
}

/// Parses every `CPU#n` block's RIP, RSP and CR3.
pub fn parse_info_registers(text: &str) -> Vec<VcpuRegisters> {
    let mut out = Vec::new();
    for block in text.split("CPU#").skip(1) {
        let cpu: u32 = block.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(u32::MAX);
        if let (Some(rip), Some(rsp), Some(cr3)) =
            (hex_after(block, "RIP="), hex_after(block, "RSP="), hex_after(block, "CR3="))
        {
            out.push(VcpuRegisters { cpu, rip, rsp, cr3 });
        }
    }
    out
}

/// Parses every `CPU#n` block's RIP, CR3 and CR4 (for page-table walks).
pub fn parse_paging_registers(text: &str) -> Vec<crate::machine::PagingRegisters> {
    let mut out = Vec::new();
    for block in text.split("CPU#").skip(1) {
        let cpu: u32 = block.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(u32::MAX);
        if let (Some(rip), Some(cr3), Some(cr4)) =
            (hex_after(block, "RIP="), hex_after(block, "CR3="), hex_after(block, "CR4="))
        {
            out.push(crate::machine::PagingRegisters { cpu, rip, cr3, cr4 });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_two_cpus() {
        let text = "\r\nCPU#0\r\nRAX=0000000000000000 RBX=ffffffff82e0a940\r\nRSI=0 RDI=0 RBP=0 RSP=ffffffff82e03e68\r\n\
                    RIP=ffffffff81f3c54b RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n\
                    CR0=80050033 CR2=00007f CR3=000000010a64e000 CR4=00350ef0\r\n\
                    CPU#1\r\nRSP=ffffc90000093eb8\r\nRIP=ffffffff81f3c54b RFL=00000246\r\nCR0=80050033 CR2=0 CR3=0000000002c32000 CR4=0\r\n";
        let r = super::parse_info_registers(text);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].cpu, r[0].rip, r[0].cr3), (0, 0xffffffff81f3c54b, 0x10a64e000));
        assert_eq!((r[1].cpu, r[1].rsp), (1, 0xffffc90000093eb8));
        let p = super::parse_paging_registers(text);
        assert_eq!((p[0].cr3, p[0].cr4, p[1].cr4), (0x10a64e000, 0x350ef0, 0));
    }
}
