//! The messages. Requests carry an id; each gets exactly one response.

use schedbox_ops::results::{CgroupProcs, PayloadExit, StepMetrics, WorkerMetrics};
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
    /// Bound every later `wait-payload`: a payload still running `ms` after the wait
    /// began is killed and the op fails with its output tails.
    PayloadWaitLimit { ms: u64 },
    /// Tear the step down: stop step-owned workers and payloads, thaw and
    /// remove step-local cgroups; report their metrics.
    EndStep,
    /// Tear everything down (Backdrop included) and verify nothing is left.
    EndScenario,
    /// Bring the guest back to a clean state between scenarios and prove it: survey the
    /// kernel (managed cgroups, user processes, sched_ext state, frozen cgroups), clean what
    /// is found, survey again. Answered with [`ResponseBody::Reset`]; `verified` is false
    /// when something could not be cleaned (the host then reboots the guest).
    Reset,
    /// The host's answer to the agent's [`AgentMessage::HostOpRequest`] `id`, relayed
    /// to the guest client that asked. Answered with `Ok` (or an error when no client
    /// waits for `id` any more: it timed out or the scenario ended).
    HostOpReply { id: u64, result: Result<HostOpOutput, String> },
}

/// Agent → host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AgentMessage {
    /// The agent finished setting up.
    Ready(GuestFacts),
    /// The answer to request `id`.
    Response { id: u64, result: Result<ResponseBody, String> },
    /// Unsolicited: a process in the guest asks for host-side `op` (see
    /// [`is_host_side`]). `id` is the agent's own numbering; the host answers with
    /// [`RequestBody::HostOpReply`] carrying the same `id`.
    HostOpRequest { id: u64, op: Op },
}

/// What a guest-initiated host-side op produced: the same records a scenario's
/// own op adds to its results.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostOpOutput {
    /// `read-kernel-*` values, tagged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<schedbox_ops::results::KernelRead>,
    /// `capture-snapshot`'s snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<schedbox_ops::results::Snapshot>,
    /// Freeze rendezvous the op ran.
    pub rendezvous: u64,
}

/// Whether `op` runs on the host (kernel memory, snapshots, watchpoints): the only
/// kinds a guest process may ask for through the agent.
pub fn is_host_side(op: &Op) -> bool {
    matches!(
        op,
        Op::ReadKernelHot { .. }
            | Op::ReadKernelCold { .. }
            | Op::WriteKernelHot { .. }
            | Op::WriteKernelCold { .. }
            | Op::CaptureSnapshot { .. }
            | Op::WatchSnapshot { .. }
    )
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
    /// What a `Reset` found, cleaned and verified.
    Reset(ResetReport),
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
    /// `EndStep` only: the guest as the step ends, read before the teardown (its
    /// `step` is 0; the host numbers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepMetrics>,
    /// The attached scheduler was found no longer attached (the kernel ejected it, or its
    /// process ended) as the step or the scenario ended, before the teardown detached it
    /// or during the teardown: the kernel's reason and its last words. The teardown's
    /// collections above are complete all the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_exit: Option<String>,
}

/// One aspect of a guest reset: what the survey found before cleaning, and what a
/// second survey still found after it (empty when clean). Entries name the cgroup,
/// the pid and its `comm`, or the sched_ext state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetCheck {
    pub found: Vec<String>,
    pub remaining: Vec<String>,
}

impl ResetCheck {
    /// Whether nothing remained after cleaning.
    pub fn clean(&self) -> bool {
        self.remaining.is_empty()
    }
}

/// The answer to `Reset`: each aspect checked in the guest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetReport {
    /// Cgroups under the managed parent (and the parent itself).
    pub cgroups: ResetCheck,
    /// User processes other than the agent and the run's boot scheduler (workers, payloads,
    /// their orphans, schedulers).
    pub tasks: ResetCheck,
    /// `/sys/kernel/sched_ext/state` when not as a clean guest has it: `disabled`, or
    /// `enabled` by the run's boot scheduler.
    pub scheduler: ResetCheck,
    /// Cgroups anywhere in the hierarchy with `cgroup.freeze 1` or `frozen 1`.
    pub frozen: ResetCheck,
    /// IRQs whose `smp_affinity_list` differs from what it was before a scenario first
    /// steered them (restored by the reset).
    #[serde(default)]
    pub irqs: ResetCheck,
    /// What the cleaning did, one line each (thawed, killed, removed, detached).
    pub actions: Vec<String>,
    /// What a clean guest keeps, as found after cleaning: the run's boot scheduler.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    /// How long the reset took in the guest, µs.
    pub guest_us: u64,
}

impl ResetReport {
    /// Whether the second survey found the guest clean in every aspect.
    pub fn verified(&self) -> bool {
        self.cgroups.clean() && self.tasks.clean() && self.scheduler.clean() && self.frozen.clean() && self.irqs.clean()
    }
}

#[cfg(test)]
mod host_op_tests {
    use super::*;
    use schedbox_ops::{KernelTarget, KernelValueWidth};

    #[test]
    fn guest_requests_and_replies_round_trip() {
        let op = Op::read_kernel_cold("j", KernelTarget::symbol("jiffies_64"), KernelValueWidth::U64);
        assert!(is_host_side(&op) && is_host_side(&Op::capture_snapshot("s")));
        assert!(!is_host_side(&Op::add_cgroup("x")));
        let msg = AgentMessage::HostOpRequest { id: 3, op };
        let mut bytes = Vec::new();
        crate::write_msg(&mut bytes, &msg).unwrap();
        assert_eq!(crate::read_msg::<_, AgentMessage>(&mut bytes.as_slice()).unwrap(), msg);
        let reply = Request { id: 9, body: RequestBody::HostOpReply { id: 3, result: Err("no".into()) } };
        let mut bytes = Vec::new();
        crate::write_msg(&mut bytes, &reply).unwrap();
        assert_eq!(crate::read_msg::<_, Request>(&mut bytes.as_slice()).unwrap(), reply);
    }
}
