//! apt's ordinary client (`apt-get`, `apt-cache`) run against a private state dir
//! ([`schedbox_aptdir`]): update, policy, dependencies and downloads of the kernel
//! packages.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use schedbox_aptdir::AptDir;

use super::cache::PackageRecord;
use super::sources::DebianSource;

/// Which binaries to run (overridable so tests can stand in fakes).
#[derive(Clone, Debug)]
pub struct AptTools {
    pub apt_get: PathBuf,
    pub apt_cache: PathBuf,
    pub dpkg_deb: PathBuf,
}

impl Default for AptTools {
    fn default() -> Self {
        Self { apt_get: "apt-get".into(), apt_cache: "apt-cache".into(), dpkg_deb: "dpkg-deb".into() }
    }
}

pub(crate) struct PrivateApt {
    dir: AptDir,
    tools: AptTools,
}

impl PrivateApt {
    pub fn new(dir: PathBuf, tools: AptTools) -> Self {
        Self { dir: AptDir::new(dir), tools }
    }

    /// Create the private dirs and point the private sources at `suite` on `source`'s mirror.
    pub fn prepare(&self, source: &DebianSource, suite: &str) -> Result<()> {
        self.dir.create_layout().with_context(|| format!("creating {}", self.dir.path().display()))?;
        let path = self.dir.sources_dir().join(format!("{suite}.sources"));
        let text = source.to_deb822(suite);
        if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    pub fn debs_dir(&self) -> PathBuf {
        self.dir.debs_dir()
    }

    fn command(&self, tool: &Path) -> Command {
        self.dir.command(tool)
    }

    /// How old the private package lists are (`None`: never updated).
    pub fn lists_age(&self) -> Option<Duration> {
        let lists = fs::read_dir(self.dir.lists_dir()).ok()?;
        lists
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with("InRelease"))
            .filter_map(|e| e.metadata().ok()?.modified().ok())
            .max()
            .map(|t| SystemTime::now().duration_since(t).unwrap_or_default())
    }

    pub fn update(&self) -> Result<()> {
        let mut cmd = self.command(&self.tools.apt_get);
        cmd.args(["-q", "update"]);
        let out = run(&mut cmd, "apt-get update (private sid lists)")?;
        if out.contains("\nW: ") || out.contains("\nE: ") || out.starts_with("E: ") {
            tracing::warn!("apt-get update: {}", out.trim());
        }
        Ok(())
    }

    /// The names a package depends on (`Depends`/`PreDepends`; virtual names skipped).
    pub fn depends(&self, package: &str) -> Result<Vec<String>> {
        let mut cmd = self.command(&self.tools.apt_cache);
        cmd.args(["depends", package]);
        Ok(parse_depends(&run(&mut cmd, &format!("apt-cache depends {package}"))?))
    }

    /// The candidate version and .deb size of a package.
    pub fn show(&self, package: &str) -> Result<PackageRecord> {
        let mut cmd = self.command(&self.tools.apt_cache);
        cmd.args(["show", "--no-all-versions", package]);
        let out = run(&mut cmd, &format!("apt-cache show {package}"))?;
        parse_show(package, &out)
    }

    /// Download `packages` (exact versions) into `debs_dir()`; returns the .deb paths in
    /// order. While apt-get runs, `on_bytes` hears how many bytes have arrived so far
    /// (every 200 ms).
    pub fn download(&self, packages: &[&PackageRecord], on_bytes: &mut dyn FnMut(u64)) -> Result<Vec<PathBuf>> {
        let debs = self.debs_dir();
        let mut cmd = self.command(&self.tools.apt_get);
        cmd.current_dir(&debs).args(["-q", "download"]);
        cmd.args(packages.iter().map(|p| format!("{}={}", p.name, p.version)));
        run_watched(&mut cmd, "apt-get download", &mut || on_bytes(tree_bytes(&debs)))?;
        packages
            .iter()
            .map(|p| {
                find_deb(&debs, &p.name)
                    .with_context(|| format!("apt-get download left no .deb for {} in {}", p.name, debs.display()))
            })
            .collect()
    }

    /// `dpkg-deb -x deb dest`.
    pub fn extract(&self, deb: &Path, dest: &Path) -> Result<()> {
        let mut cmd = Command::new(&self.tools.dpkg_deb);
        cmd.arg("-x").arg(deb).arg(dest);
        run(&mut cmd, &format!("dpkg-deb -x {}", deb.display())).map(drop)
    }
}

fn find_deb(dir: &Path, name: &str) -> Option<PathBuf> {
    let prefix = format!("{name}_");
    fs::read_dir(dir).ok()?.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
        let f = p.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        f.starts_with(&prefix) && f.ends_with(".deb")
    })
}

/// [`run`], calling `tick` every 200 ms while the command runs.
fn run_watched(cmd: &mut Command, what: &str, tick: &mut dyn FnMut()) -> Result<String> {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let runner = scope.spawn(move || {
            let out = run(cmd, what);
            let _ = done_tx.send(());
            out
        });
        while done_rx.recv_timeout(std::time::Duration::from_millis(200)).is_err() {
            if runner.is_finished() {
                break;
            }
            tick();
        }
        tick();
        runner.join().unwrap_or_else(|_| Err(anyhow::anyhow!("{what}: the thread running it panicked")))
    })
}

/// Bytes of the files under `dir` (apt writes partial downloads below it too).
fn tree_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    tracing::debug!(?cmd, "running");
    let out = cmd.output().map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (is this a Debian-family host? `schedbox kernel fetch` needs apt-get, apt-cache and dpkg-deb; \
             elsewhere, pass the path of a bzImage built with CONFIG_SCHED_CLASS_EXT=y)"
        } else {
            ""
        };
        anyhow::anyhow!("{what}: cannot run {:?}: {e}{hint}", cmd.get_program())
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!("{what} failed ({}): {}", out.status, stderr.trim().lines().last().unwrap_or("no message"));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Ok(if stderr.trim().is_empty() { stdout } else { format!("{stdout}\n{stderr}") })
}

pub(crate) fn parse_depends(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            let (kind, name) = l.trim().trim_start_matches('|').split_once(':')?;
            let name = name.trim();
            (matches!(kind, "Depends" | "PreDepends") && !name.starts_with('<')).then(|| name.to_owned())
        })
        .collect()
}

pub(crate) fn parse_show(package: &str, out: &str) -> Result<PackageRecord> {
    let stanza = out.split("\n\n").next().unwrap_or_default();
    let field = |k: &str| stanza.lines().find_map(|l| l.strip_prefix(k)?.strip_prefix(':').map(str::trim));
    let (Some(version), Some(size)) = (field("Version"), field("Size")) else {
        bail!(
            "apt-cache show {package}: no Version/Size in its record; the private lists may be stale, run with refresh"
        );
    };
    let size = size.parse().with_context(|| format!("apt-cache show {package}: bad Size {size:?}"))?;
    Ok(PackageRecord { name: field("Package").unwrap_or(package).to_owned(), version: version.to_owned(), size })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_skips_virtuals_and_keeps_alternatives() {
        let out = "linux-image-7.2.13+deb14-amd64\n  PreDepends: linux-base\n |Depends: dracut\n  Depends: <linux-initramfs-tool>\n    dracut\n  Depends: linux-binary-7.2.13+deb14-amd64\n  Breaks: initramfs-tools\n  Suggests: grub-pc\n";
        assert_eq!(parse_depends(out), ["linux-base", "dracut", "linux-binary-7.2.13+deb14-amd64"]);
    }

    #[test]
    fn show_reads_the_first_record() {
        let out = "Package: linux-binary-7.2.13+deb14-amd64\nSource: linux-signed-amd64 (7.2.13+1)\nVersion: 7.2.13-1\nInstalled-Size: 14220\nSize: 14252084\n\nPackage: x\nVersion: 1\nSize: 2\n";
        let rec = parse_show("linux-binary-7.2.13+deb14-amd64", out).unwrap();
        assert_eq!((rec.version.as_str(), rec.size), ("7.2.13-1", 14252084));
        assert!(parse_show("p", "Package: p\n").unwrap_err().to_string().contains("refresh"));
    }

    #[test]
    fn options_confine_apt_to_the_private_dir() {
        let apt = PrivateApt::new("/private".into(), AptTools::default());
        let o = apt.dir.options();
        for want in ["Dir::Etc::SourceList=/dev/null", "Dir::State=/private/state", "Dir::State::status=/dev/null"] {
            assert!(o.iter().any(|x| x == want), "{want} missing from {o:?}");
        }
        assert!(o.iter().any(|x| x == "APT::Update::Post-Invoke-Success::="));
        assert!(!o.iter().any(|x| x.contains("/etc/apt") || x.contains("/var/lib/apt")));
    }
}
