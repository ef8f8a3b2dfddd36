//! What executing a stream produced and the scenario's verdict (types in
//! `schedbox-ops`), converted to and from the WIT records here only.

pub use schedbox_ops::results::*;

use crate::contract::schedbox::scenario::types as wit;

impl From<Results> for wit::Results {
    fn from(r: Results) -> Self {
        wit::Results {
            steps: r
                .steps
                .into_iter()
                .map(|s| wit::StepResult {
                    index: s.index,
                    status: match s.status {
                        StepStatus::Passed => wit::StepStatus::Passed,
                        StepStatus::Failed => wit::StepStatus::Failed,
                        StepStatus::Skipped => wit::StepStatus::Skipped,
                    },
                    error: s.error,
                    duration_ms: s.duration_ms,
                })
                .collect(),
            snapshots: r
                .snapshots
                .into_iter()
                .map(|s| wit::Snapshot {
                    name: s.name,
                    vcpus: s
                        .vcpus
                        .into_iter()
                        .map(|v| wit::VcpuRegisters { cpu: v.cpu, rip: v.rip, rsp: v.rsp, cr3: v.cr3 })
                        .collect(),
                    values: s
                        .values
                        .into_iter()
                        .map(|(name, value)| wit::NamedValue { name, value: value.into() })
                        .collect(),
                    sched_ext_state: s.sched_ext_state,
                })
                .collect(),
            cgroup_procs: r
                .cgroup_procs
                .into_iter()
                .map(|c| wit::CgroupProcs { tag: c.tag, cgroup: c.cgroup, pids: c.pids })
                .collect(),
            kernel_reads: r
                .kernel_reads
                .into_iter()
                .map(|k| wit::KernelRead { tag: k.tag, value: k.value.into() })
                .collect(),
            workers: r
                .workers
                .into_iter()
                .map(|w| wit::WorkerMetrics {
                    cgroup: w.cgroup,
                    workers: w.workers,
                    iterations: w.iterations,
                    cpu_time_ns: w.cpu_time_ns,
                    run_delay_ns: w.run_delay_ns,
                    migrations: w.migrations,
                    cpus: w.cpus.into_iter().map(|(cpu, count)| wit::CpuCount { cpu, count }).collect(),
                })
                .collect(),
            payloads: r
                .payloads
                .into_iter()
                .map(|p| wit::PayloadExit {
                    name: p.name,
                    cgroup: p.cgroup,
                    exit_code: p.exit_code,
                    signal: p.signal,
                    stdout_tail: p.stdout_tail,
                    stderr_tail: p.stderr_tail,
                })
                .collect(),
        }
    }
}

impl From<wit::Verdict> for Verdict {
    fn from(v: wit::Verdict) -> Self {
        Verdict {
            outcome: match v.outcome {
                wit::Outcome::Pass => Outcome::Pass,
                wit::Outcome::Fail => Outcome::Fail,
                wit::Outcome::Skip => Outcome::Skip,
            },
            messages: v.messages,
        }
    }
}
