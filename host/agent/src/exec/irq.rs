//! steer-irq: `/proc/irq/<n>/smp_affinity_list`, checked before and after the write.
//! The affinity an IRQ had before its first steer is kept, so the between-scenario
//! reset puts it back (and verifies it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use schedbox_ops::results::IrqAffinity;
use schedbox_ops::IrqSelector;

/// The IRQs steered since the guest booted.
#[derive(Default)]
pub struct Steered {
    /// IRQ → its `smp_affinity_list` before the first steer, until the reset restores it.
    pub original: BTreeMap<u32, String>,
    /// IRQs the current scenario steered.
    pub scenario: BTreeSet<u32>,
}

fn affinity_file(n: u32) -> PathBuf {
    Path::new("/proc/irq").join(n.to_string()).join("smp_affinity_list")
}

/// `/proc/irq/<n>/` as the kernel shows it now.
pub fn affinity(n: u32) -> IrqAffinity {
    let list = |f: &str| {
        std::fs::read_to_string(Path::new("/proc/irq").join(n.to_string()).join(f))
            .map(|s| crate::topology::parse_cpu_list(&s))
            .unwrap_or_default()
    };
    IrqAffinity { irq: n, affinity: list("smp_affinity_list"), effective: list("effective_affinity_list") }
}

impl Steered {
    /// Writes every steered IRQ's original affinity back and forgets those that are as
    /// they were; returns what it did. What it could not restore stays recorded, so
    /// [`Steered::changed`] names it (the reset's `irqs` check).
    pub fn restore(&mut self) -> Vec<String> {
        let mut done = Vec::new();
        let mut kept = BTreeMap::new();
        for (n, was) in std::mem::take(&mut self.original) {
            let file = affinity_file(n);
            let now = std::fs::read_to_string(&file).unwrap_or_default();
            let want = crate::topology::parse_cpu_list(&was);
            if crate::topology::parse_cpu_list(&now) == want {
                continue;
            }
            let wrote = std::fs::write(&file, was.trim());
            let after = std::fs::read_to_string(&file).unwrap_or_default();
            if wrote.is_ok() && crate::topology::parse_cpu_list(&after) == want {
                done.push(format!("restored IRQ {n} affinity {:?} (was {:?})", was.trim(), now.trim()));
            } else {
                let why = wrote.err().map(|e| format!(": {e}")).unwrap_or_default();
                done.push(format!("could not restore IRQ {n} affinity {:?}{why}", was.trim()));
                kept.insert(n, was);
            }
        }
        self.original = kept;
        self.scenario.clear();
        done
    }

    /// IRQs whose affinity differs from the original recorded for them.
    pub fn changed(&self) -> Vec<String> {
        self.original
            .iter()
            .filter_map(|(n, was)| {
                let now = std::fs::read_to_string(affinity_file(*n)).unwrap_or_default();
                (crate::topology::parse_cpu_list(&now) != crate::topology::parse_cpu_list(was))
                    .then(|| format!("IRQ {n} affinity {:?} (originally {:?})", now.trim(), was.trim()))
            })
            .collect()
    }
}

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
pub fn steer(irq: &IrqSelector, cpu: u32, steered: &mut Steered) -> Result<(), String> {
    steer_cpus(irq, &[cpu], steered)
}

/// Steers `irq` to the CPU set `cpus` (the kernel may deliver on any of them).
pub fn steer_cpus(irq: &IrqSelector, cpus: &[u32], steered: &mut Steered) -> Result<(), String> {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .map(|s| crate::topology::parse_cpu_list(&s))
        .map_err(|e| format!("reading /sys/devices/system/cpu/online: {e}"))?;
    if cpus.is_empty() {
        return Err("no CPU given: steer to at least one online CPU".into());
    }
    if let Some(cpu) = cpus.iter().find(|c| !online.contains(c)) {
        return Err(format!(
            "CPU {cpu} is not online (online: {}): steer to an online CPU",
            super::cpuset::format_cpu_list(&online)
        ));
    }
    let list = super::cpuset::format_cpu_list(cpus);
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
    let before = std::fs::read_to_string(&file).map_err(|e| format!("{shown}: reading {}: {e}", file.display()))?;
    std::fs::write(&file, &list).map_err(|e| {
        format!("{shown}: writing CPUs {list} to {}: {e} (the kernel refuses to move this IRQ)", file.display())
    })?;
    steered.original.entry(n).or_insert(before);
    steered.scenario.insert(n);
    let now = std::fs::read_to_string(&file).map_err(|e| format!("{shown}: reading back {}: {e}", file.display()))?;
    let got = crate::topology::parse_cpu_list(&now);
    if got.is_empty() || got.iter().any(|c| !cpus.contains(c)) {
        return Err(format!(
            "{shown}: {} reads {:?} after writing {list}: the IRQ did not move",
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
