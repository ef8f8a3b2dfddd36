//! The Linux boot path with a stand-in kernel: a 64-bit ELF that reads what
//! the boot protocol handed it (zero page in RSI, e820, command line,
//! initramfs, RSDP, CPUID topology), prints it on COM1 and powers off via
//! ACPI S5. A stock kernel cannot boot on PVM; this proves every piece the
//! VMM contributes, on PVM and hardware alike.

use std::time::Duration;

use schedbox_kvm::guest_image::{bzimage, elf64};
use schedbox_kvm::linux::{GuestExit, LinuxSpec, LinuxVm, Watch};
use schedbox_kvm::x86::cpuid::{CpuShape, CpuidOptions};
use schedbox_kvm::KvmKind;

#[rustfmt::skip]
const KERNEL: &[u8] = &[
    0x49, 0x89, 0xf0,                         // mov r8, rsi            (zero page)
    0x66, 0xba, 0xf8, 0x03,                   // mov dx, 0x3f8
    0x41, 0x0f, 0xb6, 0x80, 0xe8, 0x01, 0x00, 0x00, // movzx eax, byte [r8+0x1e8] (e820_entries)
    0x04, 0x30,                               // add al, '0'
    0xee,                                     // out dx, al
    0x41, 0x8b, 0xb0, 0x28, 0x02, 0x00, 0x00, // mov esi, [r8+0x228]    (cmd_line_ptr)
    0xac,                                     // 1: lodsb
    0x84, 0xc0,                               // test al, al
    0x74, 0x03,                               // jz 2f
    0xee,                                     // out dx, al
    0xeb, 0xf8,                               // jmp 1b
    0xb8, 0x0b, 0x00, 0x00, 0x00,             // 2: mov eax, 0xb
    0xb9, 0x01, 0x00, 0x00, 0x00,             // mov ecx, 1
    0x0f, 0xa2,                               // cpuid                  (EBX: CPUs in the package)
    0x8d, 0x43, 0x30,                         // lea eax, [rbx+'0']
    0x66, 0xba, 0xf8, 0x03,                   // mov dx, 0x3f8
    0xee,                                     // out dx, al
    0x41, 0x8b, 0xb0, 0x18, 0x02, 0x00, 0x00, // mov esi, [r8+0x218]    (ramdisk_image)
    0xb9, 0x04, 0x00, 0x00, 0x00,             // mov ecx, 4
    0xac, 0xee, 0xff, 0xc9, 0x75, 0xfa,       // 3: lodsb; out dx, al; dec ecx; jnz 3b
    0x49, 0x8b, 0x70, 0x70,                   // mov rsi, [r8+0x70]     (acpi_rsdp_addr)
    0xb9, 0x08, 0x00, 0x00, 0x00,             // mov ecx, 8
    0xac, 0xee, 0xff, 0xc9, 0x75, 0xfa,       // 4: lodsb; out dx, al; dec ecx; jnz 4b
    0x66, 0xba, 0xc0, 0x03,                   // mov dx, 0x3c0          (sleep control)
    0xb0, 0x34,                               // mov al, SLP_EN | S5 << 2
    0xee,                                     // out dx, al
    0xf4,                                     // hlt (not reached)
];

fn boot_stand_in(image: Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (vmlinux, initramfs) = (dir.path().join("kernel"), dir.path().join("initramfs"));
    std::fs::write(&vmlinux, image).unwrap();
    std::fs::write(&initramfs, b"INIT and the rest of the archive").unwrap();
    let spec = LinuxSpec {
        vmlinux,
        initramfs: Some(initramfs),
        cmdline: "console=ttyS0 quiet".into(),
        shape: CpuShape { nodes: 1, llcs_per_node: 2, cores_per_llc: 2, threads_per_core: 1, min_llc_bits: 0 },
        memory: 16 << 20,
        cpuid: CpuidOptions { hide_xsave: true, hide_cx16: true },
    };
    let guest = LinuxVm::boot(&spec).expect("boot");
    let end = guest.watch(Duration::from_secs(20), |_| false);
    assert_eq!(end, Watch::Ended(GuestExit::PowerOff), "console: {:?}", guest.console_tail(5));
    // 3 e820 entries, the command line, 4 CPUs in CPUID 0xB, the initramfs' first bytes, the RSDP signature.
    assert_eq!(String::from_utf8_lossy(&guest.console.output.contents()), "3console=ttyS0 quiet4INITRSD PTR ");
}

#[test]
fn stand_in_kernel_sees_the_boot_protocol_and_powers_off() {
    if let KvmKind::Unavailable(why) = schedbox_kvm::detect() {
        eprintln!("SKIP stand_in_kernel_sees_the_boot_protocol: {why}");
        return;
    }
    boot_stand_in(elf64(KERNEL));
}

#[test]
fn a_bzimage_kernel_is_entered_at_its_64_bit_entry() {
    if let KvmKind::Unavailable(why) = schedbox_kvm::detect() {
        eprintln!("SKIP a_bzimage_kernel_is_entered_at_its_64_bit_entry: {why}");
        return;
    }
    boot_stand_in(bzimage(KERNEL));
}

#[test]
fn a_panic_on_the_console_ends_the_watch() {
    if let KvmKind::Unavailable(why) = schedbox_kvm::detect() {
        eprintln!("SKIP a_panic_on_the_console_ends_the_watch: {why}");
        return;
    }
    // Prints the zero-page command line (which holds the panic text) and spins.
    let mut code = KERNEL[..33].to_vec();
    code.extend_from_slice(&[0xeb, 0xfe]); // 2: jmp 2b
    let dir = tempfile::tempdir().unwrap();
    let vmlinux = dir.path().join("vmlinux");
    std::fs::write(&vmlinux, elf64(&code)).unwrap();
    let spec = LinuxSpec {
        vmlinux,
        initramfs: None,
        cmdline: "Kernel panic - not syncing: Attempted to kill init!\n".into(),
        shape: CpuShape { nodes: 1, llcs_per_node: 1, cores_per_llc: 1, threads_per_core: 1, min_llc_bits: 0 },
        memory: 16 << 20,
        cpuid: CpuidOptions::default(),
    };
    let guest = LinuxVm::boot(&spec).expect("boot");
    match guest.watch(Duration::from_secs(20), |_| false) {
        Watch::Ended(GuestExit::Panic(line)) => {
            assert_eq!(line, "Kernel panic - not syncing: Attempted to kill init!")
        }
        other => panic!("expected a panic, got {other:?}; console: {:?}", guest.console_tail(5)),
    }
    // A spinning guest that never reaches the condition times out (the boot watchdog).
    let quiet = LinuxSpec { cmdline: "quiet".into(), ..spec };
    let guest = LinuxVm::boot(&quiet).expect("boot");
    assert!(guest.console.output.wait_for(b"3quiet", Duration::from_secs(10)), "it runs");
    assert_eq!(guest.watch(Duration::from_millis(100), |out| out.ends_with(b"ready")), Watch::TimedOut);
    assert_eq!(guest.console.output.contents(), b"3quiet", "and spins silently");
}
