//! Compiles `bpf/scx_fifo.bpf.c` to a BPF object that `src/main.rs` embeds.
//! Needs clang with the BPF target (`clang-16`, else `clang`) and libbpf's
//! headers (`libbpf-dev`): `cargo xtask setup` installs both.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "bpf/scx_fifo.bpf.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=BPF_CLANG");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("scx_fifo.bpf.o");
    let candidates: Vec<String> = match std::env::var("BPF_CLANG") {
        Ok(c) => vec![c],
        Err(_) => vec!["clang-16".into(), "clang".into()],
    };
    let mut tried = Vec::new();
    for clang in &candidates {
        let status = Command::new(clang)
            .args([
                "-target",
                "bpf",
                "-mcpu=v3",
                "-O2",
                "-g",
                "-D__TARGET_ARCH_x86",
                "-Wall",
                "-Werror",
                "-c",
                src,
                "-o",
            ])
            .arg(&out)
            .status();
        match status {
            Ok(s) if s.success() => return,
            Ok(s) => panic!("`{clang}` failed to compile {src} ({s}); see its messages above"),
            Err(e) => tried.push(format!("{clang}: {e}")),
        }
    }
    panic!(
        "no clang to compile the fixture scheduler's BPF program ({}): run `cargo xtask setup` \
         (installs clang-16 and libbpf-dev) or set BPF_CLANG",
        tried.join("; ")
    );
}
