//! Compiles `bpf/scx_fifo.bpf.c` to the BPF objects that `src/main.rs` embeds: the
//! fixture (`scx_fifo.bpf.o`) and, with `-DSCHEDBOX_PLANTED`, the fixture with a
//! planted bug (`scx_planted.bpf.o`, the loader's `--planted`).
//! Needs clang with the BPF target (`clang-16`, else `clang`) and libbpf's
//! headers (`libbpf-dev`): `cargo xtask setup` installs both.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "bpf/scx_fifo.bpf.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=BPF_CLANG");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = find_clang(src);
    compile(&clang, src, &[], &out_dir.join("scx_fifo.bpf.o"));
    compile(&clang, src, &["-DSCHEDBOX_PLANTED"], &out_dir.join("scx_planted.bpf.o"));
}

fn compile(clang: &str, src: &str, defines: &[&str], out: &std::path::Path) {
    let status = Command::new(clang)
        .args(["-target", "bpf", "-mcpu=v3", "-O2", "-g", "-D__TARGET_ARCH_x86", "-Wall", "-Werror"])
        .args(defines)
        .args(["-c", src, "-o"])
        .arg(out)
        .status()
        .unwrap_or_else(|e| panic!("`{clang}` did not start: {e}"));
    if !status.success() {
        panic!("`{clang}` failed to compile {src} {} ({status}); see its messages above", defines.join(" "));
    }
}

/// The first clang that runs: `BPF_CLANG`, else `clang-16`, else `clang`.
fn find_clang(src: &str) -> String {
    let candidates: Vec<String> = match std::env::var("BPF_CLANG") {
        Ok(c) => vec![c],
        Err(_) => vec!["clang-16".into(), "clang".into()],
    };
    let mut tried = Vec::new();
    for clang in &candidates {
        match Command::new(clang).arg("--version").stdout(std::process::Stdio::null()).status() {
            Ok(s) if s.success() => return clang.clone(),
            Ok(s) => tried.push(format!("{clang}: --version {s}")),
            Err(e) => tried.push(format!("{clang}: {e}")),
        }
    }
    panic!(
        "no clang to compile the fixture scheduler's BPF program {src} ({}): run `cargo xtask setup` \
         (installs clang-16 and libbpf-dev) or set BPF_CLANG",
        tried.join("; ")
    );
}
