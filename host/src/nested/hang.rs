//! What a hung nested run was doing, read through the outer QEMU's monitor
//! (HMP on a unix socket): RIP samples named from the outer kernel's symbols,
//! one full register dump, the local APIC, and then an NMI, on which the outer
//! kernel (booted with `unknown_nmi_panic` and `panic_sys_info=tasks`) panics
//! and prints the interrupted stack and every task's on its console.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// Kernel command line words that make an NMI print the outer kernel's stacks.
pub const PANIC_ON_NMI: &str = "unknown_nmi_panic panic_sys_info=tasks";

/// How long the console may take to print the panic after the NMI.
pub const PANIC_GRACE: Duration = Duration::from_secs(20);

/// Register samples taken before the NMI.
const SAMPLES: usize = 8;

/// The monitor's prompt, which ends every answer.
const PROMPT: &str = "(qemu) ";

/// A human monitor client.
struct Hmp {
    sock: UnixStream,
}

impl Hmp {
    fn connect(path: &Path) -> Result<Self> {
        let sock = UnixStream::connect(path)?;
        sock.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut hmp = Self { sock };
        hmp.answer()?; // the greeting
        Ok(hmp)
    }

    /// Runs `command`; its output without the echo, escapes or prompt.
    fn command(&mut self, command: &str) -> Result<String> {
        self.sock.write_all(format!("{command}\n").as_bytes())?;
        let text = self.answer()?;
        // The monitor echoes the command line first.
        Ok(text.split_once('\n').map_or(String::new(), |(_, rest)| rest.to_owned()))
    }

    /// Everything up to the next prompt, escapes and carriage returns removed.
    fn answer(&mut self) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut bytes = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let text = plain(&bytes);
            if let Some(body) = text.strip_suffix(PROMPT) {
                return Ok(body.to_owned());
            }
            if Instant::now() >= deadline {
                bail!("the monitor did not answer within 5 s");
            }
            match self.sock.read(&mut buf)? {
                0 => bail!("the monitor closed"),
                n => bytes.extend_from_slice(&buf[..n]),
            }
        }
    }
}

/// `bytes` as text without ANSI escape sequences and carriage returns.
fn plain(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                // CSI: ESC [ parameters final-byte.
                if chars.next() == Some('[') {
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// The 16-hex-digit value after `name` (`RIP=`, `CR3=`) in an `info registers` answer.
fn register(text: &str, name: &str) -> Option<u64> {
    let at = text.find(name)? + name.len();
    let hex: String = text[at..].chars().take_while(char::is_ascii_hexdigit).collect();
    (hex.len() == 16).then(|| u64::from_str_radix(&hex, 16).ok())?
}

/// `rip` as `symbol+offset` from `symbols` (sorted by address), if one is near below it.
fn name_rip(symbols: &[(u64, String)], rip: u64) -> Option<String> {
    let at = symbols.partition_point(|(a, _)| *a <= rip);
    let (a, name) = &symbols[at.checked_sub(1)?];
    (rip - a < 1 << 16).then(|| format!("{name}+{:#x}", rip - a))
}

/// What the outer guest's vCPU is doing, for the error of a timed-out run, and
/// an NMI sent last (the panic report follows on the console within
/// [`PANIC_GRACE`]). `symbols` names the RIPs (see `outer_symbols_file`).
/// While the inner guest runs, TCG shows its registers instead: the same kernel,
/// booted from vmlinux without KASLR, so its RIPs get the same names and its CR3
/// can equal the outer `init_top_pgt`; the NMI's stack tells the two apart.
/// Best effort: says what failed.
pub fn diagnose(hmp: &Path, symbols: &Path) -> String {
    let mut hmp = match Hmp::connect(hmp) {
        Ok(h) => h,
        Err(e) => return format!("  (no monitor: {e})"),
    };
    let symbols = kernel_symbols(symbols).unwrap_or_default();
    let mut out = Vec::new();
    let mut last = String::new();
    for _ in 0..SAMPLES {
        match hmp.command("info registers") {
            Ok(text) => match (register(&text, "RIP="), register(&text, "CR3=")) {
                (Some(rip), Some(cr3)) => {
                    let name = name_rip(&symbols, rip).map(|n| format!(" {n}")).unwrap_or_default();
                    out.push(format!("  RIP {rip:#x}{name}, CR3 {cr3:#x}"));
                    last = text;
                }
                _ => out.push("  (no RIP and CR3 in the monitor's answer)".into()),
            },
            Err(e) => {
                out.push(format!("  (no register sample: {e})"));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let indent = |text: &str| text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n");
    if !last.is_empty() {
        out.push(format!("  last sample, every register:\n{}", indent(&last)));
    }
    match hmp.command("info lapic") {
        Ok(text) => out.push(format!("  local APIC:\n{}", indent(&text))),
        Err(e) => out.push(format!("  (no local APIC state: {e})")),
    }
    match hmp.command("nmi") {
        Ok(_) => out.push(
            "  sent an NMI: the outer kernel panics on it and prints the stack it interrupted and every \
             task's (console below); no panic means even NMIs are blocked"
                .into(),
        ),
        Err(e) => out.push(format!("  (no NMI sent: {e})")),
    }
    out.join("\n")
}

/// The cached text symbols (see `save_text_symbols`) sorted by address.
fn kernel_symbols(path: &Path) -> Result<Vec<(u64, String)>> {
    let text = std::fs::read_to_string(path)?;
    let mut symbols: Vec<(u64, String)> = text
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (addr, _kind, name) = (it.next()?, it.next()?, it.next()?);
            Some((u64::from_str_radix(addr, 16).ok()?, name.to_owned()))
        })
        .collect();
    symbols.sort_unstable();
    Ok(symbols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_answers_are_read_without_escapes_and_registers_named() {
        let raw = b"info registers\r\n\x1b[K\x1b[DRAX=0000000000000001 RBX=0000000000000002\r\n\
                    RIP=ffffffff8144bf77 RFL=00000246 [---Z-P-] CPL=0\r\nCR0=80050033 CR2=0 CR3=000000000322a000 CR4=1\r\n(qemu) ";
        let text = plain(raw);
        let body = text.strip_suffix(PROMPT).expect("ends with the prompt");
        assert!(!body.contains('\x1b') && !body.contains('\r'), "{body:?}");
        assert_eq!(register(body, "RIP="), Some(0xffff_ffff_8144_bf77));
        assert_eq!(register(body, "CR3="), Some(0x322a000));
        assert_eq!(register(body, "CR2="), None, "not 16 digits");
        let symbols =
            vec![(0xffff_ffff_8144_bf10, "mutex_spin_on_owner".to_owned()), (0xffff_ffff_8200_0000, "x".into())];
        assert_eq!(name_rip(&symbols, 0xffff_ffff_8144_bf77).as_deref(), Some("mutex_spin_on_owner+0x67"));
        assert_eq!(name_rip(&symbols, 0xffff_ffff_8100_0000), None, "below every symbol");
        assert_eq!(name_rip(&symbols, 0xffff_ffff_8300_0000), None, "too far from the nearest");
    }
}
