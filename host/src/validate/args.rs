//! Checks that need nothing but the op itself (and the declared topology).

use super::Problem;
use crate::op_model::*;

/// Longest name or tag accepted (bytes).
pub const MAX_NAME_LEN: usize = 255;

pub(super) fn name(what: &str, value: &str) -> Result<(), Problem> {
    if value.is_empty() {
        return Err(Problem::new(format!("{what} is empty"), format!("give the {what} a non-empty name")));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(Problem::new(
            format!("{what} is {} bytes long (limit {MAX_NAME_LEN})", value.len()),
            "use a shorter name",
        ));
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Problem::new(
            format!("{what} {value:?} contains whitespace or control characters"),
            "use letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(())
}

/// A payload or scheduler name (`what`: "payload name" or "scheduler name"):
/// the file name it is staged under in the guest, so one plain path component,
/// as `--payload NAME=PATH` and `--scheduler NAME=PATH` require.
pub(super) fn staged_name(what: &str, value: &str) -> Result<(), Problem> {
    name(what, value)?;
    if value.contains('/') || value == "." || value == ".." {
        let flag = if what.starts_with("scheduler") { "--scheduler" } else { "--payload" };
        return Err(Problem::new(
            format!("{what} {value:?} is not a plain name: it names the file staged into the guest"),
            format!("use a name without '/' (and not \".\" or \"..\"), the NAME of {flag} NAME=PATH"),
        ));
    }
    Ok(())
}

/// A cgroup name: one path component below the scenario's managed parent.
pub(super) fn cgroup_name(value: &str) -> Result<(), Problem> {
    name("cgroup name", value)?;
    if value.contains('/') || value == "." || value == ".." {
        return Err(Problem::new(
            format!("cgroup name {value:?} is not a single path component"),
            "cgroups are created flat under the scenario's parent; drop the '/'",
        ));
    }
    if let Some(prefix) = INTERFACE_PREFIXES.iter().find(|p| value.starts_with(&format!("{p}."))) {
        return Err(Problem::new(
            format!(
                "cgroup name {value:?} collides with the kernel's {prefix}.* interface files (a child cgroup \
                 cannot share a name with its parent's files)"
            ),
            format!(
                "pick a name that does not start with \"{prefix}.\" (nor with any of {})",
                INTERFACE_PREFIXES.iter().map(|p| format!("\"{p}.\"")).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    Ok(())
}

/// Prefixes of the interface files in a cgroup v2 directory: the core
/// `cgroup.*` and `irq.pressure` files and those of each v2 controller.
pub const INTERFACE_PREFIXES: &[&str] =
    &["cgroup", "cpu", "cpuset", "io", "memory", "pids", "rdma", "hugetlb", "misc", "irq"];

fn frac_in(what: &str, v: f64, lo_open: bool, lo: f64, hi: f64) -> Result<(), Problem> {
    let ok = v.is_finite() && if lo_open { v > lo } else { v >= lo } && v <= hi;
    if ok {
        Ok(())
    } else {
        let open = if lo_open { "(" } else { "[" };
        Err(Problem::new(
            format!("{what} {v} is outside {open}{lo}, {hi}]"),
            format!("use a finite {what} in {open}{lo}, {hi}]"),
        ))
    }
}

pub(super) fn cpuset(spec: &CpusetSpec, topo: Option<&Topology>) -> Result<(), Problem> {
    match spec {
        CpusetSpec::Llc(i) => {
            if let Some(t) = topo.filter(|t| u64::from(*i) >= t.llcs()) {
                return Err(Problem::new(
                    format!("llc index {i} does not exist: the scenario declares {} LLCs", t.llcs()),
                    format!("use an LLC index in 0..{} or declare more LLCs in describe", t.llcs()),
                ));
            }
        }
        CpusetSpec::Numa(i) => {
            if let Some(t) = topo.filter(|t| *i >= t.numa_nodes) {
                return Err(Problem::new(
                    format!("numa node {i} does not exist: the scenario declares {} nodes", t.numa_nodes),
                    format!("use a node index in 0..{} or declare more nodes in describe", t.numa_nodes),
                ));
            }
        }
        CpusetSpec::Range { start, end } => {
            frac_in("range start", *start, false, 0.0, 1.0)?;
            frac_in("range end", *end, true, 0.0, 1.0)?;
            if start >= end {
                return Err(Problem::new(
                    format!("range start {start} is not below end {end}"),
                    "use start < end, e.g. range(0.0, 0.5)",
                ));
            }
        }
        CpusetSpec::Disjoint { index, of } => partition("disjoint", *index, *of)?,
        CpusetSpec::Overlap { index, of, frac } => {
            partition("overlap", *index, *of)?;
            frac_in("overlap frac", *frac, false, 0.0, 1.0)?;
        }
        CpusetSpec::Exact(cpus) => cpu_list("exact cpuset", cpus, topo)?,
    }
    Ok(())
}

fn partition(kind: &str, index: u32, of: u32) -> Result<(), Problem> {
    if of == 0 {
        return Err(Problem::new(format!("{kind} of=0 makes no sets"), "use of >= 1"));
    }
    if index >= of {
        return Err(Problem::new(
            format!("{kind} index {index} is not below of={of}"),
            format!("use an index in 0..{of}"),
        ));
    }
    Ok(())
}

fn cpu_list(what: &str, cpus: &[u32], topo: Option<&Topology>) -> Result<(), Problem> {
    if cpus.is_empty() {
        return Err(Problem::new(format!("{what} is empty"), "list at least one CPU"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for &c in cpus {
        if !seen.insert(c) {
            return Err(Problem::new(format!("{what} lists CPU {c} twice"), "list each CPU once"));
        }
        if let Some(t) = topo.filter(|t| u64::from(c) >= t.vcpus()) {
            return Err(Problem::new(
                format!("{what} names CPU {c}, but the scenario declares {} vCPUs", t.vcpus()),
                format!("use CPU ids in 0..{} or declare a larger topology in describe", t.vcpus()),
            ));
        }
    }
    Ok(())
}

pub(super) fn work_spec(w: &WorkSpec, topo: Option<&Topology>) -> Result<(), Problem> {
    match w.workers {
        WorkerCount::Count(0) => {
            return Err(Problem::new("worker count is 0", "spawn at least one worker"));
        }
        WorkerCount::Count(n) if n > schedbox_ops::MAX_WORKERS_PER_SPAWN => {
            let max = schedbox_ops::MAX_WORKERS_PER_SPAWN;
            return Err(Problem::new(
                format!("worker count {n} exceeds the limit of {max} workers per spawn"),
                format!("spawn at most {max} workers, or split them over several spawns or steps"),
            ));
        }
        WorkerCount::Pct(p) => frac_in("workers_pct", p, true, 0.0, 100.0)?,
        WorkerCount::Count(_) => {}
    }
    if !(-20..=19).contains(&w.nice) {
        return Err(Problem::new(format!("nice {} is outside -20..=19", w.nice), "use a nice value in -20..=19"));
    }
    if let SchedPolicy::Fifo(p) | SchedPolicy::Rr(p) = w.policy {
        if !(1..=99).contains(&p) {
            return Err(Problem::new(format!("real-time priority {p} is outside 1..=99"), "use a priority in 1..=99"));
        }
    }
    if let SchedPolicy::Deadline { runtime_us, deadline_us, period_us } = w.policy {
        deadline(runtime_us, deadline_us, period_us)?;
        if matches!(w.work, WorkType::ForkExit) {
            return Err(Problem::new(
                "a SCHED_DEADLINE worker cannot fork (the kernel refuses fork to deadline tasks)",
                "use another work type or another policy",
            ));
        }
        if w.affinity != AffinityIntent::Inherit || pins_itself(&w.work) {
            return Err(Problem::new(
                "a SCHED_DEADLINE worker cannot be pinned: the kernel only admits deadline tasks allowed \
                 on a whole root domain",
                "use affinity inherit and a work type that does not pin itself, or another policy",
            ));
        }
    }
    if sets_own_policy(&w.work) && w.policy != SchedPolicy::Normal {
        return Err(Problem::new(
            format!(
                "{} sets its workers' policies itself; policy {:?} would be overridden",
                work_name(&w.work),
                w.policy
            ),
            "leave the policy normal for this work type",
        ));
    }
    if let Some(comm) = &w.comm {
        name("comm", comm)?;
        if comm.len() > 15 {
            return Err(Problem::new(
                format!("comm {comm:?} is {} bytes; the kernel keeps 15", comm.len()),
                "use a comm of at most 15 bytes",
            ));
        }
    }
    match &w.affinity {
        AffinityIntent::RandomSubset(0) => {
            return Err(Problem::new("random-subset of 0 CPUs", "ask for at least one CPU"));
        }
        AffinityIntent::Exact(cpus) => cpu_list("exact affinity", cpus, topo)?,
        _ => {}
    }
    if let (WorkType::NumaMigrationChurn { .. } | WorkType::NumaWorkingSetSweep { .. }, Some(t)) = (&w.work, topo) {
        if t.numa_nodes < 2 {
            return Err(Problem::new(
                format!("{} needs 2 or more NUMA nodes; the topology has {}", work_name(&w.work), t.numa_nodes),
                "declare a topology with 2 or more nodes in describe (e.g. 2n1l2c1t), or use another work type",
            ));
        }
    }
    let zero = |what: &str| Err(Problem::new(format!("{what} is 0"), format!("use a {what} of at least 1")));
    match &w.work {
        WorkType::Bursty { burst_ms: 0, .. } => return zero("bursty burst"),
        WorkType::FutexFanOut { fan_out: 0, .. } => return zero("futex fan-out"),
        WorkType::CachePressure { size_kib: 0, .. } => return zero("cache-pressure size"),
        WorkType::CachePressure { stride: 0, .. } => return zero("cache-pressure stride"),
        WorkType::WakeChain { depth: 0, .. } => return zero("wake-chain depth"),
        WorkType::PipeIo { burst_iters: 0 } => return zero("pipe-io burst"),
        WorkType::Sequence(phases) if phases.is_empty() => {
            return Err(Problem::new("sequence has no phases", "give the sequence at least one phase"));
        }
        _ => {}
    }
    if w.mode == WorkerMode::Thread && w.work.needs_own_process() {
        return Err(Problem::new(
            format!("{} acts on its own process, so its workers cannot be threads", work_name(&w.work)),
            "spawn these workers as processes (spawn-work), or use another work type with spawn-threads",
        ));
    }
    new_work(&w.work)?;
    let group = w.work.group_size().max(1);
    if let WorkerCount::Count(n) = w.workers {
        if n % group != 0 {
            return Err(Problem::new(
                format!("{} runs in groups of {group} workers; {n} is not a multiple of {group}", work_name(&w.work)),
                format!("spawn a multiple of {group} workers, e.g. {group}"),
            ));
        }
    }
    Ok(())
}

/// Group sizes and parameter bounds of the workload families beyond the basic loops.
fn new_work(work: &WorkType) -> Result<(), Problem> {
    let zero = |what: &str| Err(Problem::new(format!("{what} is 0"), format!("use a {what} of at least 1")));
    let group = |what: &str, n: u32, max: u32| {
        if n == 0 || n > max {
            Err(Problem::new(format!("{what} {n} is outside 1..={max}"), format!("use a {what} in 1..={max}")))
        } else {
            Ok(())
        }
    };
    // A period below 10 us would only measure the timer's own cost; above 10 s a step
    // would see no iteration.
    let period = |what: &str, us: u64| {
        if !(10..=10_000_000).contains(&us) {
            Err(Problem::new(
                format!("{what} {us} us is outside 10..=10000000"),
                format!("use a {what} in 10..=10000000 us"),
            ))
        } else {
            Ok(())
        }
    };
    let buffer = |what: &str, kib: u32| {
        if kib == 0 || kib > 1 << 20 {
            Err(Problem::new(
                format!("{what} {kib} KiB is outside 1..=1048576"),
                format!("use a {what} in 1..=1048576 KiB"),
            ))
        } else {
            Ok(())
        }
    };
    match *work {
        WorkType::IpcVariance { phase_ms, size_kib } => {
            if phase_ms == 0 {
                return zero("ipc-variance phase_ms");
            }
            buffer("ipc-variance size_kib", size_kib)
        }
        WorkType::FanOutCompute { fan_out, .. } => group("fan-out-compute fan_out", fan_out, 1023),
        WorkType::EpollStorm { waiters } => group("epoll-storm waiters", waiters, 1023),
        WorkType::ThunderingHerd { waiters, .. } => group("thundering-herd waiters", waiters, 1023),
        WorkType::Schbench { workers, request_us, sleep_us } => {
            group("schbench workers", workers, 1023)?;
            if request_us > 10_000_000 || sleep_us > 10_000_000 {
                return Err(Problem::new(
                    format!("schbench request_us {request_us} or sleep_us {sleep_us} exceeds 10 s"),
                    "use request_us and sleep_us of at most 10000000",
                ));
            }
            Ok(())
        }
        WorkType::TimerLatency { period_us } => period("timer-latency period_us", period_us),
        WorkType::NiceSweep { period_us } => period("nice-sweep period_us", period_us),
        WorkType::AffinityChurn { period_us } => period("affinity-churn period_us", period_us),
        WorkType::CrossAffinityChurn { period_us } => period("cross-affinity-churn period_us", period_us),
        WorkType::PolicyChurn { period_us } => period("policy-churn period_us", period_us),
        WorkType::CgroupChurn { period_us } => period("cgroup-churn period_us", period_us),
        WorkType::CgroupAttachStorm { period_us } => period("cgroup-attach-storm period_us", period_us),
        WorkType::PreemptStorm { period_us, .. } => period("preempt-storm period_us", period_us),
        WorkType::MutexContention { contenders, .. } => group("mutex-contention contenders", contenders, 1024),
        WorkType::ProducerConsumerImbalance { producers, consumers, .. } => {
            group("producer-consumer-imbalance producers", producers, 1023)?;
            group("producer-consumer-imbalance consumers", consumers, 1023)
        }
        WorkType::PageFaultChurn { size_kib } => buffer("page-fault-churn size_kib", size_kib),
        WorkType::NumaMigrationChurn { period_ms, size_kib } => {
            if !(1..=10_000).contains(&period_ms) {
                return Err(Problem::new(
                    format!("numa-migration-churn period_ms {period_ms} is outside 1..=10000"),
                    "use a period_ms in 1..=10000",
                ));
            }
            buffer("numa-migration-churn size_kib", size_kib)
        }
        WorkType::NumaWorkingSetSweep { size_kib, passes } => {
            if passes == 0 {
                return zero("numa-working-set-sweep passes");
            }
            buffer("numa-working-set-sweep size_kib", size_kib)
        }
        WorkType::IoSyncWrite { block_kib } => io_block("io-sync-write block_kib", block_kib),
        WorkType::IoRandRead { block_kib } => io_block("io-rand-read block_kib", block_kib),
        WorkType::IoConvoy { readers, write_kib } => {
            group("io-convoy readers", readers, 255)?;
            io_block("io-convoy write_kib", write_kib)
        }
        WorkType::IdleChurn { sleep_us, .. } if sleep_us > 10_000_000 => Err(Problem::new(
            format!("idle-churn sleep_us {sleep_us} exceeds 10 s"),
            "use a sleep_us of at most 10000000",
        )),
        WorkType::CacheYield { size_kib } => buffer("cache-yield size_kib", size_kib),
        WorkType::CachePipe { size_kib } => buffer("cache-pipe size_kib", size_kib),
        _ => Ok(()),
    }
}

/// A block I/O size: whole 4 KiB blocks (the alignment `O_DIRECT` needs on any
/// device), at most 1 MiB per request.
fn io_block(what: &str, kib: u32) -> Result<(), Problem> {
    if kib == 0 || kib > 1024 || !kib.is_multiple_of(4) {
        return Err(Problem::new(
            format!("{what} {kib} KiB is not a multiple of 4 in 4..=1024"),
            format!("use a {what} that is a multiple of 4 KiB in 4..=1024 (e.g. 4 or 64)"),
        ));
    }
    Ok(())
}

/// SCHED_DEADLINE parameters the kernel accepts: 1024 ns <= runtime <= deadline <=
/// period, and a period within the kernel's default 100 us..4 s.
fn deadline(runtime_us: u64, deadline_us: u64, period_us: u64) -> Result<(), Problem> {
    if runtime_us < 2 || runtime_us > deadline_us || deadline_us > period_us || !(100..=4_000_000).contains(&period_us)
    {
        return Err(Problem::new(
            format!("deadline runtime {runtime_us} us, deadline {deadline_us} us, period {period_us} us is invalid"),
            "use 2 <= runtime <= deadline <= period and a period in 100..=4000000 us, e.g. runtime 2000, \
             deadline 10000, period 10000",
        ));
    }
    Ok(())
}

/// Work types that pin their workers themselves.
fn pins_itself(work: &WorkType) -> bool {
    matches!(
        work,
        WorkType::SmtSiblingSpin
            | WorkType::AffinityChurn { .. }
            | WorkType::CrossAffinityChurn { .. }
            | WorkType::PriorityInversion { .. }
            | WorkType::RtStarvation
            | WorkType::PreemptStorm { .. }
            | WorkType::NumaMigrationChurn { .. }
            | WorkType::NumaWorkingSetSweep { .. }
    )
}

/// Work types whose workers set their own scheduling policy.
fn sets_own_policy(work: &WorkType) -> bool {
    matches!(
        work,
        WorkType::PolicyChurn { .. }
            | WorkType::PriorityInversion { .. }
            | WorkType::RtStarvation
            | WorkType::PreemptStorm { .. }
    )
}

fn work_name(w: &WorkType) -> String {
    let json = serde_json::to_value(w).unwrap_or_default();
    match json {
        serde_json::Value::String(s) => s,
        serde_json::Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

pub(super) fn cgroup_def(def: &CgroupDef, topo: Option<&Topology>) -> Result<(), Problem> {
    cgroup_name(&def.name)?;
    let ctx = |p: Problem| p.context(format!("cgroup {:?}", def.name));
    if let Some(spec) = &def.cpuset {
        cpuset(spec, topo).map_err(ctx)?;
    }
    if let Some(mems) = &def.cpuset_mems {
        if mems.is_empty() {
            return Err(ctx(Problem::new("cpuset-mems is empty", "list at least one NUMA node or leave it unset")));
        }
        if let Some((t, m)) = topo.and_then(|t| mems.iter().find(|&&m| m >= t.numa_nodes).map(|m| (t, m))) {
            return Err(ctx(Problem::new(
                format!("cpuset-mems names node {m}, but the scenario declares {} nodes", t.numa_nodes),
                format!("use node ids in 0..{}", t.numa_nodes),
            )));
        }
    }
    for (what, v) in [("cpu-weight", def.cpu_weight), ("io-weight", def.io_weight)] {
        if let Some(v) = v.filter(|v| !(1..=10000).contains(v)) {
            return Err(ctx(Problem::new(
                format!("{what} {v} is outside 1..=10000"),
                format!("use a {what} in 1..=10000"),
            )));
        }
    }
    if let Some(m) = &def.cpu_max {
        if m.quota_us == 0 || !(1000..=1_000_000).contains(&m.period_us) {
            return Err(ctx(Problem::new(
                format!("cpu-max {}/{} is invalid", m.quota_us, m.period_us),
                "use quota >= 1 us and a period in 1000..=1000000 us",
            )));
        }
    }
    if def.memory_max == Some(0) || def.pids_max == Some(0) {
        return Err(ctx(Problem::new(
            "memory-max or pids-max is 0: nothing could run",
            "leave the limit unset or give it a positive value",
        )));
    }
    for w in &def.workers {
        work_spec(w, topo).map_err(ctx)?;
    }
    if let Some(p) = &def.payload {
        staged_name("payload name", &p.name).map_err(ctx)?;
    }
    Ok(())
}

/// The hard ceiling on one step's hold (1 h), whatever the policy says: a
/// fixed hold, a fraction of the scenario duration and a loop (which runs for
/// the whole duration) alike. Longer runs are made of more steps.
pub const MAX_HOLD_MS: u64 = 3_600_000;

/// Checks a hold; with the scenario duration, also the time it resolves to
/// against [`MAX_HOLD_MS`].
pub(super) fn hold(h: &HoldSpec, duration_ms: Option<u64>) -> Result<(), Problem> {
    match h {
        HoldSpec::Frac(f) => frac_in("hold frac", *f, true, 0.0, 1.0)?,
        HoldSpec::LoopMs(0) => {
            return Err(Problem::new("loop interval is 0 ms", "use an interval of at least 1 ms"));
        }
        HoldSpec::LoopMs(i) if *i > MAX_HOLD_MS => {
            return Err(Problem::new(
                format!("loop interval {i} ms is above the {MAX_HOLD_MS} ms (1 h) hold ceiling"),
                format!("use an interval of at most {MAX_HOLD_MS} ms"),
            ));
        }
        _ => {}
    }
    let ms = match (h, duration_ms) {
        (HoldSpec::FixedMs(ms), _) => *ms,
        (HoldSpec::Frac(f), Some(d)) => (f * d as f64).ceil() as u64,
        (HoldSpec::LoopMs(_), Some(d)) => d,
        _ => return Ok(()),
    };
    if ms > MAX_HOLD_MS {
        let what = match h {
            HoldSpec::FixedMs(_) => "a fixed hold".to_string(),
            HoldSpec::Frac(f) => format!("frac {f} of the {} ms duration", duration_ms.unwrap_or(0)),
            HoldSpec::LoopMs(_) => "a loop, which runs for the whole duration,".to_string(),
        };
        return Err(Problem::new(
            format!("{what} holds {ms} ms, above the {MAX_HOLD_MS} ms (1 h) ceiling on one step's hold"),
            format!("hold at most {MAX_HOLD_MS} ms per step: split the time over more steps"),
        ));
    }
    Ok(())
}

fn kernel_target(t: &KernelTarget) -> Result<(), Problem> {
    match t {
        KernelTarget::Symbol(s) => name("kernel symbol", s),
        KernelTarget::Direct(0) | KernelTarget::Kva(0) => {
            Err(Problem::new("kernel address 0x0 is the null page", "pass a kernel virtual address"))
        }
        KernelTarget::Direct(a) | KernelTarget::Kva(a) if *a < 0xffff_8000_0000_0000 => Err(Problem::new(
            format!("address {a:#x} is not a kernel (upper-half) virtual address"),
            "pass a KVA of the form 0xffff...",
        )),
        KernelTarget::PerCpuField { symbol, field, .. } => {
            if !PER_CPU_SYMBOLS.contains(&symbol.as_str()) {
                return Err(Problem::new(
                    format!("per-cpu symbol {symbol:?} is not supported"),
                    format!("use one of {}", PER_CPU_SYMBOLS.join(", ")),
                ));
            }
            field_path(field)
        }
        KernelTarget::TaskField { pid, field, .. } => {
            if *pid == 0 {
                return Err(Problem::new("task-field pid 0 is the idle task", "pass a worker's pid"));
            }
            field_path(field)
        }
        _ => Ok(()),
    }
}

fn field_path(field: &str) -> Result<(), Problem> {
    let ok = !field.is_empty()
        && field.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if ok {
        Ok(())
    } else {
        Err(Problem::new(
            format!("field path {field:?} is not a dot-separated list of C identifiers"),
            "write the member path like `scx.dsq_vtime`",
        ))
    }
}

/// Hot accesses race a running kernel: a misaligned one could tear.
fn hot_alignment(t: &KernelTarget, width: usize, op: &str) -> Result<(), Problem> {
    let align = match width {
        4 => 4,
        8 => 8,
        _ => return Ok(()),
    };
    match t.raw_address() {
        Some(a) if a % align != 0 => Err(Problem::new(
            format!("{op} of {width} bytes at {a:#x} is not {align}-byte aligned and could tear"),
            format!("align the address to {align} bytes, or use the cold variant (written under the freeze)"),
        )),
        _ => Ok(()),
    }
}

pub(super) fn kernel_writes(writes: &[KernelWrite], hot: bool) -> Result<(), Problem> {
    let op = if hot { "write-kernel-hot" } else { "write-kernel-cold" };
    if writes.is_empty() {
        return Err(Problem::new(format!("{op} has no writes"), "pass at least one (target, value) pair"));
    }
    for (i, w) in writes.iter().enumerate() {
        let ctx = |p: Problem| p.context(format!("write {i}"));
        kernel_target(&w.target).map_err(ctx)?;
        match &w.value {
            KernelValue::OrU32(_) if hot => {
                return Err(ctx(Problem::new(
                    "or-u32 is a read-modify-write and is only atomic under the freeze",
                    "use write-kernel-cold for or-u32",
                )));
            }
            KernelValue::Bytes(b) if b.is_empty() || b.len() > MAX_KERNEL_BYTES => {
                return Err(ctx(Problem::new(
                    format!("bytes value of {} bytes is outside 1..={MAX_KERNEL_BYTES}", b.len()),
                    format!("write 1..={MAX_KERNEL_BYTES} bytes per pair"),
                )));
            }
            _ => {}
        }
        if hot {
            hot_alignment(&w.target, w.value.width(), op).map_err(ctx)?;
        }
    }
    Ok(())
}

pub(super) fn kernel_read(tag: &str, t: &KernelTarget, width: &KernelValueWidth, hot: bool) -> Result<(), Problem> {
    name("read tag", tag)?;
    kernel_target(t)?;
    if width.is_empty() || width.len() > MAX_KERNEL_BYTES {
        return Err(Problem::new(
            format!("read width of {} bytes is outside 1..={MAX_KERNEL_BYTES}", width.len()),
            format!("read 1..={MAX_KERNEL_BYTES} bytes"),
        ));
    }
    if hot {
        hot_alignment(t, width.len(), "read-kernel-hot")?;
    }
    Ok(())
}
