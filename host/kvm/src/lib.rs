//! schedbox's own VMM on /dev/kvm (kvm-ioctls, vm-memory, vm-superio).
//!
//! A [`Vm`] owns memfd-backed guest RAM, port I/O and MMIO buses (16550s,
//! a virtio-mmio console), one thread per vCPU, and the freeze rendezvous
//! that parks them all. [`detect`] tells hardware KVM from software PVM,
//! which runs only purpose-built guests.

pub mod bus;
pub mod detect;
pub mod error;
pub mod guest_image;
pub mod linux;
pub mod memory;
pub mod serial;
pub mod vcpu;
pub mod virtio;
pub mod vm;
pub mod watch;
pub mod x86;

pub use bus::{Bus, BusDevice, DeviceAction, SharedDevice};
pub use detect::{detect, KvmKind};
pub use error::{KvmError, Result};
pub use kvm_bindings::{kvm_regs, kvm_sregs};
pub use kvm_ioctls::VcpuFd;
pub use memory::GuestMemory;
pub use serial::{SerialOutput, COM1, COM2};
pub use vcpu::{VcpuState, VmEvent};
pub use virtio::VIRTIO_CONSOLE;
pub use vm::{PauseReport, SerialPort, Vm, VmConfig};
pub use watch::{WatchHit, WatchKind, Watchpoint};
