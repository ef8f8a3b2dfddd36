//! Turning a core wasm module into a scenario component: the step the C and Go
//! builds share.

use anyhow::Result;

/// Encodes `module` (a core module carrying its WIT metadata, importing WASI
/// preview 1) as a component, adapting preview 1 with the reactor adapter, and
/// validates the result.
pub fn reactor_component(module: &[u8]) -> Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .module(module)?
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .validate(true)
        .encode()
}
