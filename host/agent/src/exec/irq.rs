//! steer-irq: `/proc/irq/<n>/smp_affinity_list`, checked before and after the write.

use std::path::Path;

use schedbox_ops::IrqSelector;

/// The IRQ number of the first numbered `/proc/interrupts` line whose last token is
/// `label`.
pub fn by_label(interrupts: &str, label: &str) -> Option<u32> {
    interrupts.lines().find_map(|line| {
        let (irq, rest) = line.trim_start().split_once(':')?;
        let irq = irq.parse::<u32>().ok()?;
        (rest.split_whitespace().last()? == label).then_some(irq)
    })
}

/// Steers `irq` to `cpu`.
pub fn steer(irq: &IrqSelector, cpu: u32) -> Result<(), String> {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .map(|s| crate::topology::parse_cpu_list(&s))
        .map_err(|e| format!("reading /sys/devices/system/cpu/online: {e}"))?;
    if !online.contains(&cpu) {
        return Err(format!(
            "CPU {cpu} is not online (online: {}): steer to an online CPU",
            super::cpuset::format_cpu_list(&online)
        ));
    }
    let (n, shown) = match irq {
        IrqSelector::ByNumber(n) => (*n, format!("IRQ {n}")),
        IrqSelector::ByLabel(label) => {
            let text =
                std::fs::read_to_string("/proc/interrupts").map_err(|e| format!("reading /proc/interrupts: {e}"))?;
            let n = by_label(&text, label).ok_or_else(|| {
                format!("no /proc/interrupts line ends with {label:?} (labels: {})", labels(&text).join(", "))
            })?;
            (n, format!("IRQ {n} ({label})"))
        }
    };
    let dir = Path::new("/proc/irq").join(n.to_string());
    if !dir.is_dir() {
        return Err(format!("{shown} does not exist (no {})", dir.display()));
    }
    let file = dir.join("smp_affinity_list");
    std::fs::write(&file, cpu.to_string()).map_err(|e| {
        format!("{shown}: writing CPU {cpu} to {}: {e} (the kernel refuses to move this IRQ)", file.display())
    })?;
    let now = std::fs::read_to_string(&file).map_err(|e| format!("{shown}: reading back {}: {e}", file.display()))?;
    if !crate::topology::parse_cpu_list(&now).contains(&cpu) {
        return Err(format!(
            "{shown}: {} reads {:?} after writing {cpu}: the IRQ did not move",
            file.display(),
            now.trim()
        ));
    }
    Ok(())
}

fn labels(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.trim_start().split_once(':').is_some_and(|(n, _)| n.parse::<u32>().is_ok()))
        .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERRUPTS: &str = "           CPU0       CPU1       CPU2       CPU3
  0:         39          0          0          0   IO-APIC   2-edge      timer
  4:          0          0        412          0   IO-APIC   4-edge      ttyS0
 24:          0        120          0          0  PCI-MSIX-0000:00:02.0   0-edge      virtio0-config
 25:       1834          0          0          0  PCI-MSIX-0000:00:02.0   1-edge      virtio0-virtqueues
 26:          3          0          0          0   IO-APIC   9-fasteoi   acpi, virtio1
NMI:          0          0          0          0   Non-maskable interrupts
LOC:       4411       3921       3755       3580   Local timer interrupts
";

    #[test]
    fn labels_are_the_last_token_of_numbered_lines() {
        assert_eq!(by_label(INTERRUPTS, "ttyS0"), Some(4));
        assert_eq!(by_label(INTERRUPTS, "virtio0-virtqueues"), Some(25));
        assert_eq!(by_label(INTERRUPTS, "virtio1"), Some(26), "a shared IRQ matches its last action");
        assert_eq!(by_label(INTERRUPTS, "acpi,"), None);
        assert_eq!(by_label(INTERRUPTS, "interrupts"), None, "named rows cannot be steered");
        assert_eq!(by_label(INTERRUPTS, "IO-APIC"), None);
        assert_eq!(labels(INTERRUPTS)[..2], ["timer".to_owned(), "ttyS0".to_owned()]);
    }
}
