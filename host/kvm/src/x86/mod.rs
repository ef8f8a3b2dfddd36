//! x86 entry states and boot structures.

pub mod acpi;
pub mod boot;
pub mod cpuid;
pub mod power;
pub mod regs;

pub use regs::{set_long_mode_entry, set_real_mode_entry, write_long_mode_tables};
