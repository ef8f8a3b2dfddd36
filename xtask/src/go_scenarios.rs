//! Build the Go scenarios as components.
//!
//! Each directory `example-scenarios/go/<name>/` holds the `package main`
//! of one scenario (module `examples`, `example-scenarios/go/go.mod`); each
//! `tests/fixtures/go/<name>/` one sandbox fixture written in Go (module
//! `fixtures`). The build:
//!
//! 1. makes sure Go 1.25 is in the user's cache ([`toolchain`]: Debian's
//!    `golang-1.25-go` from trixie-backports, through a private apt state);
//! 2. generates the Go bindings of world `scenario` from `wit/` with the
//!    `wit-bindgen-go` library into `target/go/bindings/` (module
//!    `schedbox/internal/wit`, only visible to the SDK), and copies the Go
//!    runtime package the generator ships (`go.bytecodealliance.org/pkg`)
//!    out of the crate's sources into `target/go/go-pkg/`: nothing is
//!    fetched from a Go module proxy and nothing generated is checked in;
//! 3. writes `target/go/go.work`, which joins those two modules with the SDK
//!    (`guest-sdk/go`, module `schedbox`) and the scenario modules, so that
//!    every import resolves to a directory on disk;
//! 4. builds every scenario with `GOOS=wasip1 GOARCH=wasm go build
//!    -buildmode=c-shared -ldflags=-checklinkname=0` (a reactor: `_initialize`
//!    and the `go:wasmexport`ed `describe`/`run`/`check`), with `GOPROXY=off`
//!    and `GOTOOLCHAIN=local` so `go` never reaches the network;
//! 5. embeds the world's type information in the core module and turns it into
//!    a component with `wit-component` and the WASI preview1 *reactor* adapter.
//!
//! Examples go to `target/scenarios/go/<name>.wasm`, fixtures to
//! `target/scenarios/fixtures/go/<name>.wasm`.

mod toolchain;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use wit_bindgen_core::wit_parser::{Resolve, WorldId};
use wit_bindgen_core::Files;
use wit_component::StringEncoding;

pub use toolchain::goroot;

/// The world the scenarios implement.
const WORLD: &str = "scenario";

/// The import path prefix of the generated bindings. Under `schedbox/internal/`,
/// so only the SDK (module `schedbox`) may import them; the SDK itself holds
/// `schedbox/internal/wit/exports/export_wit_world`, which the generated
/// exports call.
const BINDINGS_MODULE: &str = "schedbox/internal/wit";

/// The module of the Go runtime package the generated code imports.
const GO_PKG_MODULE: &str = "go.bytecodealliance.org/pkg";

/// Everything Go-related the build writes, relative to the repository root:
/// `bindings/`, `go-pkg/`, `go.work`, the Go build cache and the core modules.
const GO_DIR: &str = "target/go";

/// The Go SDK (module `schedbox`), relative to the repository root.
const SDK_DIR: &str = "guest-sdk/go";

/// (sources, outputs) relative to the repository root; each source tree is a
/// Go module.
const TREES: &[(&str, &str)] =
    &[("example-scenarios/go", "target/scenarios/go"), ("tests/fixtures/go", "target/scenarios/fixtures/go")];

/// Build every Go scenario (and Go sandbox fixture) into a component. Returns
/// the written paths: the examples sorted by name, then the fixtures.
pub fn build_go_scenarios(root: &Path) -> Result<Vec<PathBuf>> {
    let go = Go::new(root)?;
    let (resolve, world) = scenario_world(root)?;
    prepare_workspace(root, &resolve, world)?;

    let mut outputs = Vec::new();
    for (src_rel, out_rel) in TREES {
        let tree = root.join(src_rel);
        if !tree.is_dir() {
            continue;
        }
        let out_dir = root.join(out_rel);
        fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
        let core_dir = go.dir.join("core").join(src_rel.replace('/', "_"));
        fs::create_dir_all(&core_dir).with_context(|| format!("creating {}", core_dir.display()))?;
        for name in scenario_dirs(&tree)? {
            let core = core_dir.join(format!("{name}.core.wasm"));
            go.build(&tree, &name, &core)?;
            let component = componentize(&core, &resolve, world)
                .with_context(|| format!("componentizing the Go scenario `{name}`"))?;
            let out = out_dir.join(format!("{name}.wasm"));
            fs::write(&out, component).with_context(|| format!("writing {}", out.display()))?;
            outputs.push(out);
        }
    }
    ensure!(!outputs.is_empty(), "no Go scenarios under {}", root.join(TREES[0].0).display());
    Ok(outputs)
}

/// `gofmt` and `go vet` over the SDK and every scenario tree (run after
/// [`build_go_scenarios`], which writes the bindings they import).
pub fn lint(root: &Path) -> Result<()> {
    let go = Go::new(root)?;
    let dirs: Vec<PathBuf> =
        [SDK_DIR].iter().chain(TREES.iter().map(|(src, _)| src)).map(|d| root.join(d)).filter(|d| d.is_dir()).collect();
    let mut gofmt = Command::new(go.goroot.join("bin/gofmt"));
    let out = gofmt.arg("-l").args(&dirs).output().context("running gofmt")?;
    ensure!(out.status.success(), "gofmt failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    let unformatted = String::from_utf8_lossy(&out.stdout);
    ensure!(unformatted.trim().is_empty(), "Go files need `gofmt -w`:\n{}", unformatted.trim_end());
    for dir in &dirs {
        go.run(dir, &["vet", "./..."])?;
    }
    Ok(())
}

/// The `go` command of the cached toolchain, confined to `target/go`.
struct Go {
    goroot: PathBuf,
    /// `target/go`.
    dir: PathBuf,
}

impl Go {
    fn new(root: &Path) -> Result<Self> {
        Ok(Go { goroot: toolchain::goroot()?, dir: root.join(GO_DIR) })
    }

    /// `go <args>` in `cwd`, for `wasip1/wasm`, offline, in the workspace of
    /// `target/go/go.work`; whatever the user's Go environment says.
    fn command(&self, cwd: &Path) -> Command {
        let mut cmd = Command::new(self.goroot.join("bin/go"));
        cmd.current_dir(cwd)
            .env("GOROOT", &self.goroot)
            .env("GOOS", "wasip1")
            .env("GOARCH", "wasm")
            .env("CGO_ENABLED", "0")
            .env("GOWORK", self.dir.join("go.work"))
            .env("GOCACHE", self.dir.join("cache"))
            .env("GOMODCACHE", self.dir.join("modcache"))
            .env("GOPATH", self.dir.join("gopath"))
            .env("GOENV", "off")
            // Go's telemetry counters go under the user config dir: keep them in target/go too.
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .env("GOFLAGS", "")
            .env("GOTOOLCHAIN", "local")
            .env("GOPROXY", "off")
            .env("GOSUMDB", "off");
        cmd
    }

    fn run(&self, cwd: &Path, args: &[&str]) -> Result<()> {
        let status = self.command(cwd).args(args).status().context("could not start the Go toolchain's `go`")?;
        ensure!(status.success(), "`go {}` in {} failed ({status})", args.join(" "), cwd.display());
        Ok(())
    }

    /// Build package `./<name>` of the module at `tree` into the core module `out`.
    fn build(&self, tree: &Path, name: &str, out: &Path) -> Result<()> {
        let out = out.to_str().context("the output path is not UTF-8")?;
        self.run(
            tree,
            &[
                "build",
                "-buildmode=c-shared",
                "-trimpath",
                "-ldflags=-checklinkname=0",
                "-o",
                out,
                &format!("./{name}"),
            ],
        )
        .with_context(|| format!("building the Go scenario `{name}`"))
    }
}

/// `wit/`, resolved, and its world `scenario`.
fn scenario_world(root: &Path) -> Result<(Resolve, WorldId)> {
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve.push_path(root.join("wit")).context("parsing wit/")?;
    let world = resolve.select_world(&[pkg], Some(WORLD)).context("selecting world `scenario`")?;
    Ok((resolve, world))
}

/// Write the bindings, the runtime package and `go.work` under `target/go/`.
fn prepare_workspace(root: &Path, resolve: &Resolve, world: WorldId) -> Result<()> {
    let dir = root.join(GO_DIR);
    let sdk = root.join(SDK_DIR);
    ensure!(sdk.join("go.mod").is_file(), "the Go SDK {} is missing", sdk.display());

    let mut files = Files::default();
    let opts = wit_bindgen_go::Opts {
        pkg_name: Some(BINDINGS_MODULE.into()),
        // Formatting would run whichever `gofmt` is on PATH, if any; unformatted
        // bindings build the same.
        format: wit_bindgen_go::Format::False,
        quiet: true,
        ..Default::default()
    };
    let mut resolve = resolve.clone();
    opts.build().generate(&mut resolve, world, &mut files).context("generating Go bindings")?;
    let mut bindings: Vec<(String, Vec<u8>)> =
        files.iter().map(|(name, contents)| (name.to_owned(), contents.to_vec())).collect();
    bindings.push(("go.mod".into(), go_mod(BINDINGS_MODULE).into_bytes()));
    replace_dir(&dir.join("bindings"), &bindings)?;

    replace_dir(&dir.join("go-pkg"), &go_pkg_files()?)?;

    let mut uses = vec!["./bindings".to_owned(), "./go-pkg".to_owned(), format!("../../{SDK_DIR}")];
    uses.extend(
        TREES.iter().filter(|(src, _)| root.join(src).join("go.mod").is_file()).map(|(src, _)| format!("../../{src}")),
    );
    let work = format!("go 1.25\n\nuse (\n{})\n", uses.iter().map(|u| format!("\t{u}\n")).collect::<String>());
    fs::write(dir.join("go.work"), work).context("writing target/go/go.work")
}

/// A `go.mod` for a module with no requirements of its own (the workspace
/// provides them).
fn go_mod(module: &str) -> String {
    format!("module {module}\n\ngo 1.25\n")
}

/// The Go package `wit-bindgen-go` ships in its crate (`src/pkg`, the
/// `go.bytecodealliance.org/pkg` the generated code imports), as (path,
/// contents): its `wit/` tree and a `go.mod`. Its own `go.mod` asks for a newer
/// Go than 1.25 although the code needs none, so ours replaces it.
fn go_pkg_files() -> Result<Vec<(String, Vec<u8>)>> {
    let version = wit_bindgen_go::remote_pkg_version();
    ensure!(
        version.starts_with(&format!("{GO_PKG_MODULE} ")),
        "wit-bindgen-go's generated code now imports {version}, not {GO_PKG_MODULE}"
    );
    let pkg = wit_bindgen_go_source()?.join("src/pkg");
    let mut files = vec![("go.mod".to_owned(), go_mod(GO_PKG_MODULE).into_bytes())];
    let mut pending = vec![pkg.join("wit")];
    while let Some(d) = pending.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if matches!(path.extension().and_then(OsStr::to_str), Some("go" | "s")) {
                let rel = path.strip_prefix(&pkg)?.to_str().context("a non-UTF-8 file name in go-pkg")?.to_owned();
                files.push((rel, fs::read(&path).with_context(|| format!("reading {}", path.display()))?));
            }
        }
    }
    ensure!(files.len() > 1, "no Go files under {}", pkg.join("wit").display());
    Ok(files)
}

/// The source directory of the `wit-bindgen-go` crate this xtask links, as
/// cargo resolved it (registry, vendor directory or patch alike).
fn wit_bindgen_go_source() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--manifest-path"])
        .arg(&manifest)
        .output()
        .context("running cargo metadata")?;
    ensure!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).context("reading cargo metadata")?;
    let found: Vec<&str> = meta["packages"]
        .as_array()
        .context("cargo metadata lists no packages")?
        .iter()
        .filter(|p| p["name"] == "wit-bindgen-go")
        .filter_map(|p| p["manifest_path"].as_str())
        .collect();
    match found[..] {
        [manifest] => Ok(Path::new(manifest).parent().context("a manifest path without a parent")?.to_owned()),
        _ => bail!("expected one wit-bindgen-go package in cargo metadata, found {found:?}"),
    }
}

/// Make `dir` hold exactly `files` (path relative to `dir`, contents).
fn replace_dir(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    for (name, contents) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The directories under `dir` holding at least one `.go` file, sorted by name.
fn scenario_dirs(dir: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            bail!("scenario directory {} is not UTF-8", path.display());
        };
        let has_go =
            fs::read_dir(&path)?.filter_map(|e| e.ok()).any(|e| e.path().extension().is_some_and(|x| x == "go"));
        if has_go {
            found.push(name);
        }
    }
    found.sort();
    Ok(found)
}

/// Embed the world's type information in the core module and wrap it into a
/// component with the preview1 reactor adapter.
fn componentize(core: &Path, resolve: &Resolve, world: WorldId) -> Result<Vec<u8>> {
    let mut module = fs::read(core).with_context(|| format!("reading {}", core.display()))?;
    wit_component::embed_component_metadata(&mut module, resolve, world, StringEncoding::UTF8, false)?;
    crate::component::reactor_component(&module)
}

#[cfg(test)]
mod tests {
    /// Builds the Go scenarios; `cargo test -p xtask -- --ignored` (fetches
    /// the toolchain into the user's cache first).
    #[test]
    #[ignore]
    fn builds_the_go_scenarios() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let t = std::time::Instant::now();
        let built = super::build_go_scenarios(root).unwrap();
        for p in &built {
            eprintln!("{} ({} bytes)", p.display(), std::fs::metadata(p).unwrap().len());
        }
        eprintln!("built in {:?}", t.elapsed());
    }
}
