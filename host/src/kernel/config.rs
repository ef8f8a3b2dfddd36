//! Kernel `.config` parsing and the checks that say, per option, whether it is
//! built in, a module or missing, and what a schedbox guest loses without it.

use std::collections::BTreeMap;
use std::fmt;

/// One option's value in a `.config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigValue {
    Yes,
    Module,
    /// `# CONFIG_X is not set`
    NotSet,
    /// A string or number (`CONFIG_HZ=250`, `CONFIG_LOCALVERSION=""`).
    Value(String),
}

/// A parsed kernel config; keys keep their `CONFIG_` prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelConfig {
    values: BTreeMap<String, ConfigValue>,
}

impl KernelConfig {
    pub fn parse(text: &str) -> Self {
        let mut values = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix("# ").and_then(|l| l.strip_suffix(" is not set")) {
                if name.starts_with("CONFIG_") {
                    values.insert(name.to_owned(), ConfigValue::NotSet);
                }
            } else if let Some((name, value)) = line.split_once('=').filter(|(n, _)| n.starts_with("CONFIG_")) {
                let value = match value {
                    "y" => ConfigValue::Yes,
                    "m" => ConfigValue::Module,
                    v => ConfigValue::Value(v.trim_matches('"').to_owned()),
                };
                values.insert(name.to_owned(), value);
            }
        }
        Self { values }
    }

    /// `name` with or without the `CONFIG_` prefix.
    pub fn get(&self, name: &str) -> Option<&ConfigValue> {
        match name.strip_prefix("CONFIG_") {
            Some(_) => self.values.get(name),
            None => self.values.get(&format!("CONFIG_{name}")),
        }
    }

    pub fn state(&self, name: &str) -> OptionState {
        match self.get(name) {
            Some(ConfigValue::Yes | ConfigValue::Value(_)) => OptionState::BuiltIn,
            Some(ConfigValue::Module) => OptionState::Module,
            Some(ConfigValue::NotSet) | None => OptionState::Missing,
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionState {
    BuiltIn,
    Module,
    Missing,
}

/// How much schedbox needs an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Must be `=y`: a module is as bad as nothing (the guest loads no modules).
    Required,
    /// Wanted `=y`; a module works only with the modules package in the initramfs.
    Recommended,
    /// Either way; only a feature or a speed-up is lost without it.
    Optional,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Ok,
    Info,
    Warn,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub option: &'static str,
    pub state: OptionState,
    pub need: Need,
    pub severity: Severity,
    /// What breaks when the option is missing.
    pub breaks: &'static str,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            OptionState::BuiltIn => "built in",
            OptionState::Module => "a module",
            OptionState::Missing => "missing",
        };
        write!(f, "CONFIG_{} is {state}", self.option)?;
        match (self.severity, self.state) {
            (Severity::Ok, _) => Ok(()),
            (_, OptionState::Module) => write!(f, " (the guest loads no modules by default): {}", self.breaks),
            _ => write!(f, ": {}", self.breaks),
        }
    }
}

use Need::*;

/// (option, need, what breaks without it)
const CHECKS: &[(&str, Need, &str)] = &[
    ("SCHED_CLASS_EXT", Required, "no sched_ext: attach-scheduler and every scheduler op fail, /sys/kernel/sched_ext is absent"),
    ("BPF_SYSCALL", Required, "no bpf(2): sched_ext schedulers cannot be loaded"),
    ("DEBUG_INFO_BTF", Required, "no /sys/kernel/btf/vmlinux: CO-RE schedulers fail to load and the monitor cannot resolve struct field offsets"),
    ("BPF_JIT", Recommended, "BPF runs interpreted: schedulers are slow and their timings meaningless"),
    ("KALLSYMS_ALL", Recommended, "/proc/kallsyms lists functions only: kernel reads and writes of variables by symbol name fail"),
    ("BINFMT_ELF", Required, "the agent (an ELF binary) cannot be executed as init"),
    ("BLK_DEV_INITRD", Required, "no initramfs: the agent cannot be started"),
    ("DEVTMPFS", Required, "no devtmpfs: the agent finds no device nodes (console, data channel)"),
    ("RD_ZSTD", Optional, "a zstd-compressed initramfs is refused (an uncompressed one still works)"),
    ("RD_GZIP", Optional, "a gzip-compressed initramfs is refused (an uncompressed one still works)"),
    ("CGROUPS", Required, "no cgroups: add-cgroup, cpusets and freeze-cgroup fail (the cgroup v2 freezer, cgroup.freeze, comes with CONFIG_CGROUPS since 5.2)"),
    ("CGROUP_SCHED", Required, "no cpu controller: cpu.weight/cpu.max settings fail and sched_ext sees no cgroups"),
    ("CPUSETS", Required, "no cpuset controller: set-cpuset and cpuset placements fail"),
    ("FAIR_GROUP_SCHED", Recommended, "no fair group scheduling: cpu.weight has no effect under CFS/EEVDF"),
    ("EXT_GROUP_SCHED", Recommended, "sched_ext schedulers get no cgroup callbacks (cgroup init/move, cpu.weight)"),
    ("MEMCG", Recommended, "no memory controller: memory limits in cgroup definitions are refused"),
    ("CGROUP_PIDS", Recommended, "no pids controller: pids.max in cgroup definitions is refused"),
    ("BLK_CGROUP", Optional, "no io controller: io weights in cgroup definitions are refused"),
    ("CGROUP_FREEZER", Optional, "only the cgroup v1 freezer is lost; schedbox freezes through cgroup v2's cgroup.freeze"),
    ("SMP", Required, "a uniprocessor kernel: every multi-CPU topology is meaningless"),
    ("SCHED_MC", Recommended, "no multi-core scheduling domains: LLC groups are not reflected in sched domains"),
    ("NUMA", Recommended, "no NUMA: scenarios asking for several nodes see one"),
    ("ACPI_NUMA", Recommended, "the SRAT is ignored: NUMA nodes the VMM describes are not seen"),
    ("PVH", Recommended, "no PVH entry: QEMU cannot boot `-kernel vmlinux` on microvm; the bzImage on q35 boots about 1.5 s slower"),
    ("SERIAL_8250", Required, "no 8250 UART: no ttyS0 console, no boot log, no readiness signal"),
    ("SERIAL_8250_CONSOLE", Required, "console=ttyS0 does nothing: panics and boot failures are invisible"),
    ("VIRTIO_CONSOLE", Recommended, "no virtio console: the agent channel falls back to a second 8250 port (ttyS1), one exit per byte"),
    ("VIRTIO_PCI", Recommended, "no virtio over PCI: no virtio-serial channel on q35"),
    ("VIRTIO_MMIO", Recommended, "no virtio over MMIO: no virtio-serial on microvm, and the kvm backend's agent channel is COM2 (slow)"),
    ("VIRTIO_MMIO_CMDLINE_DEVICES", Optional, "virtio-mmio devices can only be found through ACPI, not `virtio_mmio.device=` (microvm with acpi=off)"),
    ("KVM_GUEST", Optional, "no paravirtual clock or IPIs under KVM: a slower guest, results unaffected"),
    ("KVM", Optional, "no KVM inside the guest (nested virtualization scenarios)"),
];

/// Check `config` against what schedbox needs; one finding per option, in table order.
pub fn check(config: &KernelConfig) -> Vec<Finding> {
    CHECKS
        .iter()
        .map(|&(option, need, breaks)| {
            let state = config.state(option);
            let severity = match (need, state) {
                (_, OptionState::BuiltIn) => Severity::Ok,
                (Optional, OptionState::Module) => Severity::Ok,
                (Required, _) => Severity::Error,
                (Recommended, _) => Severity::Warn,
                (Optional, OptionState::Missing) => Severity::Info,
            };
            Finding { option, state, need, severity, breaks }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
#
# Automatically generated file; DO NOT EDIT.
#
CONFIG_CC_VERSION_TEXT=\"x86_64-linux-gnu-gcc (Debian) 16.2.0\"
CONFIG_SCHED_CLASS_EXT=y
CONFIG_BPF_SYSCALL=y
CONFIG_HZ=250
CONFIG_VIRTIO_MMIO=m
# CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES is not set
CONFIG_KVM=m
CONFIG_CGROUPS=y
# CONFIG_CPUSETS is not set
";

    fn finding<'a>(all: &'a [Finding], option: &str) -> &'a Finding {
        all.iter().find(|f| f.option == option).unwrap()
    }

    #[test]
    fn parses_every_value_form() {
        let c = KernelConfig::parse(SAMPLE);
        assert_eq!(c.get("SCHED_CLASS_EXT"), Some(&ConfigValue::Yes));
        assert_eq!(c.get("CONFIG_VIRTIO_MMIO"), Some(&ConfigValue::Module));
        assert_eq!(c.get("VIRTIO_MMIO_CMDLINE_DEVICES"), Some(&ConfigValue::NotSet));
        assert_eq!(c.get("HZ"), Some(&ConfigValue::Value("250".into())));
        assert_eq!(c.get("CC_VERSION_TEXT"), Some(&ConfigValue::Value("x86_64-linux-gnu-gcc (Debian) 16.2.0".into())));
        assert_eq!(c.get("PVH"), None);
        assert_eq!(c.len(), 9);
        assert_eq!(c.state("HZ"), OptionState::BuiltIn);
        assert_eq!(c.state("CPUSETS"), OptionState::Missing);
    }

    #[test]
    fn severities_follow_need_and_state() {
        let all = check(&KernelConfig::parse(SAMPLE));
        assert_eq!(all.len(), CHECKS.len());
        assert_eq!(finding(&all, "SCHED_CLASS_EXT").severity, Severity::Ok);
        assert_eq!(finding(&all, "CPUSETS").severity, Severity::Error);
        assert_eq!(finding(&all, "DEBUG_INFO_BTF").severity, Severity::Error);
        let mmio = finding(&all, "VIRTIO_MMIO");
        assert_eq!((mmio.state, mmio.severity), (OptionState::Module, Severity::Warn));
        assert!(mmio.to_string().contains("is a module") && mmio.to_string().contains("microvm"), "{mmio}");
        assert_eq!(finding(&all, "KVM").severity, Severity::Ok, "a module is fine for optional options");
        assert_eq!(finding(&all, "VIRTIO_MMIO_CMDLINE_DEVICES").severity, Severity::Info);
        assert_eq!(finding(&all, "PVH").to_string().split(':').next().unwrap(), "CONFIG_PVH is missing");
    }

    #[test]
    fn freeze_needs_only_cgroups_on_v2() {
        let c = KernelConfig::parse("CONFIG_CGROUPS=y\n");
        let all = check(&c);
        assert_eq!(finding(&all, "CGROUP_FREEZER").severity, Severity::Info);
        assert!(finding(&all, "CGROUPS").breaks.contains("cgroup.freeze"));
    }
}
