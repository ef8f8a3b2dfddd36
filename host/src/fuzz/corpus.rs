//! A corpus directory: streams that showed new kernel-visible behaviour (a sched_ext
//! state transition, exit kind, console line kind or finding not seen before), one
//! `<name>.json` each, with `features.json` listing what the corpus has seen. Later runs
//! start by mutating these streams.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::op_model::OpStream;

pub struct Corpus {
    dir: PathBuf,
    pub streams: Vec<OpStream>,
    pub seen: BTreeSet<String>,
}

const FEATURES: &str = "features.json";

impl Corpus {
    /// Opens (creating) `dir` and loads its streams, in file-name order. Files that are
    /// not streams are skipped with a warning.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating the corpus directory {}", dir.display()))?;
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.ends_with(FEATURES))
            .collect();
        names.sort();
        let mut streams = Vec::new();
        for p in names {
            // A corpus entry is a replayed stream: checked as `run stream.json` checks one.
            let read = std::fs::read(&p).map_err(anyhow::Error::from).and_then(|b| {
                let s: OpStream = crate::validate::parse_replay(&b).map_err(anyhow::Error::msg)?;
                crate::validate::validate_replay(&s, crate::sandbox::SandboxLimits::default().max_arg_bytes)?;
                Ok(s)
            });
            match read {
                Ok(s) => streams.push(s),
                Err(e) => tracing::warn!("corpus: skipping {}: {e}", p.display()),
            }
        }
        let seen =
            std::fs::read(dir.join(FEATURES)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Ok(Self { dir: dir.to_owned(), streams, seen })
    }

    /// Adds `stream` when `features` holds one the corpus has not seen; the new ones.
    pub fn offer(&mut self, stream: &OpStream, features: &BTreeSet<String>) -> anyhow::Result<Vec<String>> {
        let new: Vec<String> = features.difference(&self.seen).cloned().collect();
        if new.is_empty() {
            return Ok(new);
        }
        self.seen.extend(new.iter().cloned());
        let path = self.dir.join(format!("{}.json", stream.scenario.name));
        write_atomic(&path, &serde_json::to_vec_pretty(stream)?)?;
        write_atomic(&self.dir.join(FEATURES), &serde_json::to_vec_pretty(&self.seen)?)?;
        self.streams.push(stream.clone());
        Ok(new)
    }
}

/// Writes `bytes` to `path` through a temporary file renamed over it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::generator::{generate, GenConfig};
    use crate::op_model::Topology;

    #[test]
    fn keeps_only_streams_with_new_features_and_reloads_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = Topology { numa_nodes: 1, llcs_per_node: 1, cores_per_llc: 2, threads_per_core: 1 };
        let cfg = GenConfig::new(t, None);
        let (a, b) = (generate(&cfg, 1, 0).stream, generate(&cfg, 1, 1).stream);
        let f = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
        let mut c = Corpus::open(dir.path()).expect("open");
        assert_eq!(c.offer(&a, &f(&["sched-ext:start->enabled"])).expect("offer"), vec!["sched-ext:start->enabled"]);
        assert!(c.offer(&b, &f(&["sched-ext:start->enabled"])).expect("offer").is_empty());
        let c = Corpus::open(dir.path()).expect("reopen");
        assert_eq!(c.streams, vec![a]);
        assert!(c.seen.contains("sched-ext:start->enabled"));
    }
}
