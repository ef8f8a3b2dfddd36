//! What executing a stream produced and the scenario's verdict (types in
//! `schedbox-ops`), converted to and from the WIT records here only. The WIT
//! `results` record leaves `step_metrics` out: `check` fetches them through the
//! `metrics` import (see `sandbox::recorder`).

pub use schedbox_ops::results::*;

use crate::contract::schedbox::scenario::metrics as witm;
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
            workers: r.workers.into_iter().map(wit_worker_metrics).collect(),
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

fn wit_worker_metrics(w: WorkerMetrics) -> wit::WorkerMetrics {
    wit::WorkerMetrics {
        cgroup: w.cgroup,
        workers: w.workers,
        iterations: w.iterations,
        cpu_time_ns: w.cpu_time_ns,
        run_delay_ns: w.run_delay_ns,
        migrations: w.migrations,
        cpus: w.cpus.into_iter().map(|(cpu, count)| wit::CpuCount { cpu, count }).collect(),
    }
}

impl From<StepMetrics> for witm::StepMetrics {
    fn from(s: StepMetrics) -> Self {
        witm::StepMetrics {
            step: s.step,
            cgroups: s
                .cgroups
                .into_iter()
                .map(|c| witm::CgroupState {
                    name: c.name,
                    backdrop: c.backdrop,
                    cpus_effective: c.cpus_effective,
                    frozen: c.frozen,
                    usage_usec: c.usage_usec,
                    procs: c.procs,
                    metrics: wit_worker_metrics(c.metrics),
                })
                .collect(),
            workers: s
                .workers
                .into_iter()
                .map(|w| witm::WorkerStat {
                    cgroup: w.cgroup,
                    tid: w.tid,
                    index: w.index,
                    alive: w.alive,
                    work_units: w.work_units,
                    cpu_time_ns: w.cpu_time_ns,
                    wall_time_ns: w.wall_time_ns,
                    off_cpu_ns: w.off_cpu_ns,
                    run_delay_ns: w.run_delay_ns,
                    migrations: w.migrations,
                    max_gap_ns: w.max_gap_ns,
                    max_gap_cpu: w.max_gap_cpu,
                    max_gap_at_ns: w.max_gap_at_ns,
                    cpus: w.cpus.into_iter().map(|(cpu, count)| wit::CpuCount { cpu, count }).collect(),
                })
                .collect(),
            irqs: s
                .irqs
                .into_iter()
                .map(|i| witm::IrqAffinity { irq: i.irq, affinity: i.affinity, effective: i.effective })
                .collect(),
            sched_ext_state: s.sched_ext_state,
            sched_ext_ops: s.sched_ext_ops,
        }
    }
}

/// The `metrics.latencies` entries of `steps`: every worker of every step, in order.
pub(crate) fn wit_latencies(steps: &[StepMetrics]) -> Vec<witm::WorkerLatency> {
    let lat = |l: &Option<Latency>| {
        l.as_ref().map(|l| witm::Latency {
            samples: l.samples,
            p50_ns: l.p50_ns,
            p90_ns: l.p90_ns,
            p99_ns: l.p99_ns,
            max_ns: l.max_ns,
        })
    };
    steps
        .iter()
        .flat_map(|s| {
            s.workers.iter().map(|w| witm::WorkerLatency {
                step: s.step,
                cgroup: w.cgroup.clone(),
                tid: w.tid,
                wake: lat(&w.wake_latency),
                request: lat(&w.request_latency),
            })
        })
        .collect()
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
