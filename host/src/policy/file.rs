//! The policy file's TOML format (documented in the README), parsed with
//! unknown keys refused so a misspelt bound is an error, not a silent default.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct PolicyFile {
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub wasi: WasiSection,
    #[serde(default)]
    pub kernel: KernelSection,
    #[serde(default)]
    pub payloads: AllowSection,
    #[serde(default)]
    pub schedulers: AllowSection,
    #[serde(default)]
    pub trusted: TrustedSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct LimitsSection {
    pub fuel: Option<u64>,
    pub wall_ms: Option<u64>,
    pub wasm_memory_mib: Option<u64>,
    pub stack_kib: Option<u64>,
    pub max_ops: Option<usize>,
    pub max_arg_kib: Option<u64>,
    pub max_steps: Option<usize>,
    pub max_duration_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct WasiSection {
    pub link: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct KernelSection {
    pub reads: Option<bool>,
    pub writes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct AllowSection {
    pub allow: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct TrustedSection {
    #[serde(default)]
    pub sha256: Vec<String>,
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub builders: Vec<String>,
    #[serde(default)]
    pub sources: Vec<String>,
}
