//! Build the Python and JavaScript scenarios as components, with the real
//! toolchains, unmodified and with their default flags.
//!
//! - Python: `componentize-py` (PyPI) in a virtual environment under
//!   `target/toolchains/py-venv`, installed with pip. Each
//!   `example-scenarios/python/<name>/app.py` (module `app`, with the helper
//!   `guest-sdk/python/schedbox_scenario.py` on its path) becomes
//!   `componentize-py -d wit -w scenario componentize app`.
//! - JavaScript: `componentize-js` and `jco` (npm; jco brings the `rolldown`
//!   bundler) under `target/toolchains/js`, installed with npm. Each
//!   `example-scenarios/js/<name>/app.js` (importing the helper as
//!   `"schedbox"`, `guest-sdk/js/schedbox.js`) is bundled into one module
//!   (the contract's imports left external) and componentized against world
//!   `scenario`.
//!
//! Examples go to `target/scenarios/{python,js}/<name>.wasm`; the failing
//! variants ([`FAILING`]) and `tests/fixtures/{python,js}/<name>` to
//! `target/scenarios/fixtures/{python,js}/<name>.wasm`, where the scenario
//! matrix does not run them.
//!
//! Both steps are idempotent and cached: a toolchain is installed once (a
//! stamp names its pinned version), and a component is rebuilt only when a
//! digest of its inputs (its sources, the helper, `wit/`, the toolchain
//! version) changed. Where a toolchain cannot be installed (no registry), the
//! build says so, writes the reason to `target/scenarios/<lang>/UNAVAILABLE`
//! (the golden tests print it as their SKIP reason) and goes on.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// componentize-py from PyPI.
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// componentize-js and jco from npm (jco depends on the rolldown bundler), and
/// the WASI shim componentize-js loads (named, or npm may prune it).
const NPM_PACKAGES: &[&str] = &[
    "@bytecodealliance/componentize-js@0.23.0",
    "@bytecodealliance/jco@1.35.0",
    "@bytecodealliance/preview2-shim@^0.17.4",
];

/// Example variants that fail on purpose: built with the fixtures.
pub const FAILING: &[&str] = &["cpuset-split-bad"];

/// The file recording why a language's scenarios were not built.
pub const UNAVAILABLE: &str = "UNAVAILABLE";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    Python,
    Js,
}

impl Lang {
    fn dir(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }
    fn entry(self) -> &'static str {
        match self {
            Lang::Python => "app.py",
            Lang::Js => "app.js",
        }
    }
    fn helper(self) -> &'static str {
        match self {
            Lang::Python => "guest-sdk/python/schedbox_scenario.py",
            Lang::Js => "guest-sdk/js/schedbox.js",
        }
    }
}

/// Builds every Python and JavaScript scenario; returns the written (or
/// up-to-date) paths. A missing toolchain is reported, not an error.
pub fn build_script_scenarios(root: &Path) -> Result<Vec<PathBuf>> {
    let mut built = Vec::new();
    for lang in [Lang::Python, Lang::Js] {
        let out_dir = root.join("target/scenarios").join(lang.dir());
        fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
        let marker = out_dir.join(UNAVAILABLE);
        let toolchain = match lang {
            Lang::Python => python_toolchain(root),
            Lang::Js => js_toolchain(root),
        };
        let tool = match toolchain {
            Ok(tool) => {
                let _ = fs::remove_file(&marker);
                tool
            }
            Err(e) => {
                let reason = format!("the {} toolchain could not be installed: {e:#}", lang.dir());
                eprintln!("SKIP building {} scenarios: {reason}", lang.dir());
                fs::write(&marker, &reason).with_context(|| format!("writing {}", marker.display()))?;
                continue;
            }
        };
        for (src_rel, fixtures) in
            [(format!("example-scenarios/{}", lang.dir()), false), (format!("tests/fixtures/{}", lang.dir()), true)]
        {
            let tree = root.join(&src_rel);
            if !tree.is_dir() {
                continue;
            }
            for name in scenario_dirs(&tree, lang)? {
                let out = if fixtures || FAILING.contains(&name.as_str()) {
                    root.join("target/scenarios/fixtures").join(lang.dir()).join(format!("{name}.wasm"))
                } else {
                    out_dir.join(format!("{name}.wasm"))
                };
                build_one(root, lang, &tool, &tree.join(&name), &name, &out)?;
                built.push(out);
            }
        }
    }
    Ok(built)
}

/// An installed toolchain: the command that componentizes, and its version
/// (part of every input digest).
struct Tool {
    dir: PathBuf,
    version: String,
}

fn python_toolchain(root: &Path) -> Result<Tool> {
    let dir = root.join("target/toolchains/py-venv");
    let stamp = dir.join(".schedbox-installed");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(COMPONENTIZE_PY) || !dir.join("bin/componentize-py").is_file()
    {
        let start = Instant::now();
        let python = which(&["python3"]).context("python3 is not installed (apt-get install python3 python3-venv)")?;
        let has_venv = |python: &str| {
            Command::new(python).args(["-c", "import venv, ensurepip"]).output().is_ok_and(|o| o.status.success())
        };
        if !has_venv(&python) {
            // Debian splits venv out of python3.
            crate::prereqs::apt_packages(&["python3-venv"]).context("python3 has no venv module")?;
        }
        crate::run(root, &python, &["-m", "venv", &dir.to_string_lossy()])?;
        let pip = dir.join("bin/pip");
        crate::run(
            root,
            &pip.to_string_lossy(),
            &["install", "--quiet", "--disable-pip-version-check", COMPONENTIZE_PY],
        )
        .context("pip could not install componentize-py (is the package registry reachable?)")?;
        fs::write(&stamp, COMPONENTIZE_PY)?;
        eprintln!("installed {COMPONENTIZE_PY} in {:.0} s", start.elapsed().as_secs_f64());
    }
    Ok(Tool { dir, version: COMPONENTIZE_PY.to_owned() })
}

fn js_toolchain(root: &Path) -> Result<Tool> {
    let dir = root.join("target/toolchains/js");
    let stamp = dir.join(".schedbox-installed");
    let want = NPM_PACKAGES.join(" ");
    let bins = ["componentize-js", "rolldown"].map(|b| dir.join("node_modules/.bin").join(b));
    if fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) || !bins.iter().all(|b| b.is_file()) {
        let start = Instant::now();
        if which(&["node"]).is_err() || which(&["npm"]).is_err() {
            crate::prereqs::apt_packages(&["nodejs", "npm"]).context("Node.js and npm are not installed")?;
        }
        node_is_recent_enough()?;
        let npm = which(&["npm"]).context("npm is not installed (apt-get install nodejs npm)")?;
        fs::create_dir_all(&dir)?;
        // Exact versions in a package.json of our own; npm resolves the rest.
        let deps: Vec<String> = NPM_PACKAGES
            .iter()
            .filter_map(|p| p.rsplit_once('@'))
            .map(|(name, version)| format!("{name:?}: {version:?}"))
            .collect();
        fs::write(
            dir.join("package.json"),
            format!("{{\"private\": true, \"dependencies\": {{{}}}}}\n", deps.join(", ")),
        )?;
        crate::run(&dir, &npm, &["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .context("npm could not install componentize-js and jco (is the package registry reachable?)")?;
        fs::write(&stamp, &want)?;
        eprintln!("installed {want} in {:.0} s", start.elapsed().as_secs_f64());
    }
    Ok(Tool { dir, version: want })
}

/// rolldown (the bundler jco brings) needs Node.js 20.19 or later; Debian 12 ships 18.
fn node_is_recent_enough() -> Result<()> {
    let out = Command::new("node").arg("--version").output().context("running node --version")?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let mut parts = version.trim_start_matches('v').split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (20, 19) {
        bail!("Node.js {version} is too old: the bundler needs 20.19 or later");
    }
    Ok(())
}

/// The first of `names` on `PATH`.
fn which(names: &[&str]) -> Result<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate.to_string_lossy().into_owned());
            }
        }
    }
    bail!("none of {names:?} on PATH")
}

/// The scenario directories (those holding the language's entry file) of `tree`, sorted.
fn scenario_dirs(tree: &Path, lang: Lang) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(tree).with_context(|| format!("reading {}", tree.display()))? {
        let path = entry?.path();
        if path.join(lang.entry()).is_file() {
            names.push(path.file_name().context("a directory has a name")?.to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// A digest of everything a component is built from.
fn inputs_digest(root: &Path, lang: Lang, tool: &Tool, src: &Path) -> Result<String> {
    let mut files = vec![root.join(lang.helper())];
    for dir in [root.join("wit"), src.to_owned()] {
        let mut entries: Vec<PathBuf> = fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        files.extend(entries.into_iter().filter(|p| p.is_file()));
    }
    let mut h = DefaultHasher::new();
    h.write(tool.version.as_bytes());
    for f in files {
        h.write(f.strip_prefix(root).unwrap_or(&f).to_string_lossy().as_bytes());
        h.write(&fs::read(&f).with_context(|| format!("reading {}", f.display()))?);
    }
    Ok(format!("{:016x}", h.finish()))
}

fn build_one(root: &Path, lang: Lang, tool: &Tool, src: &Path, name: &str, out: &Path) -> Result<()> {
    let digest = inputs_digest(root, lang, tool, src)?;
    let stamp = out.with_extension("inputs");
    if out.is_file() && fs::read_to_string(&stamp).ok().as_deref() == Some(digest.as_str()) {
        return Ok(());
    }
    fs::create_dir_all(out.parent().context("an output has a directory")?)?;
    // Written under a temporary name and renamed: a concurrent reader never sees half a component.
    let tmp = out.with_extension(format!("wasm.tmp{}", std::process::id()));
    let start = Instant::now();
    let wit = root.join("wit");
    let status = match lang {
        Lang::Python => {
            let sdk = root.join("guest-sdk/python");
            Command::new(tool.dir.join("bin/componentize-py"))
                .args(["-d".as_ref(), wit.as_os_str(), "-w".as_ref(), "scenario".as_ref(), "componentize".as_ref()])
                .args(["-p".as_ref(), src.as_os_str(), "-p".as_ref(), sdk.as_os_str()])
                .args(["app".as_ref(), "-o".as_ref(), tmp.as_os_str()])
                // No __pycache__ in the source tree.
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .current_dir(src)
                .status()
        }
        Lang::Js => {
            // One module: the scenario and the helper, the contract's imports external.
            let kind = if out.parent().and_then(Path::parent).is_some_and(|p| p.ends_with("fixtures")) {
                "fixture"
            } else {
                "example"
            };
            let bundle = root.join("target/toolchains/js/bundles").join(format!("{kind}-{name}.js"));
            fs::create_dir_all(bundle.parent().context("a bundle has a directory")?)?;
            let bin = tool.dir.join("node_modules/.bin");
            let helper = root.join(lang.helper());
            let config = bundle.with_extension("config.mjs");
            let js = |p: &Path| serde_json::to_string(&p.to_string_lossy()).unwrap_or_default();
            fs::write(
                &config,
                format!(
                    "export default {{ input: {}, external: [\"schedbox:scenario/ops@0.1.0\", \"schedbox:scenario/metrics@0.1.0\"], \
                     resolve: {{ alias: {{ schedbox: {} }} }}, output: {{ file: {}, format: \"esm\" }} }};\n",
                    js(&src.join("app.js")),
                    js(&helper),
                    js(&bundle)
                ),
            )?;
            let bundled = Command::new(bin.join("rolldown"))
                .arg("-c")
                .arg(&config)
                .current_dir(root)
                .output()
                .context("running rolldown")?;
            if !bundled.status.success() {
                bail!(
                    "bundling {} failed: {}{}",
                    src.display(),
                    String::from_utf8_lossy(&bundled.stdout),
                    String::from_utf8_lossy(&bundled.stderr)
                );
            }
            Command::new(bin.join("componentize-js"))
                .arg(&bundle)
                .args([
                    "--wit".as_ref(),
                    wit.as_os_str(),
                    "-n".as_ref(),
                    "scenario".as_ref(),
                    "-o".as_ref(),
                    tmp.as_os_str(),
                ])
                .current_dir(root)
                .status()
        }
    }
    .with_context(|| format!("starting the {} toolchain", lang.dir()))?;
    if !status.success() {
        let _ = fs::remove_file(&tmp);
        bail!("building the {} scenario {} failed with {status}", lang.dir(), src.display());
    }
    fs::rename(&tmp, out).with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    fs::write(&stamp, digest)?;
    let size = fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    eprintln!("built {} ({:.1} MB) in {:.0} s", out.display(), size as f64 / 1e6, start.elapsed().as_secs_f64());
    Ok(())
}
