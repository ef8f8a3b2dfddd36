//! The op model: the Rust mirror of the WIT contract that the validator, the
//! executor and the guest agent work on. Serialises to the JSON of
//! `schedbox plan --json`. Converted from the WIT in exactly one place
//! (`schedbox::op_model`, in the host).

mod cgroup;
mod cpuset;
mod kernel;
mod op;
pub mod results;
mod stream;
mod work;

pub use cgroup::{CgroupDef, CpuMax, PayloadRef};
pub use cpuset::CpusetSpec;
pub use kernel::{KernelTarget, KernelValue, KernelValueWidth, KernelWrite, MAX_KERNEL_BYTES, PER_CPU_SYMBOLS};
pub use op::{IrqSelector, Op, OpKind, SpawnPlacement};
pub use stream::{Backdrop, HoldSpec, KernelFeature, OpStream, ScenarioInfo, Section, Step, Topology};
pub use work::{AffinityIntent, Phase, SchedPolicy, WorkSpec, WorkType, WorkerCount, WorkerMode};

/// The contract version this host emits streams under.
pub const CONTRACT_VERSION: &str = "schedbox:scenario@0.1.0";

/// The most workers one spawn may start (a count, or a percentage once resolved in the
/// guest): every worker is a process the guest's worker parent forks and the agent waits
/// for within one request; 4096 set up in 13.6 s on a TCG guest, and this leaves room
/// under the request timeout on a loaded host.
pub const MAX_WORKERS_PER_SPAWN: u32 = 2048;
