//! The block device of the block I/O work types: the kernel's null_blk, loaded on the
//! first spawn that needs it (the host stages `null_blk.ko` and `configfs.ko` under
//! [`modules::ON_DEMAND_DIR`]; a kernel with null_blk built in already has the device).
//!
//! The device is a real block-layer device: multi-queue, with every request completed
//! from a high-resolution timer interrupt 50 µs after it was submitted, so
//! each request blocks its worker as a disk would, the I/O scheduler and the block
//! statistics (`/sys/block/nullb0/stat`, `/proc/<pid>/io`) see it, and no host disk is
//! involved. It stores no data (reads return zeroes).

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::modules;

/// The device node the workers open.
pub const DEVICE: &str = "/dev/nullb0";
/// `null_blk` parameters: one 4 GiB device, multi-queue, completions from an hrtimer
/// (`irqmode=2`) 50 µs after submission, 4 KiB logical blocks.
const PARAMS: &std::ffi::CStr =
    c"nr_devices=1 queue_mode=2 irqmode=2 completion_nsec=50000 gb=4 bs=4096 hw_queue_depth=64";
/// How long devtmpfs may take to show the node after the module loaded.
const NODE_WAIT: Duration = Duration::from_secs(5);

/// Makes sure [`DEVICE`] exists, loading null_blk the first time; the outcome of the
/// first call is kept (a failure names what is missing and what to do).
pub fn ensure() -> Result<&'static str, String> {
    static ONCE: OnceLock<Result<(), String>> = OnceLock::new();
    ONCE.get_or_init(|| bring_up(Path::new(DEVICE), Path::new(modules::ON_DEMAND_DIR))).clone().map(|()| DEVICE)
}

fn bring_up(device: &Path, dir: &Path) -> Result<(), String> {
    if device.exists() {
        return Ok(());
    }
    // null_blk needs configfs; a kernel with it built in has no file for it here.
    if let Err(e) = modules::load_named(dir, "configfs", c"") {
        return Err(format!("loading configfs (null_blk needs it) for the block I/O work types: {e}"));
    }
    match modules::load_named(dir, "null_blk", PARAMS) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(format!(
                "the block I/O work types need the kernel's null_blk device, but {} is absent and no \
                 null_blk module was staged: use a kernel whose modules package has \
                 drivers/block/null_blk (`schedbox kernel fetch --modules`) or one with null_blk built in",
                device.display()
            ))
        }
        Err(e) => return Err(format!("loading null_blk for the block I/O work types: {e}")),
    }
    let deadline = Instant::now() + NODE_WAIT;
    while !device.exists() {
        if Instant::now() >= deadline {
            return Err(format!("null_blk loaded, but {} did not appear within {NODE_WAIT:?}", device.display()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_module_names_the_device_and_the_fix() {
        let dir = std::env::temp_dir().join(format!("agent-blockdev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = bring_up(&dir.join("nullb0"), &dir).unwrap_err();
        assert!(e.contains("nullb0 is absent and no null_blk module was staged"), "{e}");
        assert!(e.contains("schedbox kernel fetch --modules"), "{e}");
        // A device that exists needs no module.
        let dev = dir.join("present");
        std::fs::write(&dev, b"").unwrap();
        bring_up(&dev, &dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
