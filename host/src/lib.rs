//! schedbox: sandboxed WebAssembly scenarios against a real Linux kernel.
pub mod contract;
pub mod executor;
pub mod fuzz;
pub mod initramfs;
pub mod interrupt;
pub mod kernel;
pub mod machine;
pub mod monitor;
pub mod nested;
pub mod op_model;
pub mod policy;
pub mod results;
pub mod sandbox;
pub mod signing;
pub mod untrusted;
pub mod validate;
