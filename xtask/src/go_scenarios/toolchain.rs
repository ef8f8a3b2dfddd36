//! The Go toolchain: Debian's `golang-1.25` from trixie-backports, fetched into
//! the user's cache dir (`~/.cache/schedbox/toolchains/go-1.25`), never
//! installed system-wide.
//!
//! Like `schedbox kernel fetch` (`host/src/kernel/{apt,sources}.rs`), it runs
//! apt's ordinary client against a private state dir: its own sources list
//! (the system's Debian mirror, suite `trixie-backports`), lists, caches and
//! an empty dpkg status, and none of the system's update hooks. The mirror is
//! read from the system's apt sources at run time (through `apt-get
//! indextargets`); nothing the system owns is written. The packages are
//! `apt-get download`ed and unpacked with `dpkg-deb -x`; no maintainer script
//! runs. Once unpacked, this costs one `stat`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use schedbox_aptdir::AptDir;

/// The suite holding Go 1.25 for a Debian 12/13 host.
const SUITE: &str = "trixie-backports";

/// The compiler and the standard library it compiles against (`golang-1.25-go`
/// depends on nothing else).
const PACKAGES: &[&str] = &["golang-1.25-go", "golang-1.25-src"];

/// GOROOT inside the unpacked packages. Its `src`, `api`, ... are relative
/// symlinks into `usr/share/go-1.25`, so the whole tree is kept.
const GOROOT_IN_TREE: &str = "usr/lib/go-1.25";

/// The cache entry, under `<user cache>/schedbox/toolchains/`.
const ENTRY: &str = "go-1.25";

/// The key the Debian archive is signed with, when the system has it where
/// the `debian-archive-keyring` package puts it (else apt's trusted keys).
const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// The Go toolchain's GOROOT, fetched first if it is not in the cache.
pub fn goroot() -> Result<PathBuf> {
    let toolchains = toolchains_dir()?;
    let entry = toolchains.join(ENTRY);
    let goroot = entry.join(GOROOT_IN_TREE);
    if goroot.join("bin/go").is_file() {
        return Ok(goroot);
    }
    let started = Instant::now();
    eprintln!("fetching Go 1.25 ({}) from {SUITE} into {}", PACKAGES.join(", "), entry.display());
    let apt = PrivateApt { dir: AptDir::new(toolchains.join("apt")) };
    apt.prepare(&system_debian_mirror()?)?;
    apt.update()?;
    let debs = apt.download(PACKAGES)?;

    // Unpack beside the entry and rename it into place, so that an
    // interrupted fetch never leaves a half tree that looks complete.
    let staging = toolchains.join(format!(".{ENTRY}.staging"));
    if staging.exists() {
        fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    }
    for deb in &debs {
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&staging), "dpkg-deb -x")?;
    }
    ensure!(
        staging.join(GOROOT_IN_TREE).join("bin/go").is_file(),
        "{} holds no {GOROOT_IN_TREE}/bin/go; Debian's Go packaging changed",
        PACKAGES.join(" and ")
    );
    if entry.exists() {
        fs::remove_dir_all(&entry).with_context(|| format!("removing the incomplete {}", entry.display()))?;
    }
    fs::rename(&staging, &entry).with_context(|| format!("moving the Go toolchain to {}", entry.display()))?;
    for deb in &debs {
        fs::remove_file(deb).with_context(|| format!("removing {}", deb.display()))?;
    }
    eprintln!("Go 1.25 fetched and unpacked in {:.1} s", started.elapsed().as_secs_f64());
    Ok(goroot)
}

/// `$XDG_CACHE_HOME/schedbox/toolchains` (or the platform equivalent), the
/// cache root the host uses for kernels and components.
fn toolchains_dir() -> Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "schedbox")
        .context("no home directory to put the Go toolchain under; set HOME or XDG_CACHE_HOME")?;
    Ok(dirs.cache_dir().join("toolchains"))
}

/// The first Debian main archive among the system's apt sources, as apt
/// itself reads them.
fn system_debian_mirror() -> Result<String> {
    let out = Command::new("apt-get")
        .args(["indextargets", "--no-release-info", "--format", "$(REPO_URI) $(RELEASE) $(COMPONENT) $(IDENTIFIER)"])
        .env("LC_ALL", "C")
        .output()
        .context("the Go toolchain comes from Debian's archive through apt-get; is this a Debian-family host?")?;
    ensure!(out.status.success(), "apt-get indextargets failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    match debian_mirror(&String::from_utf8_lossy(&out.stdout)) {
        Some(uri) => Ok(uri),
        None => bail!(
            "no Debian archive among the system's apt sources (`apt-get indextargets` lists none with suite \
             bookworm/trixie/... and component main); add your Debian mirror to apt's sources, or install Go 1.25 \
             and unpack it into {}",
            toolchains_dir().map(|d| d.join(ENTRY).join(GOROOT_IN_TREE).display().to_string()).unwrap_or_default()
        ),
    }
}

/// Debian release codenames (and aliases) whose archives also serve
/// `trixie-backports`.
const DEBIAN_SUITES: &[&str] =
    &["bookworm", "trixie", "forky", "duke", "sid", "unstable", "testing", "stable", "oldstable"];

/// From `apt-get indextargets` lines (`<repo uri> <release> <component> <identifier>`),
/// the first Debian main archive: a Debian suite, component `main`, and not
/// the security, ports or snapshot archive (they carry no backports).
fn debian_mirror(indextargets: &str) -> Option<String> {
    indextargets.lines().find_map(|line| {
        let [uri, release, component, identifier] = line.split_whitespace().collect::<Vec<_>>()[..] else {
            return None;
        };
        let codename = release.split(['-', '/']).next().unwrap_or_default();
        let debian = DEBIAN_SUITES.contains(&codename) && !release.ends_with("-security");
        let archive =
            !(uri.contains("debian-security") || uri.contains("debian-ports") || uri.contains("/archive/debian/"));
        (identifier == "Packages" && component == "main" && debian && archive)
            .then(|| uri.trim_end_matches('/').to_owned())
    })
}

/// apt confined to a directory of its own, fetching from `SUITE`.
struct PrivateApt {
    dir: AptDir,
}

impl PrivateApt {
    /// The private dirs, and sources naming only `SUITE` on `mirror`.
    fn prepare(&self, mirror: &str) -> Result<()> {
        self.dir.create_layout().with_context(|| format!("creating {}", self.dir.path().display()))?;
        let path = self.dir.sources_dir().join(format!("{SUITE}.sources"));
        fs::write(&path, sources_entry(mirror, Path::new(DEBIAN_KEYRING).is_file()))
            .with_context(|| format!("writing {}", path.display()))
    }

    fn apt_get(&self) -> Command {
        self.dir.command(Path::new("apt-get"))
    }

    fn update(&self) -> Result<()> {
        run(self.apt_get().args(["-q", "update"]), &format!("apt-get update (private {SUITE} lists)"))
    }

    /// Download `packages` (their candidates in `SUITE`) into `debs/`; the .deb paths.
    fn download(&self, packages: &[&str]) -> Result<Vec<PathBuf>> {
        let debs = self.dir.debs_dir();
        for stale in fs::read_dir(&debs)?.filter_map(|e| e.ok().map(|e| e.path())) {
            fs::remove_file(&stale).with_context(|| format!("removing {}", stale.display()))?;
        }
        run(self.apt_get().current_dir(&debs).args(["-q", "download"]).args(packages), "apt-get download")?;
        packages
            .iter()
            .map(|name| {
                let prefix = format!("{name}_");
                fs::read_dir(&debs)?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .find(|p| p.file_name().and_then(|f| f.to_str()).is_some_and(|f| f.starts_with(&prefix)))
                    .with_context(|| format!("apt-get download left no .deb for {name} in {}", debs.display()))
            })
            .collect()
    }
}

/// A deb822 stanza for `SUITE` on `mirror`.
fn sources_entry(mirror: &str, keyring: bool) -> String {
    let mut s = format!("Types: deb\nURIs: {mirror}\nSuites: {SUITE}\nComponents: main\n");
    if keyring {
        s.push_str(&format!("Signed-By: {DEBIAN_KEYRING}\n"));
    }
    s
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("{what}: could not start {:?}", cmd.get_program()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!("{what} failed ({}): {}", out.status, stderr.trim().lines().last().unwrap_or("no message"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_is_the_first_debian_main_archive() {
        let out = "http://mirror.example/debian-security/ bookworm-security main Packages\n\
                   https://vendor.example/apt/ nodistro main Packages\n\
                   http://mirror.example/debian/ bookworm main DEP-11\n\
                   http://mirror.example/debian/ bookworm contrib Packages\n\
                   http://mirror.example/debian/ bookworm main Packages\n\
                   http://other.example/debian/ trixie main Packages\n";
        assert_eq!(debian_mirror(out).as_deref(), Some("http://mirror.example/debian"));
        assert_eq!(debian_mirror("https://vendor.example/apt/ nodistro main Packages\n"), None);
        assert_eq!(debian_mirror(""), None);
    }

    #[test]
    fn the_private_sources_name_only_backports() {
        let s = sources_entry("http://mirror.example/debian", true);
        assert_eq!(
            s,
            "Types: deb\nURIs: http://mirror.example/debian\nSuites: trixie-backports\nComponents: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        );
        assert!(!sources_entry("http://m.example/debian", false).contains("Signed-By"));
    }

    #[test]
    fn apt_is_confined_to_the_private_dir() {
        let o = PrivateApt { dir: AptDir::new("/private".into()) }.dir.options();
        for want in ["Dir::Etc::SourceList=/dev/null", "Dir::State=/private/state", "Dir::State::status=/dev/null"] {
            assert!(o.iter().any(|x| x == want), "{want} missing from {o:?}");
        }
        assert!(!o.iter().any(|x| x.contains("/etc/apt") || x.contains("/var/lib/apt")));
    }
}
