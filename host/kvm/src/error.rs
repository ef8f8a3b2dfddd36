//! What can go wrong in the VMM, each variant saying what to do about it.

use std::io;

/// Errors of the VMM. Messages name the failing step and, where the user can
/// fix it, how.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    /// /dev/kvm does not exist.
    #[error(
        "/dev/kvm does not exist: enable virtualization (VT-x/AMD-V) in the firmware and load the \
         module (`modprobe kvm_intel` or `modprobe kvm_amd`), or use --backend qemu"
    )]
    NoDevice,
    /// /dev/kvm exists but this user may not open it.
    #[error(
        "/dev/kvm: permission denied: add your user to the `kvm` group (`sudo usermod -aG kvm $USER`, \
         then log in again) or grant access (`sudo setfacl -m u:$USER:rw /dev/kvm`), or use --backend qemu"
    )]
    PermissionDenied,
    /// Opening /dev/kvm failed for another reason.
    #[error("opening /dev/kvm failed: {0}")]
    Open(#[source] io::Error),
    /// The kernel's KVM API is not the stable version 12.
    #[error("/dev/kvm speaks KVM API version {0}, schedbox needs 12")]
    ApiVersion(i32),
    /// A KVM capability the VMM relies on is missing.
    #[error("KVM lacks the capability {0}; this kernel or hypervisor cannot run schedbox's VMM")]
    MissingCapability(&'static str),
    /// A KVM ioctl failed.
    #[error("{what} failed: {source}")]
    Ioctl {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// Guest memory could not be created or accessed.
    #[error("guest memory: {0}")]
    Memory(String),
    /// A device could not be created.
    #[error("creating a device: {0}")]
    Device(String),
    /// A vCPU thread could not be started.
    #[error("starting vCPU {index}: {source}")]
    Thread {
        index: usize,
        #[source]
        source: io::Error,
    },
    /// The vCPUs did not all park within the deadline.
    #[error("the freeze rendezvous timed out after {ms} ms: vCPUs {running:?} still running")]
    RendezvousTimeout { ms: u64, running: Vec<usize> },
    /// A request needs the vCPUs parked (see `Vm::pause`).
    #[error("vCPU {0} is running: pause the VM first")]
    NotParked(usize),
    /// The vCPU thread is gone (the VM stopped or the vCPU failed).
    #[error("vCPU {0} has exited")]
    VcpuGone(usize),
    /// Bad argument from the caller.
    #[error("{0}")]
    Invalid(String),
    /// A kernel image could not be loaded.
    #[error("loading the kernel: {0}")]
    Loader(String),
}

impl KvmError {
    /// Wraps a failed ioctl.
    pub(crate) fn ioctl(what: &'static str, e: vmm_sys_util::errno::Error) -> Self {
        KvmError::Ioctl { what, source: io::Error::from_raw_os_error(e.errno()) }
    }

    /// Maps an error opening /dev/kvm to the variant that says what to do.
    pub(crate) fn open(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => KvmError::NoDevice,
            io::ErrorKind::PermissionDenied => KvmError::PermissionDenied,
            _ => KvmError::Open(e),
        }
    }
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, KvmError>;
