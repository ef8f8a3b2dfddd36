//! Which imports a scenario component may have: the policy, checked against
//! the component's type before anything is instantiated.

use wasmtime::component::Component;
use wasmtime::Engine;

use crate::contract::PACKAGE;

/// WASI interfaces linked with no authority (no preopens, no env, no args,
/// frozen clocks, captured stdout/stderr); what language runtimes' std needs.
pub const WASI_ALLOWED: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
];

/// One import and whether the policy allows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ImportVerdict {
    pub name: String,
    pub allowed: bool,
    /// Why it is refused (empty when allowed).
    pub reason: String,
}

/// Splits `ns:pkg/iface@ver` into (`ns:pkg/iface`, `ver`).
fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (name, None),
    }
}

/// Judges one import name.
pub fn judge(name: &str, wasi: bool) -> ImportVerdict {
    let (base, version) = split_version(name);
    let refuse = |reason: String| ImportVerdict { name: name.to_owned(), allowed: false, reason };
    if let Some(iface) = base.strip_prefix(PACKAGE).and_then(|r| r.strip_prefix('/')) {
        if !matches!(iface, "ops" | "types") {
            return refuse(format!("{PACKAGE} has no interface {iface:?}"));
        }
        return match version {
            Some(v) if v.starts_with("0.1.") => {
                ImportVerdict { name: name.to_owned(), allowed: true, reason: String::new() }
            }
            Some(v) => refuse(format!("contract version {v} is not supported (this host speaks 0.1.x)")),
            None => refuse("unversioned contract import".into()),
        };
    }
    if base.starts_with("wasi:") {
        if !wasi {
            return refuse("WASI is not linked under this policy".into());
        }
        if !WASI_ALLOWED.contains(&base) {
            return refuse("this WASI interface grants authority scenarios do not get (network, HTTP, ...)".into());
        }
        return match version {
            Some(v) if v.starts_with("0.2.") => {
                ImportVerdict { name: name.to_owned(), allowed: true, reason: String::new() }
            }
            _ => refuse("only WASI 0.2.x is linked".into()),
        };
    }
    refuse("not part of the schedbox contract or the allowed WASI subset".into())
}

/// Every import of `component`, judged.
pub fn check(engine: &Engine, component: &Component, wasi: bool) -> Vec<ImportVerdict> {
    component.component_type().imports(engine).map(|(name, _)| judge(name, wasi)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_and_wasi_subset_allowed_rest_refused() {
        assert!(judge("schedbox:scenario/ops@0.1.0", true).allowed);
        assert!(judge("schedbox:scenario/ops@0.1.7", true).allowed);
        assert!(!judge("schedbox:scenario/ops@0.2.0", true).allowed);
        assert!(!judge("schedbox:scenario/evil@0.1.0", true).allowed);
        assert!(judge("wasi:cli/stdout@0.2.6", true).allowed);
        assert!(!judge("wasi:cli/stdout@0.2.6", false).allowed);
        assert!(!judge("wasi:sockets/tcp@0.2.6", true).allowed);
        assert!(!judge("wasi:http/outgoing-handler@0.2.6", true).allowed);
        assert!(!judge("acme:host/files", true).allowed);
    }
}
