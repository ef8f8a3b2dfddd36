//! What kind of KVM this host has: hardware, software PVM, or none.
//!
//! PVM (module `kvm_pvm`) exposes the same /dev/kvm API as hardware KVM and
//! runs small purpose-built guests, but a stock kernel does not boot on it,
//! so callers that boot Linux pick another backend there.

use std::fs::OpenOptions;
use std::path::Path;

use crate::error::KvmError;

/// The flavour of /dev/kvm on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvmKind {
    /// Hardware virtualization (kvm_intel / kvm_amd): boots a stock kernel.
    Hardware,
    /// Software PVM (`kvm_pvm` loaded): purpose-built guests only.
    Pvm,
    /// No usable /dev/kvm; the string says why and what to do.
    Unavailable(String),
}

impl KvmKind {
    /// Whether /dev/kvm can run guests at all.
    pub fn usable(&self) -> bool {
        !matches!(self, KvmKind::Unavailable(_))
    }
}

/// Probes /dev/kvm (opening it read-write) and the loaded modules.
pub fn detect() -> KvmKind {
    detect_at(Path::new("/dev/kvm"), Path::new("/sys/module"))
}

/// [`detect`] with the device and sysfs module directory given (for tests).
pub fn detect_at(dev: &Path, sys_module: &Path) -> KvmKind {
    if let Err(e) = OpenOptions::new().read(true).write(true).open(dev) {
        return KvmKind::Unavailable(KvmError::open(e).to_string());
    }
    if sys_module.join("kvm_pvm").exists() {
        KvmKind::Pvm
    } else {
        KvmKind::Hardware
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let kind = detect_at(&dir.path().join("kvm"), dir.path());
        let KvmKind::Unavailable(why) = kind else { panic!("expected unavailable, got {kind:?}") };
        assert!(why.contains("modprobe"), "{why}");
    }

    #[test]
    fn pvm_module_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let dev = dir.path().join("kvm");
        std::fs::write(&dev, b"").unwrap();
        assert_eq!(detect_at(&dev, dir.path()), KvmKind::Hardware);
        std::fs::create_dir(dir.path().join("kvm_pvm")).unwrap();
        assert_eq!(detect_at(&dev, dir.path()), KvmKind::Pvm);
    }
}
