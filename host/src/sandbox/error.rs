//! Errors of loading and calling a scenario component.

use std::path::PathBuf;

use super::imports::ImportVerdict;
use crate::validate::ValidationError;

/// Which sandbox bound stopped a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Bound {
    Cpu,
    Memory,
    Stack,
    OpStream,
    ArgumentSize,
    WallClock,
}

/// Everything that can go wrong between a `.wasm` file and a verdict.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{label}: not a WebAssembly binary (no \\0asm header); pass a component built for wasm32-wasip2")]
    NotWasm { label: String },
    #[error("{label}: this is a core WebAssembly module, not a component; build it with `--target wasm32-wasip2`, or wrap it with `wasm-tools component new`")]
    CoreModule { label: String },
    #[error("{label}: not a valid component: {message}")]
    Compile { label: String, message: String },
    #[error("{label}: refused before instantiation; it imports what scenarios may not use:\n{}", list(.refused))]
    ForbiddenImports { label: String, refused: Vec<ImportVerdict> },
    #[error("{label}: does not export the schedbox scenario world (describe, run, check): {message}")]
    NotAScenario { label: String, message: String },
    #[error("scenario {scenario:?}: `{export}` stopped by the {} bound: {message}", <&str>::from(.bound))]
    Bound { scenario: String, export: &'static str, bound: Bound, message: String },
    #[error("scenario {scenario:?}: `{export}` trapped: {message}")]
    Trap { scenario: String, export: &'static str, message: String },
    #[error("scenario {scenario:?}: run() failed: {message}{}", first_rejection(.rejection))]
    RunFailed { scenario: String, message: String, rejection: Option<Box<ValidationError>> },
    #[error(transparent)]
    Invalid(#[from] Box<ValidationError>),
    #[error("sandbox set-up failed: {0}")]
    Setup(String),
}

impl SandboxError {
    /// The process exit code this error maps to: 1 for a scenario's own
    /// failure, 2 for usage/environment problems.
    pub fn exit_code(&self) -> i32 {
        match self {
            SandboxError::Read { .. } | SandboxError::Setup(_) => 2,
            _ => 1,
        }
    }
}

fn list(v: &[ImportVerdict]) -> String {
    v.iter().map(|i| format!("  - {}: {}", i.name, i.reason)).collect::<Vec<_>>().join("\n")
}

fn first_rejection(r: &Option<Box<ValidationError>>) -> String {
    r.as_ref().map(|e| format!("\n  first rejected call: {e}")).unwrap_or_default()
}
