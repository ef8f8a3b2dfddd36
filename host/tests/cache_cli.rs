//! `schedbox cache`: the listing names each cache; `gc` bounds them, least recently used first.

use std::process::Command;

fn schedbox(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_schedbox")).args(args).output().unwrap();
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn gc_bounds_the_initramfs_and_component_caches() {
    let root = tempfile::tempdir().unwrap();
    let initramfs = root.path().join("initramfs");
    let components = root.path().join("components-0123456789abcdef");
    let kernels = root.path().join("kernels");
    for d in [&initramfs, &components, &kernels] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mib = vec![0u8; 1 << 20];
    for i in 0..3 {
        std::fs::write(initramfs.join(format!("{i}.cpio")), &mib).unwrap();
        std::fs::write(components.join(format!("{i}.cwasm")), &mib).unwrap();
    }
    std::fs::write(kernels.join("vmlinux"), &mib).unwrap();
    let dir = root.path().to_str().unwrap();

    let (code, out) = schedbox(&["cache", "--cache-dir", dir]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("initramfs") && out.contains("3 entries") && out.contains("components-0123456789abcdef"),
        "{out}"
    );

    let (code, out) = schedbox(&["cache", "--cache-dir", dir, "gc", "--max-mib", "2"]);
    assert_eq!(code, Some(0), "{out}");
    let count = |d: &std::path::Path| std::fs::read_dir(d).unwrap().count();
    assert_eq!((count(&initramfs), count(&components)), (2, 2), "{out}");
    assert!(kernels.join("vmlinux").exists(), "kernels are not gc'd");

    let (code, out) = schedbox(&["cache", "--cache-dir", dir, "gc", "--max-mib", "0"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!((count(&initramfs), count(&components)), (0, 0), "{out}");
}
