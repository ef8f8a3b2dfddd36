//! The op model: the Rust mirror of the WIT contract that the validator and
//! the executor work on. Serialises to the JSON of `schedbox plan --json`.

mod cgroup;
mod cpuset;
mod from_wit;
mod kernel;
mod op;
mod stream;
mod work;

pub use cgroup::{CgroupDef, CpuMax, PayloadRef};
pub use cpuset::CpusetSpec;
pub use kernel::{KernelTarget, KernelValue, KernelValueWidth, KernelWrite, MAX_KERNEL_BYTES, PER_CPU_SYMBOLS};
pub use op::{IrqSelector, Op, OpKind, SpawnPlacement};
pub use stream::{Backdrop, HoldSpec, KernelFeature, OpStream, ScenarioInfo, Section, Step, Topology};
pub use work::{AffinityIntent, Phase, SchedPolicy, WorkSpec, WorkType, WorkerCount};

/// The contract version this host emits streams under.
pub const CONTRACT_VERSION: &str = "schedbox:scenario@0.1.0";
