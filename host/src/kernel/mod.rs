//! Guest kernels: the default kernel `schedbox kernel fetch` provides (a Debian
//! kernel with sched_ext and BTF, fetched with apt's ordinary client into a private
//! apt state), the on-disk cache of kernels, vmlinux extraction from a bzImage (for
//! the PVH `-kernel vmlinux` fast path and for the monitor's symbols), and the
//! kernel-config checks that say what a scenario loses on a given kernel.
//!
//! Nothing here touches the system's apt state: lists, sources and caches all live
//! under the schedbox cache dir.

mod apt;
mod cache;
mod config;
mod fetch;
mod resolve;
mod sources;
mod vmlinux;

pub use apt::AptTools;
pub use cache::{KernelCache, KernelEntry, PackageRecord};
pub use config::{check, ConfigValue, Finding, KernelConfig, Need, OptionState, Severity};
pub use fetch::{fetch, fetch_modules, fetch_with, FetchEvent, FetchOptions};
pub use resolve::{resolve_kernel, resolve_kernel_in, ResolvedKernel};
pub use sources::{find_debian_source, DebianSource};
pub use vmlinux::{extract_vmlinux, inspect_elf, ElfInfo, VmlinuxError};
