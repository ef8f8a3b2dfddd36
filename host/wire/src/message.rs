//! The messages. Requests carry an id; each gets exactly one response.

use serde::{Deserialize, Serialize};

/// Facts the agent reports once it is ready.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFacts {
    pub kernel_release: String,
    pub cpus_online: Vec<u32>,
    /// CPU-id lists sharing a last-level cache, as sysfs shows them.
    pub llc_groups: Vec<Vec<u32>>,
    /// CPU-id lists per NUMA node.
    pub numa_nodes: Vec<Vec<u32>>,
    /// `/sys/kernel/sched_ext/state`, or "unsupported".
    pub sched_ext_state: String,
    /// Number of `/proc/kallsyms` lines read.
    pub kallsyms: u64,
    /// Controllers enabled in the root's `cgroup.subtree_control`.
    pub cgroup_controllers: Vec<String>,
    /// Guest uptime when the agent became ready, ms (CLOCK_BOOTTIME).
    pub uptime_ms: u64,
}

/// Host → agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub body: RequestBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RequestBody {
    /// Answered with `Pong`: measures the round trip.
    Ping,
    /// Re-read and report the facts.
    Facts,
    /// Read a guest file (tests assert kernel state through this).
    ReadFile { path: String },
    /// Power the guest off cleanly (after answering).
    PowerOff,
    /// Test hook: panic the guest kernel (sysrq `c`).
    Crash,
    /// Test hook: stop answering (the host's watchdog must notice).
    Hang,
}

/// Agent → host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AgentMessage {
    /// The agent finished setting up.
    Ready(GuestFacts),
    /// The answer to request `id`.
    Response { id: u64, result: Result<ResponseBody, String> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ResponseBody {
    Pong,
    Facts(GuestFacts),
    File(String),
    Ok,
}
