//! Booting a Linux kernel: a [`Vm`] with the in-kernel irqchip and PIT,
//! ACPI tables for the requested CPU shape, COM1 as console, a virtio
//! console as the agent's data channel (COM2 stays, for guests without
//! virtio: the host picks which one the agent is told to use), the vmlinux
//! entered in 64-bit mode with the zero page in RSI, and a watch loop that
//! turns power-off, triple faults, panics and a silent boot into outcomes.
//!
//! The data channel is a virtio console on virtio-mmio at
//! [`VIRTIO_CONSOLE`] (MMIO base, GSI 5, edge), declared in the DSDT as a
//! `LNRO0005` device, so the guest needs CONFIG_VIRTIO_MMIO (a module is
//! fine: it binds once loaded) and CONFIG_VIRTIO_CONSOLE. Its one port is
//! the guest's `/dev/hvc0` (the first hvc tty; the kernel console stays on
//! ttyS0), which the agent opens in raw mode. Unlike COM2, where every byte
//! is a port I/O exit, a whole buffer crosses per exit.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kvm_bindings::{kvm_regs, KVM_MAX_CPUID_ENTRIES};

use crate::error::{KvmError, Result};
use crate::memory::GuestMemory;
use crate::serial::{COM1, COM2};
use crate::vcpu::VmEvent;
use crate::virtio::{MMIO_SIZE, VIRTIO_CONSOLE};
use crate::vm::{SerialPort, Vm, VmConfig};
use crate::x86::acpi::{self, AcpiConfig, AcpiCpu, AcpiMemory, SLEEP_CONTROL_PORT};
use crate::x86::boot::{self, ZeroPage, ACPI_ADDR, BOOT_PARAMS_ADDR, BOOT_STACK};
use crate::x86::cpuid::{cpuid_for, llc_align_bits, CpuShape, CpuidOptions};
use crate::x86::power::SleepControl;
use crate::x86::regs::{set_fpu_defaults, set_lint, set_long_mode_entry, write_long_mode_tables};

/// What to boot.
#[derive(Clone, Debug)]
pub struct LinuxSpec {
    /// The kernel: an uncompressed vmlinux ELF, or a bzImage (whose decompressor
    /// needs BMI2, which PVM lacks); entered at its 64-bit entry point.
    pub vmlinux: PathBuf,
    pub initramfs: Option<PathBuf>,
    pub cmdline: String,
    pub shape: CpuShape,
    /// Bytes of RAM.
    pub memory: u64,
    pub cpuid: CpuidOptions,
}

/// How a guest ended (or why watching it stopped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestExit {
    /// ACPI S5.
    PowerOff,
    /// The guest asked for a reset (not supported: treated as an end).
    Reset,
    TripleFault {
        vcpu: usize,
    },
    /// The console printed a kernel panic; the line is kept.
    Panic(String),
    /// A vCPU failed (KVM error or unhandled exit).
    Failed {
        vcpu: usize,
        reason: String,
    },
}

/// The result of [`LinuxVm::watch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Watch {
    /// The condition became true.
    Reached,
    /// The guest ended first.
    Ended(GuestExit),
    /// Neither happened within the timeout (a hang, for a boot watchdog).
    TimedOut,
}

const PANIC: &[u8] = b"Kernel panic - not syncing";
/// How long the watch waits for a panic line to end before reporting it.
const PANIC_LINE_GRACE: Duration = Duration::from_millis(500);

/// A booting or booted Linux guest.
pub struct LinuxVm {
    pub vm: Vm,
    /// COM1 (ttyS0, IRQ 4): the kernel console.
    pub console: SerialPort,
    /// The virtio console (hvc0, GSI 5): the agent's data channel.
    pub channel: SerialPort,
    /// COM2 (ttyS1, IRQ 3): declared and wired; the channel of guests without a virtio driver.
    pub com2: SerialPort,
    /// When [`LinuxVm::boot`] was called.
    pub started: Instant,
    /// When the vCPUs were started.
    pub vcpus_started: Instant,
    ended: Mutex<Option<GuestExit>>,
}

/// Splits RAM evenly (2 MiB granules) over `nodes` NUMA nodes.
pub fn numa_memory(mem: &GuestMemory, nodes: u32) -> Vec<AcpiMemory> {
    let granule = 2 << 20;
    let per_node = (mem.size() / u64::from(nodes)).div_ceil(granule) * granule;
    let mut out = Vec::new();
    let (mut node, mut left) = (0u32, per_node);
    for (mut base, mut len) in mem.ranges() {
        while len > 0 {
            let take = len.min(left);
            out.push(AcpiMemory { base, len: take, node });
            (base, len, left) = (base + take, len - take, left - take);
            if left == 0 && node + 1 < nodes {
                node += 1;
                left = per_node;
            } else if left == 0 {
                left = u64::MAX;
            }
        }
    }
    out
}

impl LinuxVm {
    /// Builds the VM, loads the kernel and initramfs, writes the boot tables and starts the vCPUs.
    pub fn boot(spec: &LinuxSpec) -> Result<Self> {
        let started = Instant::now();
        spec.shape.validate()?;
        let cpus = spec.shape.cpus();
        let mut vm = Vm::new(VmConfig { vcpus: cpus as usize, memory: spec.memory, irqchip: true })?;
        let supported = vm
            .kvm()
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| KvmError::ioctl("KVM_GET_SUPPORTED_CPUID", e))?;
        let shape = CpuShape { min_llc_bits: spec.shape.min_llc_bits.max(llc_align_bits(&supported)), ..spec.shape };
        shape.validate()?;
        // The in-kernel LAPIC takes its APIC ID from the vCPU id: match CPUID and the MADT.
        vm.set_vcpu_ids((0..cpus).map(|c| u64::from(shape.apic_id(c))).collect())?;
        let mem = vm.memory().clone();
        let kernel = boot::load_kernel(&mem, &spec.vmlinux)?;
        let (entry, kernel_end) = (kernel.entry, kernel.end);
        let initramfs = match &spec.initramfs {
            Some(p) => Some(boot::load_initramfs(&mem, p, kernel_end)?),
            None => None,
        };
        boot::write_cmdline(&mem, &spec.cmdline)?;
        let acpi = AcpiConfig {
            cpus: (0..cpus).map(|c| AcpiCpu { apic_id: shape.apic_id(c), node: shape.node_of(c) }).collect(),
            memory: numa_memory(&mem, shape.nodes),
            serial_ports: vec![(COM1.0, COM1.1 as u8), (COM2.0, COM2.1 as u8)],
            virtio_mmio: vec![(VIRTIO_CONSOLE.0 as u32, MMIO_SIZE as u32, VIRTIO_CONSOLE.1 as u8)],
        };
        let (rsdp, _) = acpi::write_tables(&mem, ACPI_ADDR, &acpi)?;
        let zp = ZeroPage {
            setup_header: kernel.setup_header,
            cmdline_len: spec.cmdline.len(),
            initramfs,
            rsdp,
            e820: boot::e820_map(&mem),
        };
        boot::write_zero_page(&mem, &zp)?;
        write_long_mode_tables(&mem)?;
        let console = vm.add_serial(COM1.0, COM1.1)?;
        let com2 = vm.add_serial(COM2.0, COM2.1)?;
        let channel = vm.add_virtio_console(VIRTIO_CONSOLE.0, VIRTIO_CONSOLE.1)?;
        vm.add_pio(SLEEP_CONTROL_PORT, 2, Arc::new(Mutex::new(SleepControl)))?;
        let options = spec.cpuid;
        vm.start(|i, fd| {
            let cpuid = cpuid_for(&supported, &shape, i as u32, options)?;
            fd.set_cpuid2(&cpuid).map_err(|e| KvmError::ioctl("KVM_SET_CPUID2", e))?;
            set_lint(fd)?;
            if i == 0 {
                // The BSP enters the kernel; APs wait for INIT/SIPI in the in-kernel LAPIC.
                set_fpu_defaults(fd)?;
                let regs = kvm_regs {
                    rip: entry,
                    rsi: BOOT_PARAMS_ADDR,
                    rsp: BOOT_STACK,
                    rbp: BOOT_STACK,
                    ..Default::default()
                };
                set_long_mode_entry(fd, regs)?;
            }
            Ok(())
        })?;
        tracing::debug!(setup_ms = started.elapsed().as_millis() as u64, entry, "kernel entered");
        Ok(Self { vm, console, channel, com2, started, vcpus_started: Instant::now(), ended: Mutex::new(None) })
    }

    /// Waits until `reached(console output so far)` holds, the guest ends, or `timeout` passes.
    pub fn watch(&self, timeout: Duration, reached: impl Fn(&[u8]) -> bool) -> Watch {
        let deadline = Instant::now() + timeout;
        let mut panic_seen = None;
        loop {
            if let Some(end) = self.ended.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                return Watch::Ended(end);
            }
            let out = self.console.output.contents();
            if reached(&out) {
                return Watch::Reached;
            }
            if let Some(at) = out.windows(PANIC.len()).position(|w| w == PANIC) {
                // Give the rest of the panic line a moment to arrive.
                let seen = *panic_seen.get_or_insert_with(Instant::now);
                let rest = &out[at..];
                if rest.contains(&b'\n') || seen.elapsed() >= PANIC_LINE_GRACE || Instant::now() >= deadline {
                    let line = rest.split(|b| *b == b'\n').next().unwrap_or_default();
                    return self.end(GuestExit::Panic(String::from_utf8_lossy(line).trim_end().to_owned()));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // A zero wait still polls once, so `watch(Duration::ZERO, ..)` is a liveness check.
            if let Some(ev) = self.vm.next_event(left.min(Duration::from_millis(20))) {
                let end = match ev {
                    VmEvent::PowerOff { .. } => GuestExit::PowerOff,
                    VmEvent::Reset { .. } => GuestExit::Reset,
                    VmEvent::TripleFault { vcpu } => GuestExit::TripleFault { vcpu },
                    VmEvent::Failed { vcpu, reason } => GuestExit::Failed { vcpu, reason },
                    VmEvent::Halted { .. } | VmEvent::Watchpoint(_) => continue,
                };
                return self.end(end);
            }
            if left.is_zero() {
                return Watch::TimedOut;
            }
        }
    }

    fn end(&self, exit: GuestExit) -> Watch {
        *self.ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(exit.clone());
        Watch::Ended(exit)
    }

    /// The last `n` console lines.
    pub fn console_tail(&self, n: usize) -> String {
        let out = self.console.output.contents();
        let text = String::from_utf8_lossy(&out);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{FOUR_GIB, PCI_HOLE_START};
    use crate::x86::acpi::{IOAPIC_ADDR, LAPIC_ADDR};

    #[test]
    fn the_virtio_console_sits_alone_in_the_mmio_hole_on_a_free_legacy_irq() {
        let (base, irq) = VIRTIO_CONSOLE;
        let end = base + MMIO_SIZE;
        assert!(base >= PCI_HOLE_START && end <= u64::from(IOAPIC_ADDR), "{base:#x}..{end:#x}");
        // Above it: IOAPIC, LAPIC and the KVM TSS / identity map (0xfffbc000..0xfffc0000).
        for other in [u64::from(IOAPIC_ADDR), u64::from(LAPIC_ADDR), 0xfffb_c000] {
            assert!(end <= other, "clashes with {other:#x}");
        }
        assert!(u32::try_from(base).is_ok() && irq < 16);
        assert!(irq != COM1.1 && irq != COM2.1 && irq != 0 && irq != 2, "IRQ {irq} is taken");
    }

    #[test]
    fn numa_memory_splits_ram_evenly_across_the_hole() {
        let mem = GuestMemory::new(4 << 30).unwrap();
        let split = numa_memory(&mem, 2);
        let per_node = 2 << 30;
        assert_eq!(
            split,
            vec![
                AcpiMemory { base: 0, len: per_node, node: 0 },
                AcpiMemory { base: per_node, len: PCI_HOLE_START - per_node, node: 1 },
                AcpiMemory { base: FOUR_GIB, len: (4 << 30) - PCI_HOLE_START, node: 1 },
            ]
        );
        assert_eq!(numa_memory(&mem, 1).iter().map(|m| m.node).collect::<Vec<_>>(), vec![0, 0]);
    }
}
