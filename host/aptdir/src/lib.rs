//! apt's ordinary client (`apt-get`, `apt-cache`) confined to a private directory:
//! its own sources, lists, preferences and caches, an empty dpkg status, and none of
//! the system's update hooks. The system's apt configuration is still read (for
//! proxies and trusted keys) but nothing the system owns is written. Shared by the
//! kernel fetch and the build's toolchain fetch; what to put in `sources/` is theirs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A private apt directory.
#[derive(Clone, Debug)]
pub struct AptDir {
    dir: PathBuf,
}

impl AptDir {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Creates the layout apt expects (idempotent).
    pub fn create_layout(&self) -> std::io::Result<()> {
        for sub in ["sources", "preferences.d", "state/lists/partial", "cache/archives/partial", "log", "debs"] {
            std::fs::create_dir_all(self.dir.join(sub))?;
        }
        Ok(())
    }

    /// Where the deb822 `.sources` files go (apt reads only these).
    pub fn sources_dir(&self) -> PathBuf {
        self.dir.join("sources")
    }

    /// Where downloaded `.deb`s go.
    pub fn debs_dir(&self) -> PathBuf {
        self.dir.join("debs")
    }

    /// The package lists apt has fetched.
    pub fn lists_dir(&self) -> PathBuf {
        self.dir.join("state/lists")
    }

    /// The `-o` options that confine apt to the directory.
    pub fn options(&self) -> Vec<String> {
        let d = |sub: &str| self.dir.join(sub).display().to_string();
        let mut o = vec![
            "Dir::Etc::SourceList=/dev/null".to_owned(),
            format!("Dir::Etc::SourceParts={}", d("sources")),
            "Dir::Etc::Preferences=/dev/null".to_owned(),
            format!("Dir::Etc::PreferencesParts={}", d("preferences.d")),
            format!("Dir::State={}", d("state")),
            "Dir::State::status=/dev/null".to_owned(),
            format!("Dir::Cache={}", d("cache")),
            "Dir::Cache::pkgcache=pkgcache.bin".to_owned(),
            "Dir::Cache::srcpkgcache=srcpkgcache.bin".to_owned(),
            format!("Dir::Log={}", d("log")),
            // The system's hooks (appstream, packagekit) would touch system state.
            "APT::Update::Pre-Invoke::=".to_owned(),
            "APT::Update::Post-Invoke::=".to_owned(),
            "APT::Update::Post-Invoke-Success::=".to_owned(),
            // Only the Packages index is needed: no appstream metadata, no translations.
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".to_owned(),
            "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false".to_owned(),
            "Acquire::Languages=none".to_owned(),
        ];
        if running_as_root() {
            // The private dir is not readable by `_apt`; download as ourselves.
            o.push("APT::Sandbox::User=root".to_owned());
        }
        o
    }

    /// `tool` (e.g. `apt-get`) with the confining options, a C locale and no prompts.
    pub fn command(&self, tool: &Path) -> Command {
        let mut cmd = Command::new(tool);
        for opt in self.options() {
            cmd.arg("-o").arg(opt);
        }
        cmd.env("LC_ALL", "C").env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    }
}

/// Whether this process runs as root.
pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_place_apt_writes_is_inside_the_private_dir() {
        let apt = AptDir::new("/private".into());
        let o = apt.options();
        for key in ["Dir::Etc::SourceParts", "Dir::Etc::PreferencesParts", "Dir::State", "Dir::Cache", "Dir::Log"] {
            let v = o.iter().find_map(|x| x.strip_prefix(&format!("{key}="))).unwrap_or_else(|| panic!("{key}"));
            assert!(v.starts_with("/private/"), "{key}={v}");
        }
        assert!(o.contains(&"Dir::State::status=/dev/null".to_owned()));
        assert!(o.contains(&"Dir::Etc::SourceList=/dev/null".to_owned()));
    }
}
