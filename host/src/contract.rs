//! Host bindings of the WIT contract (`wit/scenario.wit`), generated once here.
//!
//! Every import is trappable: a scenario that breaks a sandbox bound (stream
//! length, string size) traps, while one that passes bad arguments gets an
//! `op-error` back at the call site.
wasmtime::component::bindgen!({
    path: "../wit",
    world: "scenario",
    imports: { default: trappable },
});

/// The contract's package and version, as import names spell it.
pub const PACKAGE: &str = "schedbox:scenario";
