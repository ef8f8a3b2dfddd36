//! Build the C scenarios as components.
//!
//! Each directory `example-scenarios/c/<name>/` holds the `.c` files of one
//! scenario; each `tests/fixtures/c/<name>/` one sandbox fixture written in C.
//! The build:
//!
//! 1. makes sure the Debian C toolchain is installed ([`APT_PACKAGES`]);
//! 2. generates the C bindings of world `scenario` from `wit/` into
//!    `target/c-bindings/` (`scenario.h`, `scenario.c` and the component type
//!    object `scenario_component_type.o`) with the `wit-bindgen-c` library:
//!    they are never checked in;
//! 3. compiles and links every scenario with clang for `wasm32-wasi` as a
//!    reactor (`-mexec-model=reactor`, no `_start`) against wasi-libc, with
//!    `guest-sdk/c/` and the bindings on the include path;
//! 4. turns the core module into a component with `wit-component` and the
//!    WASI preview1 *reactor* adapter. Adapter imports the scenario does not
//!    use are dropped, so a scenario that does no libc I/O imports nothing
//!    but `schedbox:scenario/ops`.
//!
//! Examples go to `target/scenarios/c/<name>.wasm`, fixtures to
//! `target/scenarios/fixtures/c/<name>.wasm`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use wit_bindgen_core::wit_parser::Resolve;
use wit_bindgen_core::Files;

/// The Debian (bookworm) packages of the C toolchain: the compiler, the wasm
/// linker, the wasm32 compiler-rt builtins and the WASI libc.
pub const APT_PACKAGES: &[&str] = &["clang-19", "lld-19", "libclang-rt-19-dev-wasm32", "wasi-libc"];

/// The compiler (the Debian package installs it under this name).
const CLANG: &str = "clang-19";

/// The target triple. wasi-libc from Debian lays out its sysroot for
/// `wasm32-wasi` (`/usr/include/wasm32-wasi`, `/usr/lib/wasm32-wasi`), which
/// is WASI preview 1 (`wasm32-wasip1` is the newer name of the same target).
const TRIPLE: &str = "wasm32-wasi";

/// The sysroot: Debian's wasi-libc installs multiarch-style under `/usr`.
const SYSROOT: &str = "/usr";

/// The world the scenarios implement, and so the bindings' file stem.
const WORLD: &str = "scenario";

/// Where the bindings are generated, relative to the repository root.
const BINDINGS_DIR: &str = "target/c-bindings";

/// Where the object files and core modules go, relative to the repository root.
const OBJ_DIR: &str = "target/c-build";

/// The C SDK header directory, relative to the repository root.
const SDK_DIR: &str = "guest-sdk/c";

/// (sources, outputs) relative to the repository root.
const TREES: &[(&str, &str)] =
    &[("example-scenarios/c", "target/scenarios/c"), ("tests/fixtures/c", "target/scenarios/fixtures/c")];

/// Build every C scenario (and C sandbox fixture) into a component. Returns
/// the written paths: the examples sorted by name, then the fixtures.
pub fn build_c_scenarios(root: &Path) -> Result<Vec<PathBuf>> {
    crate::prereqs::apt_packages(APT_PACKAGES)?;
    check_toolchain()?;
    let bindings = generate_bindings(root)?;
    let sdk = root.join(SDK_DIR);
    ensure!(sdk.join("schedbox.h").is_file(), "the C SDK header {} is missing", sdk.join("schedbox.h").display());

    // The bindings' glue compiles once and links into every scenario.
    let obj_dir = root.join(OBJ_DIR);
    fs::create_dir_all(&obj_dir).with_context(|| format!("creating {}", obj_dir.display()))?;
    let glue = obj_dir.join(format!("{WORLD}.o"));
    compile(&bindings.source, &glue, &[&bindings.dir, &sdk])?;

    let mut outputs = Vec::new();
    for (src_rel, out_rel) in TREES {
        let src_root = root.join(src_rel);
        if !src_root.is_dir() {
            continue;
        }
        let out_dir = root.join(out_rel);
        fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
        for (name, sources) in scenario_dirs(&src_root)? {
            let scenario_obj = obj_dir.join(src_rel.replace('/', "_")).join(&name);
            fs::create_dir_all(&scenario_obj)?;
            let mut objects = Vec::new();
            for src in &sources {
                let stem = src.file_stem().unwrap().to_string_lossy().into_owned();
                let obj = scenario_obj.join(format!("{stem}.o"));
                compile(src, &obj, &[&bindings.dir, &sdk])?;
                objects.push(obj);
            }
            objects.push(glue.clone());
            objects.push(bindings.type_object.clone());
            let core = scenario_obj.join(format!("{name}.core.wasm"));
            link(&objects, &core)?;
            let component = componentize(&core).with_context(|| format!("componentizing the C scenario `{name}`"))?;
            let out = out_dir.join(format!("{name}.wasm"));
            fs::write(&out, component).with_context(|| format!("writing {}", out.display()))?;
            outputs.push(out);
        }
    }
    ensure!(!outputs.is_empty(), "no C scenarios under {}", root.join(TREES[0].0).display());
    Ok(outputs)
}

/// The generated bindings.
struct Bindings {
    dir: PathBuf,
    /// `scenario.c`.
    source: PathBuf,
    /// `scenario_component_type.o`: the world's type information, in a custom
    /// section that `wit-component` reads.
    type_object: PathBuf,
}

/// Generate the C bindings of world `scenario` from `wit/` into
/// `target/c-bindings/`, writing only files whose contents changed (so
/// rebuilds keep their timestamps).
fn generate_bindings(root: &Path) -> Result<Bindings> {
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve.push_path(root.join("wit")).context("parsing wit/")?;
    let world = resolve.select_world(&[pkg], Some(WORLD)).context("selecting world `scenario`")?;
    let mut files = Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)
        .context("generating C bindings")?;

    let dir = root.join(BINDINGS_DIR);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, contents) in files.iter() {
        let path = dir.join(name);
        if fs::read(&path).ok().as_deref() != Some(contents) {
            fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let b = Bindings {
        source: dir.join(format!("{WORLD}.c")),
        type_object: dir.join(format!("{WORLD}_component_type.o")),
        dir,
    };
    for f in [&b.source, &b.type_object] {
        ensure!(f.is_file(), "wit-bindgen-c did not write {}", f.display());
    }
    Ok(b)
}

/// The directories under `dir` holding at least one `.c` file, sorted by
/// name, each with its `.c` files (sorted).
fn scenario_dirs(dir: &Path) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            bail!("scenario directory {} is not UTF-8", path.display());
        };
        let mut sources: Vec<PathBuf> = fs::read_dir(&path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "c"))
            .collect();
        sources.sort();
        if !sources.is_empty() {
            found.push((name, sources));
        }
    }
    found.sort();
    Ok(found)
}

/// Fail early, saying what to install, when clang cannot target wasm.
fn check_toolchain() -> Result<()> {
    let libc = Path::new(SYSROOT).join("lib").join(TRIPLE).join("libc.a");
    ensure!(libc.is_file(), "wasi-libc is missing ({} not found); `apt-get install wasi-libc`", libc.display());
    let ok = Command::new(CLANG).arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    ensure!(ok, "{CLANG} is not runnable; `apt-get install {}`", APT_PACKAGES.join(" "));
    Ok(())
}

/// The flags every compile and link shares.
fn target_flags(cmd: &mut Command) -> &mut Command {
    cmd.arg(format!("--target={TRIPLE}")).arg(format!("--sysroot={SYSROOT}"))
}

/// Compile one C file to an object.
fn compile(src: &Path, obj: &Path, includes: &[&Path]) -> Result<()> {
    let mut cmd = Command::new(CLANG);
    target_flags(&mut cmd).args(["-std=c11", "-O2", "-g", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]);
    // The generated bindings are not ours to keep warning-free.
    if src.file_name().is_some_and(|n| n.to_str() == Some(&format!("{WORLD}.c"))) {
        cmd.arg("-Wno-unused-parameter");
    }
    for inc in includes {
        cmd.arg("-I").arg(inc);
    }
    cmd.arg("-c").arg(src).arg("-o").arg(obj);
    run(&mut cmd, &format!("compiling {}", src.display()))
}

/// Link the objects into a reactor core module.
fn link(objects: &[PathBuf], out: &Path) -> Result<()> {
    let mut cmd = Command::new(CLANG);
    // A reactor: no `_start` (and no `main`); wasi-libc's `crt1-reactor.o`
    // provides `_initialize` for the static constructors instead.
    target_flags(&mut cmd).args(["-mexec-model=reactor", "-O2", "-g", "-Wl,--no-entry"]);
    // wasi-libc's default printf family cannot format `long double` and, to
    // say so, writes to stderr: that alone would import `fd_write` (and the
    // stdio close/seek) into every scenario using `snprintf`. The full
    // printf from this library has no such path, so scenarios that do no
    // I/O import no WASI at all.
    cmd.arg("-lc-printscan-long-double");
    cmd.args(objects).arg("-o").arg(out);
    run(&mut cmd, &format!("linking {}", out.display()))
}

/// Wrap the core module into a component with the preview1 reactor adapter.
fn componentize(core: &Path) -> Result<Vec<u8>> {
    let module = fs::read(core).with_context(|| format!("reading {}", core.display()))?;
    crate::component::reactor_component(&module)
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("{what}: could not start {cmd:?}"))?;
    ensure!(status.success(), "{what} failed ({status})");
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Builds the C scenarios; `cargo test -p xtask -- --ignored` (needs the
    /// toolchain, which it installs when run as root).
    #[test]
    #[ignore]
    fn builds_the_c_scenarios() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let t = std::time::Instant::now();
        let built = super::build_c_scenarios(root).unwrap();
        for p in &built {
            eprintln!("{} ({} bytes)", p.display(), std::fs::metadata(p).unwrap().len());
        }
        eprintln!("built in {:?}", t.elapsed());
    }
}
