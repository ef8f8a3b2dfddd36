//! Records the git commit the binary is built from, for `schedbox --version`
//! (`SCHEDBOX_GIT_COMMIT` in the environment overrides it; "unknown" outside a
//! git checkout). It reruns only when the package's files change, so a commit
//! that touches nothing here does not rebuild the crate.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SCHEDBOX_GIT_COMMIT");
    let commit = std::env::var("SCHEDBOX_GIT_COMMIT").ok().filter(|c| !c.is_empty()).unwrap_or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".to_owned())
    });
    println!("cargo:rustc-env=SCHEDBOX_GIT_COMMIT={commit}");
}
