//! Purpose-built guests on /dev/kvm (hardware or PVM): tiny real-mode programs
//! assembled by hand, each proving one VMM mechanism by its effect.
//! Each test prints why and returns early when /dev/kvm cannot be opened.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kvm_bindings::kvm_regs;
use schedbox_kvm::{
    x86::{set_long_mode_entry, set_real_mode_entry, write_long_mode_tables},
    BusDevice, DeviceAction, KvmKind, VcpuState, Vm, VmConfig, VmEvent, WatchKind, Watchpoint, COM1,
};

/// Guest code loads here.
const CODE: u64 = 0x1000;
/// 64 KiB of RAM: real-mode addresses at and above 0x10000 are MMIO.
const RAM: u64 = 0x10000;
const WAIT: Duration = Duration::from_secs(10);

fn kvm_present(test: &str) -> bool {
    match schedbox_kvm::detect() {
        KvmKind::Unavailable(why) => {
            eprintln!("SKIP {test}: {why}");
            false
        }
        kind => {
            eprintln!("{test}: /dev/kvm is {kind:?}");
            true
        }
    }
}

fn vm(vcpus: usize, code: &[u8]) -> Vm {
    let vm = Vm::new(VmConfig { vcpus, memory: RAM, irqchip: false }).expect("create VM");
    vm.memory().write(CODE, code).unwrap();
    vm
}

/// The host's supported CPUID, which a vCPU needs before it may enter long mode
/// (hardware KVM checks CR4's bits, PAE among them, against the guest's CPUID).
fn host_cpuid(vm: &Vm) -> kvm_bindings::CpuId {
    vm.kvm().get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES).expect("KVM_GET_SUPPORTED_CPUID")
}

/// Starts every vCPU in real mode at `CODE` with `gprs(i)` preset.
fn start(vm: &mut Vm, gprs: impl Fn(usize) -> kvm_regs) {
    vm.start(|i, fd| set_real_mode_entry(fd, CODE as u16, gprs(i))).expect("start vCPUs");
}

fn expect_event(vm: &Vm, want: impl Fn(&VmEvent) -> bool, what: &str) -> VmEvent {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while let Some(ev) = vm.next_event(deadline.saturating_duration_since(Instant::now())) {
        if want(&ev) {
            return ev;
        }
        seen.push(ev);
    }
    panic!("no {what} within {WAIT:?}; events seen: {seen:?}");
}

fn halted(ev: &VmEvent) -> bool {
    matches!(ev, VmEvent::Halted { .. })
}

/// Every write a device saw: `(offset, bytes)`.
type Writes = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

/// Records writes; reads return `base + offset`.
struct Probe {
    base: u8,
    writes: Writes,
}

impl BusDevice for Probe {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(self.base.wrapping_add(offset as u8));
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> DeviceAction {
        self.writes.lock().unwrap().push((offset, data.to_vec()));
        DeviceAction::None
    }
}

fn probe(base: u8) -> (Arc<Mutex<Probe>>, Writes) {
    let writes = Arc::new(Mutex::new(Vec::new()));
    (Arc::new(Mutex::new(Probe { base, writes: writes.clone() })), writes)
}

#[test]
fn serial_output_reaches_the_host() {
    if !kvm_present("serial_output_reaches_the_host") {
        return;
    }
    #[rustfmt::skip]
    let code = [
        0xBA, 0xF8, 0x03, // mov dx, 0x3f8
        0xB0, b'H', 0xEE, // mov al, 'H'; out dx, al
        0xB0, b'i', 0xEE, // mov al, 'i'; out dx, al
        0xB0, b'\n', 0xEE, // mov al, '\n'; out dx, al
        0xF4, // hlt
    ];
    let mut vm = vm(1, &code);
    let com1 = vm.add_serial(COM1.0, COM1.1).unwrap();
    start(&mut vm, |_| kvm_regs::default());
    expect_event(&vm, halted, "HLT");
    assert_eq!(com1.output.contents(), b"Hi\n");
}

#[test]
fn port_io_and_mmio_exits_reach_devices_and_guest_stores_reach_the_host() {
    if !kvm_present("port_io_and_mmio_exits") {
        return;
    }
    #[rustfmt::skip]
    let code = [
        0xBA, 0x10, 0x05, // mov dx, 0x510
        0xB0, 0x77, 0xEE, // mov al, 0x77; out dx, al
        0xEC,             // in al, dx
        0xA2, 0x00, 0x06, // mov [0x600], al
        0xB8, 0x00, 0x10, // mov ax, 0x1000
        0x8E, 0xC0,       // mov es, ax            (ES:0 = 0x10000, past RAM)
        0x26, 0xC6, 0x06, 0x00, 0x00, 0x5A, // mov byte [es:0], 0x5a
        0x26, 0xA0, 0x04, 0x00, // mov al, [es:4]
        0xA2, 0x01, 0x06, // mov [0x601], al
        0xF4,             // hlt
    ];
    let mut vm = vm(1, &code);
    let (port, port_writes) = probe(0xA0);
    let (mmio, mmio_writes) = probe(0x30);
    vm.add_pio(0x510, 1, port).unwrap();
    vm.add_mmio(0x10000, 0x1000, mmio).unwrap();
    start(&mut vm, |_| kvm_regs::default());
    expect_event(&vm, halted, "HLT");
    assert_eq!(*port_writes.lock().unwrap(), vec![(0, vec![0x77])], "OUT reached the port device");
    assert_eq!(*mmio_writes.lock().unwrap(), vec![(0, vec![0x5A])], "MMIO store reached the device");
    let mut got = [0u8; 2];
    vm.memory().read(0x600, &mut got).unwrap();
    assert_eq!(got, [0xA0, 0x34], "the guest stored what IN and the MMIO load returned");
}

/// Two vCPUs spin incrementing their own counter at `0x500 + 4 * i` (BX).
#[rustfmt::skip]
const SPIN: [u8; 5] = [
    0x66, 0xFF, 0x07, // inc dword [bx]
    0xEB, 0xFB,       // jmp back to the inc
];

fn counters(vm: &Vm) -> [u32; 2] {
    [vm.memory().read_u32(0x500).unwrap(), vm.memory().read_u32(0x504).unwrap()]
}

/// Waits until both counters pass `floor`.
fn both_advance(vm: &Vm, floor: [u32; 2]) -> [u32; 2] {
    let deadline = Instant::now() + WAIT;
    loop {
        let c = counters(vm);
        if c[0] > floor[0] && c[1] > floor[1] {
            return c;
        }
        assert!(Instant::now() < deadline, "counters stuck at {c:?} (floor {floor:?})");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn spin_regs(i: usize) -> kvm_regs {
    kvm_regs { rax: 0xCAFE, rsi: 0xBEEF + i as u64, rbx: 0x500 + 4 * i as u64, ..Default::default() }
}

#[test]
fn freeze_parks_both_vcpus_and_resume_restarts_them() {
    if !kvm_present("freeze_parks_both_vcpus") {
        return;
    }
    let mut vm = vm(2, &SPIN);
    start(&mut vm, spin_regs);
    let mut floor = both_advance(&vm, [0, 0]);
    for round in 0..20 {
        let report = vm.pause().expect("rendezvous");
        assert_eq!(report.states, vec![VcpuState::Parked; 2], "round {round}");
        let frozen = counters(&vm);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(counters(&vm), frozen, "round {round}: a parked vCPU made progress");
        assert!(frozen[0] >= floor[0] && frozen[1] >= floor[1]);
        vm.resume().unwrap();
        floor = both_advance(&vm, frozen);
    }
    vm.stop();
    assert_eq!(vm.states(), vec![VcpuState::Exited; 2]);
}

#[test]
fn registers_of_a_parked_vcpu_are_readable() {
    if !kvm_present("registers_of_a_parked_vcpu") {
        return;
    }
    let mut vm = vm(2, &SPIN);
    start(&mut vm, spin_regs);
    both_advance(&vm, [0, 0]);
    assert!(matches!(vm.registers(0), Err(schedbox_kvm::KvmError::NotParked(0))), "registers need a pause");
    vm.pause().unwrap();
    for i in 0..2 {
        let (regs, sregs) = vm.registers(i).unwrap();
        assert_eq!((regs.rax, regs.rsi, regs.rbx), (0xCAFE, 0xBEEF + i as u64, 0x500 + 4 * i as u64));
        assert!((CODE..CODE + SPIN.len() as u64).contains(&regs.rip), "vCPU {i} RIP {:#x} outside the loop", regs.rip);
        assert_eq!((sregs.cs.base, sregs.cr0 & 1), (0, 0), "real mode at base 0");
    }
    vm.resume().unwrap();
}

#[test]
fn long_mode_guest_sees_host_stores_and_a_watchpoint_fires_on_its_write() {
    let kind = schedbox_kvm::detect();
    if !kvm_present("long_mode_watchpoint") {
        return;
    }
    #[rustfmt::skip]
    let code = [
        0x80, 0x3C, 0x25, 0x00, 0x07, 0x00, 0x00, 0x00, // cmp byte [0x700], 0
        0x74, 0xF6,                                     // je back to the cmp
        0x66, 0xC7, 0x04, 0x25, 0x08, 0x06, 0x00, 0x00, 0x42, 0x42, // mov word [0x608], 0x4242
        0xF4,                                           // hlt
    ];
    let mut vm = vm(1, &code);
    write_long_mode_tables(vm.memory()).unwrap();
    let cpuid = host_cpuid(&vm);
    vm.start(|_, fd| {
        fd.set_cpuid2(&cpuid).map_err(|e| schedbox_kvm::KvmError::Invalid(format!("KVM_SET_CPUID2: {e}")))?;
        set_long_mode_entry(fd, kvm_regs { rip: CODE, ..Default::default() })
    })
    .unwrap();
    vm.pause().unwrap();
    let (regs, sregs) = vm.registers(0).unwrap();
    assert_eq!(sregs.efer & 0x400, 0x400, "long mode active (EFER.LMA)");
    assert!((CODE..CODE + 10).contains(&regs.rip), "spinning on the flag, RIP {:#x}", regs.rip);
    let watch = Watchpoint { slot: 1, addr: 0x608, len: 2, kind: WatchKind::Write };
    let armed = match vm.set_watchpoints(&[watch]) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("SKIP watchpoint part: KVM_SET_GUEST_DEBUG is not supported here: {e}");
            false
        }
    };
    let mut word = [0u8; 2];
    vm.memory().read(0x608, &mut word).unwrap();
    assert_eq!(word, [0, 0], "the guest waits for the host");
    vm.memory().write(0x700, &[1]).unwrap();
    vm.resume().unwrap();
    let mut hits = Vec::new();
    while let VmEvent::Watchpoint(hit) = expect_event(&vm, |e| halted(e) || matches!(e, VmEvent::Watchpoint(_)), "HLT")
    {
        hits.push(hit);
    }
    match (armed, hits.as_slice(), &kind) {
        (true, [hit], _) => {
            assert_eq!(hit.slots & 0b0010, 0b0010, "DR6 names slot 1: {hit:?}");
            assert_eq!(hit.rip, CODE + 20, "the trap lands after the store: {hit:?}");
        }
        (true, [], KvmKind::Pvm) => eprintln!(
            "SKIP watchpoint part: PVM accepts KVM_SET_GUEST_DEBUG with hardware breakpoints but never reports a \
             DR0-3 hit (its single-step exits do arrive)"
        ),
        (false, [], _) => {}
        (_, hits, _) => panic!("watchpoint armed={armed} on {kind:?}: expected one hit, got {hits:?}"),
    }
    vm.memory().read(0x608, &mut word).unwrap();
    assert_eq!(word, [0x42, 0x42], "the guest saw the host's store and wrote back");
}

#[test]
fn host_bytes_sent_on_the_serial_port_reach_the_guest() {
    if !kvm_present("serial_input") {
        return;
    }
    #[rustfmt::skip]
    let code = [
        0xBA, 0xFD, 0x03, // mov dx, 0x3fd (LSR)
        0xEC,             // in al, dx
        0xA8, 0x01,       // test al, 1 (data ready)
        0x74, 0xFB,       // jz back to the in
        0xBA, 0xF8, 0x03, // mov dx, 0x3f8
        0xEC,             // in al, dx
        0xFE, 0xC0,       // inc al
        0xEE,             // out dx, al
        0xF4,             // hlt
    ];
    let mut vm = vm(1, &code);
    let com1 = vm.add_serial(COM1.0, COM1.1).unwrap();
    start(&mut vm, |_| kvm_regs::default());
    assert_eq!(com1.send(b"A"), 1);
    expect_event(&vm, halted, "HLT");
    assert_eq!(com1.output.contents(), b"B", "the guest read the host's byte and echoed it plus one");
}

#[test]
fn a_triple_fault_is_reported() {
    if !kvm_present("triple_fault") {
        return;
    }
    // No IDT (limit 0): #UD cannot be delivered, nor the #GP or #DF after it.
    let code = [0x0F, 0x0B]; // ud2
    let mut vm = vm(1, &code);
    write_long_mode_tables(vm.memory()).unwrap();
    let cpuid = host_cpuid(&vm);
    vm.start(|_, fd| {
        fd.set_cpuid2(&cpuid).map_err(|e| schedbox_kvm::KvmError::Invalid(format!("KVM_SET_CPUID2: {e}")))?;
        set_long_mode_entry(fd, kvm_regs { rip: CODE, ..Default::default() })
    })
    .unwrap();
    let ev = expect_event(&vm, |e| !matches!(e, VmEvent::Watchpoint(_)), "an exit");
    assert_eq!(ev, VmEvent::TripleFault { vcpu: 0 });
    let deadline = Instant::now() + WAIT;
    while vm.states() != vec![VcpuState::Exited] {
        assert!(Instant::now() < deadline, "the vCPU thread did not end: {:?}", vm.states());
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn the_guest_clock_does_not_advance_while_frozen() {
    if !kvm_present("guest_clock_frozen") {
        return;
    }
    let mut vm = vm(2, &SPIN);
    start(&mut vm, spin_regs);
    vm.pause().unwrap();
    let Some(before) = vm.guest_clock_ns() else {
        eprintln!("SKIP guest_clock_frozen: KVM_GET_CLOCK is not available here");
        return;
    };
    let frozen = Duration::from_millis(400);
    std::thread::sleep(frozen);
    let ran = Instant::now();
    vm.resume().unwrap();
    vm.pause().unwrap();
    let ran = ran.elapsed();
    let advanced = Duration::from_nanos(vm.guest_clock_ns().unwrap() - before);
    // Without the restore the clock would have moved by `frozen + ran`.
    assert!(advanced < frozen / 2 + ran, "guest clock moved {advanced:?} over {frozen:?} frozen + {ran:?} running");
}

#[test]
fn vcpu_ids_become_the_in_kernel_lapic_ids() {
    if !kvm_present("vcpu_ids_become_lapic_ids") {
        return;
    }
    #[rustfmt::skip]
    let code = [
        0xa1, 0x20, 0x00, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x00, // mov eax, [0xfee00020] (LAPIC ID register)
        0x89, 0x03,                                           // mov [rbx], eax
        0xeb, 0xfe,                                           // spin
    ];
    let mut vm = Vm::new(VmConfig { vcpus: 2, memory: RAM, irqchip: true }).expect("create VM");
    vm.memory().write(CODE, &code).unwrap();
    write_long_mode_tables(vm.memory()).unwrap();
    vm.set_vcpu_ids(vec![0, 5]).unwrap();
    let cpuid = host_cpuid(&vm);
    vm.start(|i, fd| {
        fd.set_cpuid2(&cpuid).map_err(|e| schedbox_kvm::KvmError::Invalid(format!("KVM_SET_CPUID2: {e}")))?;
        // The AP runs at once instead of waiting for INIT/SIPI.
        let runnable = kvm_bindings::kvm_mp_state { mp_state: kvm_bindings::KVM_MP_STATE_RUNNABLE };
        fd.set_mp_state(runnable).map_err(|e| schedbox_kvm::KvmError::Invalid(format!("KVM_SET_MP_STATE: {e}")))?;
        set_long_mode_entry(fd, kvm_regs { rip: CODE, rbx: 0x500 + 4 * i as u64, ..Default::default() })
    })
    .unwrap();
    let deadline = Instant::now() + WAIT;
    // Slot 1 starts at zero and must become 5 << 24; slot 0 is written as zero.
    while vm.memory().read_u32(0x504).unwrap() == 0 {
        assert!(Instant::now() < deadline, "vCPU 1 never stored its LAPIC ID");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(vm.memory().read_u32(0x504).unwrap() >> 24, 5);
    assert_eq!(vm.memory().read_u32(0x500).unwrap() >> 24, 0);
}
