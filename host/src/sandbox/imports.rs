//! Which imports a scenario component may have: the policy, judged from the
//! component's import section before anything is compiled or instantiated.
//!
//! Three kinds of WASI import are accepted: the [`WASI_ALLOWED`] interfaces,
//! linked without authority because language runtimes' std needs them; and
//! [`WASI_INERT`] ones (sockets, HTTP), which toolchains such as
//! componentize-py and componentize-js import by default and which are linked
//! so that they grant nothing: every socket use is refused, every HTTP call
//! traps. Everything else is refused.

use wasmparser::{ComponentTypeRef, Parser, Payload, TypeBounds};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, ResourceType};
use wasmtime::Engine;

use crate::contract::PACKAGE;

/// WASI interfaces linked with no authority, and what each gives a scenario.
pub const WASI_ALLOWED: &[(&str, &str)] = &[
    ("wasi:cli/environment", "no variables, no arguments, no working directory"),
    ("wasi:cli/exit", "ends the export call (a trap naming the exit status)"),
    ("wasi:cli/stdin", "empty input"),
    ("wasi:cli/stdout", "captured (64 KiB), logged under the scenario's name, shown when a call fails"),
    ("wasi:cli/stderr", "captured (64 KiB), logged under the scenario's name, its tail shown when a call fails"),
    ("wasi:cli/terminal-input", "no terminal"),
    ("wasi:cli/terminal-output", "no terminal"),
    ("wasi:cli/terminal-stdin", "no terminal"),
    ("wasi:cli/terminal-stdout", "no terminal"),
    ("wasi:cli/terminal-stderr", "no terminal"),
    ("wasi:io/error", "errors of the streams above"),
    ("wasi:io/poll", "polls the streams and clocks above"),
    ("wasi:io/streams", "the captured stdout/stderr and the empty stdin"),
    ("wasi:clocks/wall-clock", "frozen at 0 (1970-01-01)"),
    ("wasi:clocks/monotonic-clock", "frozen at 1 s"),
    ("wasi:random/random", "random bytes (no authority)"),
    ("wasi:random/insecure", "random bytes (no authority)"),
    ("wasi:random/insecure-seed", "the fixed seed 0"),
    ("wasi:filesystem/types", "no preopened directories: nothing can be opened"),
    ("wasi:filesystem/preopens", "an empty list of directories"),
];

/// WASI interfaces linked so that they grant nothing by themselves: language
/// toolchains import them by default, and a scenario that uses them gets a
/// refusal (sockets) or a trap (HTTP), never the network.
pub const WASI_INERT: &[(&str, &str)] = &[
    ("wasi:sockets/network", SOCKETS_GRANT),
    ("wasi:sockets/instance-network", SOCKETS_GRANT),
    ("wasi:sockets/tcp", SOCKETS_GRANT),
    ("wasi:sockets/tcp-create-socket", SOCKETS_GRANT),
    ("wasi:sockets/udp", SOCKETS_GRANT),
    ("wasi:sockets/udp-create-socket", SOCKETS_GRANT),
    ("wasi:sockets/ip-name-lookup", SOCKETS_GRANT),
    ("wasi:http/types", HTTP_GRANT),
    ("wasi:http/outgoing-handler", HTTP_GRANT),
];

const SOCKETS_GRANT: &str = "linked, grants nothing: every socket, address and name lookup is refused (access-denied)";
const HTTP_GRANT: &str = "linked, grants nothing: no outgoing handler, every call traps";

/// The WASI interfaces whose calls are trapping stubs ([`link_inert`]).
const TRAPPING: &[&str] = &["wasi:http/types", "wasi:http/outgoing-handler"];

/// One import and whether the policy allows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ImportVerdict {
    pub name: String,
    pub allowed: bool,
    /// Why it is refused (empty when allowed).
    pub reason: String,
    /// What it gives the scenario when allowed (empty when refused).
    pub grants: String,
}

/// Splits `ns:pkg/iface@ver` into (`ns:pkg/iface`, `ver`).
fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (name, None),
    }
}

fn grant_of(base: &str) -> Option<&'static str> {
    WASI_ALLOWED.iter().chain(WASI_INERT).find(|(n, _)| *n == base).map(|(_, g)| *g)
}

/// Judges one import name.
pub fn judge(name: &str, wasi: bool) -> ImportVerdict {
    let (base, version) = split_version(name);
    let refuse =
        |reason: String| ImportVerdict { name: name.to_owned(), allowed: false, reason, grants: String::new() };
    let allow = |grants: &str| ImportVerdict {
        name: name.to_owned(),
        allowed: true,
        reason: String::new(),
        grants: grants.to_owned(),
    };
    if let Some(iface) = base.strip_prefix(PACKAGE).and_then(|r| r.strip_prefix('/')) {
        if !matches!(iface, "ops" | "types" | "metrics") {
            return refuse(format!(
                "{PACKAGE} has no interface {iface:?}; import only {PACKAGE}/ops, /types and /metrics"
            ));
        }
        return match version {
            Some(v) if v.starts_with("0.1.") => allow(match iface {
                "ops" => "the op imports: calls recorded into the op stream",
                "metrics" => "the step metrics of the run `check` judges (read only)",
                _ => "types only",
            }),
            Some(v) => refuse(format!(
                "contract version {v} is not supported (this host speaks 0.1.x); build against this host's wit/"
            )),
            None => {
                refuse("unversioned contract import; build against this host's wit/ (schedbox:scenario@0.1.0)".into())
            }
        };
    }
    if base.starts_with("wasi:") {
        if !wasi {
            return refuse("WASI is not linked under this policy ([wasi] link = false or --no-wasi)".into());
        }
        let Some(grants) = grant_of(base) else {
            return refuse(format!(
                "this WASI interface is not linked for scenarios (they get no network, files or other authority); \
                 remove its use, or build without it — `schedbox inspect` lists the WASI interfaces linked: {}",
                WASI_ALLOWED.iter().chain(WASI_INERT).map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ));
        };
        return match version {
            Some(v) if v.starts_with("0.2.") => allow(grants),
            _ => refuse("only WASI 0.2.x is linked; build for wasm32-wasip2 (WASI 0.2)".into()),
        };
    }
    refuse("not part of the schedbox contract or the linked WASI subset; remove the import".into())
}

/// What a component declares at its top level, read from its binary without compiling it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Declared {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// Reads the top-level import and export names of a component (binary, or
/// WAT text), without compiling or validating it. Errors are the parser's.
pub fn declared(bytes: &[u8]) -> Result<Declared, String> {
    let text;
    let binary = if bytes.starts_with(b"\0asm") {
        bytes
    } else {
        text = wat::parse_bytes(bytes).map_err(|e| e.to_string())?;
        &text[..]
    };
    let mut out = Declared::default();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(binary) {
        match payload.map_err(|e| e.to_string())? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(r) if depth == 1 => {
                for import in r {
                    let import = import.map_err(|e| e.to_string())?;
                    // `use` of a type in the world: an alias of an imported interface's type.
                    if matches!(import.ty, ComponentTypeRef::Type(TypeBounds::Eq(_))) {
                        continue;
                    }
                    out.imports.push(import.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(r) if depth == 1 => {
                for export in r {
                    out.exports.push(export.map_err(|e| e.to_string())?.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Every import in `names`, judged.
pub fn check_names(names: &[String], wasi: bool) -> Vec<ImportVerdict> {
    names.iter().map(|n| judge(n, wasi)).collect()
}

/// Every import of a compiled `component`, judged.
pub fn check(engine: &Engine, component: &Component, wasi: bool) -> Vec<ImportVerdict> {
    component.component_type().imports(engine).map(|(name, _)| judge(name, wasi)).collect()
}

/// Whether an allowed import needs [`link_inert`] (its calls are trapping stubs).
pub fn needs_stubs(name: &str) -> bool {
    TRAPPING.contains(&split_version(name).0)
}

/// The error a call of a trapping stub returns: it traps the guest.
#[derive(Debug, thiserror::Error)]
#[error(
    "the scenario called `{call}`: {iface} is linked without authority (no outgoing handler; every call traps); \
     scenarios get no network — remove the call"
)]
pub struct InertCall {
    pub call: String,
    pub iface: String,
}

/// A resource of a trapping stub; never constructed, since every function traps.
struct InertResource;

/// Defines every function of the component's [`needs_stubs`] imports in
/// `linker` as a trap ([`InertCall`]), and their own resources as host
/// resources nothing creates. Resources they take from other interfaces
/// (`wasi:io` streams, or `wasi:http/types` for the outgoing handler) are left
/// to those interfaces' definitions.
pub fn link_inert<T: 'static>(linker: &mut Linker<T>, engine: &Engine, component: &Component) -> wasmtime::Result<()> {
    let ty = component.component_type();
    let mut seen: Vec<ResourceType> = Vec::new();
    // Resources of the interfaces that are linked for real come first.
    for (name, item) in ty.imports(engine) {
        if needs_stubs(name) {
            continue;
        }
        if let ComponentItem::ComponentInstance(inst) = item.ty {
            for (_, export) in inst.exports(engine) {
                if let ComponentItem::Resource(r) = export.ty {
                    seen.push(r);
                }
            }
        }
    }
    for (name, item) in ty.imports(engine) {
        if !needs_stubs(name) {
            continue;
        }
        let ComponentItem::ComponentInstance(inst) = item.ty else {
            continue;
        };
        let iface = split_version(name).0.to_owned();
        let mut li = linker.instance(name)?;
        for (export, item) in inst.exports(engine) {
            match item.ty {
                ComponentItem::Resource(r) if !seen.contains(&r) => {
                    seen.push(r);
                    li.resource(export, ResourceType::host::<InertResource>(), |_, _| Ok(()))?;
                }
                ComponentItem::ComponentFunc(_) => {
                    let call = format!("{name}#{export}");
                    let iface = iface.clone();
                    li.func_new(export, move |_, _, _, _| {
                        Err(InertCall { call: call.clone(), iface: iface.clone() }.into())
                    })?;
                }
                _ => {}
            }
        }
    }
    Ok(())
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
        assert!(!judge("wasi:keyvalue/store@0.2.0", true).allowed);
        assert!(!judge("wasi:http/incoming-handler@0.2.6", true).allowed);
        assert!(!judge("acme:host/files", true).allowed);
    }

    /// Sockets and the HTTP client interfaces are accepted, saying they grant nothing;
    /// not when WASI is not linked at all, and not in another WASI version.
    #[test]
    fn sockets_and_http_are_linked_inert() {
        for name in ["wasi:sockets/tcp@0.2.9", "wasi:sockets/ip-name-lookup@0.2.0", "wasi:http/types@0.2.3"] {
            let v = judge(name, true);
            assert!(v.allowed, "{name}: {}", v.reason);
            assert!(v.grants.starts_with("linked, grants nothing"), "{name}: {}", v.grants);
            assert!(!judge(name, false).allowed);
        }
        assert!(judge("wasi:http/outgoing-handler@0.2.9", true).grants.contains("every call traps"));
        assert!(!judge("wasi:sockets/tcp@0.3.0", true).allowed);
        assert!(needs_stubs("wasi:http/types@0.2.9"));
        assert!(!needs_stubs("wasi:sockets/tcp@0.2.9"));
    }

    #[test]
    fn refusals_say_what_to_do() {
        let v = judge("wasi:keyvalue/store@0.2.0", true);
        assert!(v.reason.contains("remove its use"), "{}", v.reason);
        assert!(v.reason.contains("wasi:cli/stdout"), "lists the linked interfaces: {}", v.reason);
        assert!(judge("schedbox:scenario/ops@0.2.0", true).reason.contains("build against"));
    }

    /// Imports are read from the binary's top level only (not from nested modules).
    #[test]
    fn declared_reads_top_level_imports_and_exports() {
        let wat = r#"(component
            (import "wasi:cli/stdout@0.2.0" (instance))
            (core module $m (import "env" "f" (func)))
            (component $inner (import "inner:pkg/x" (instance)))
            (core module $n (func (export "g") (result i32) i32.const 1))
            (core instance $i (instantiate $n))
            (alias core export $i "g" (core func $g))
            (func $f (result u32) (canon lift (core func $g)))
            (export "describe" (func $f))
        )"#;
        let d = declared(wat.as_bytes()).unwrap();
        assert_eq!(d.imports, ["wasi:cli/stdout@0.2.0"]);
        assert_eq!(d.exports, ["describe"]);
        assert!(declared(b"\0asm\x0d\0\x01\0garbage").is_err());
    }
}
