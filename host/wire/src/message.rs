//! The messages. Requests carry an id; each gets exactly one response.

use schedbox_ops::results::{CgroupProcs, PayloadExit, WorkerMetrics};
use schedbox_ops::{CgroupDef, Op};
use serde::{Deserialize, Serialize};

/// Whose lifetime a cgroup, worker or payload created by a request follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Owner {
    /// Lives until `EndScenario`.
    Backdrop,
    /// Lives until the next `EndStep`.
    Step,
}

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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub body: RequestBody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RequestBody {
    /// Answered with `Pong`: measures the round trip.
    Ping,
    /// Re-read and report the facts.
    Facts,
    /// Read a guest file (tests assert kernel state through this).
    ReadFile { path: String },
    /// Runtime addresses of kernel symbols, from `/proc/kallsyms`.
    Symbols { names: Vec<String> },
    /// Power the guest off cleanly (after answering).
    PowerOff,
    /// Test hook: panic the guest kernel (sysrq `c`).
    Crash,
    /// Test hook: stop answering (the host's watchdog must notice).
    Hang,
    /// Start a scenario: a fresh managed parent cgroup `/sys/fs/cgroup/schedbox`,
    /// no cgroups, workers or payloads left from before (checked, else an error).
    BeginScenario { name: String },
    /// Create cgroups (knobs, cpuset, workers, payload) owned by `owner`.
    Setup { owner: Owner, defs: Vec<CgroupDef> },
    /// Apply one guest-side op; what it creates is owned by `owner`.
    Apply { owner: Owner, op: Op },
    /// Tear the step down: stop step-owned workers and payloads, thaw and
    /// remove step-local cgroups; report their metrics.
    EndStep,
    /// Tear everything down (Backdrop included) and verify nothing is left.
    EndScenario,
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
    /// One address per requested symbol name (`None`: not in kallsyms).
    Symbols(Vec<Option<u64>>),
    /// What an `Apply` or `Setup` produced.
    Applied(Applied),
    /// What a teardown collected.
    Teardown(Teardown),
}

/// Observations an op produced while applying.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// `capture-cgroup-procs` results.
    pub captures: Vec<CgroupProcs>,
    /// Payloads that `wait-payload` / `kill-payload` reaped.
    pub payloads: Vec<PayloadExit>,
    /// What the op observed, one line each: the phases of a scheduler op
    /// (`detached fixture in 35 ms`, `attached fixture-alt (ops "fixture-alt") in 80 ms`,
    /// `no-scheduler window 120 ms`), the map a `pin-bpf-map` holds (`pinned scx_fifo.bss id 7 fd 12`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What a teardown collected, and whether it left the guest clean.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Teardown {
    /// Metrics of every worker set stopped, per cgroup (`""` = runner cgroup).
    pub workers: Vec<WorkerMetrics>,
    /// Payloads drained (killed) by the teardown.
    pub payloads: Vec<PayloadExit>,
    /// Anything that could not be removed (cgroup paths, pids): empty when clean.
    pub leftovers: Vec<String>,
}
