//! Which device is the data channel. `schedbox.channel=PATH` names it; `auto` (or no
//! setting) means the virtio-serial port the host named `schedbox`, found through
//! `/sys/class/virtio-ports/*/name`. Ports and their device nodes appear asynchronously
//! after the driver binds (and a port's name arrives from the host after the port), so
//! the lookup polls.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The port name the host gives the channel (`virtserialport,name=schedbox`).
pub const PORT_NAME: &str = "schedbox";
/// How long to wait for the channel's device to appear.
pub const WAIT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(10);

/// The device node for `requested` (the `schedbox.channel=` value) under `root` (`/` in
/// the guest), waiting up to `wait` for it to appear.
pub fn resolve(root: &Path, requested: Option<&str>, wait: Duration) -> Result<PathBuf, String> {
    let deadline = Instant::now() + wait;
    match requested {
        Some(path) if path != "auto" => {
            let path = root.join(path.trim_start_matches('/'));
            // Opening it reports the error if it never shows up.
            while !path.exists() && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
            Ok(path)
        }
        _ => loop {
            if let Some(dev) = find_port(root, PORT_NAME).map(|p| root.join("dev").join(p)).filter(|d| d.exists()) {
                return Ok(dev);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no virtio port named {PORT_NAME:?} appeared within {} ms (ports seen: {:?}); \
                     the host must add `-device virtserialport,name={PORT_NAME}` and, on microvm, \
                     put virtio_mmio in the initramfs",
                    wait.as_millis(),
                    ports(root)
                ));
            }
            std::thread::sleep(POLL);
        },
    }
}

/// The port (e.g. `vport0p1`) whose `name` is `name`.
pub fn find_port(root: &Path, name: &str) -> Option<String> {
    ports(root).into_iter().find(|(_, n)| n == name).map(|(port, _)| port)
}

/// Every (port, name) sysfs shows, sorted by port.
fn ports(root: &Path) -> Vec<(String, String)> {
    let Ok(read) = std::fs::read_dir(root.join("sys/class/virtio-ports")) else { return Vec::new() };
    let mut out: Vec<(String, String)> = read
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let port = e.file_name().into_string().ok()?;
            let name = std::fs::read_to_string(e.path().join("name")).unwrap_or_default();
            Some((port, name.trim().to_owned()))
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("agent-channel-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("dev")).unwrap();
        dir
    }

    fn port(root: &Path, port: &str, name: &str) {
        let d = root.join("sys/class/virtio-ports").join(port);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("name"), name).unwrap();
    }

    #[test]
    fn finds_the_port_named_schedbox() {
        let root = tree("find");
        assert_eq!(find_port(&root, PORT_NAME), None);
        port(&root, "vport0p1", "org.qemu.guest_agent.0\n");
        port(&root, "vport0p2", "schedbox\n");
        port(&root, "vport0p3", ""); // named later by the host
        assert_eq!(find_port(&root, PORT_NAME).as_deref(), Some("vport0p2"));
        std::fs::write(root.join("dev/vport0p2"), b"").unwrap();
        assert_eq!(resolve(&root, Some("auto"), Duration::ZERO).unwrap(), root.join("dev/vport0p2"));
        assert_eq!(resolve(&root, None, Duration::ZERO).unwrap(), root.join("dev/vport0p2"));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn waits_for_the_device_node_and_times_out_with_what_it_saw() {
        let root = tree("wait");
        port(&root, "vport1p1", "other\n");
        let err = resolve(&root, None, Duration::from_millis(30)).unwrap_err();
        assert!(err.contains("vport1p1") && err.contains("other") && err.contains("30 ms"), "{err}");

        port(&root, "vport0p1", "schedbox\n");
        let node = root.join("dev/vport0p1");
        let writer = {
            let node = node.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                std::fs::write(node, b"").unwrap();
            })
        };
        assert_eq!(resolve(&root, Some("auto"), Duration::from_secs(5)).unwrap(), node);
        writer.join().unwrap();
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn an_explicit_path_is_used_as_given() {
        let root = tree("explicit");
        assert_eq!(resolve(&root, Some("/dev/ttyS1"), Duration::ZERO).unwrap(), root.join("dev/ttyS1"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
