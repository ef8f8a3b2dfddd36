//! Helpers shared by the CLI test binaries.

use std::path::PathBuf;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A file `cargo xtask build-scenarios` built, relative to the repository root; panics
/// saying how to build it when it is missing.
pub fn built(rel: &str) -> PathBuf {
    let p = repo().join(rel);
    assert!(p.is_file(), "{} is missing: run `cargo xtask build-scenarios`", p.display());
    p
}
