//! Valid op streams from a seed.
//!
//! A stream is a Backdrop of a few cgroups with workers under `SCHED_EXT` (so a
//! partial-switch scheduler such as the fixture gets them) and a few steps of ops drawn
//! by weight, with short fixed holds. The generator tracks which cgroups live, which are
//! frozen and whether the scheduler is attached, so most streams are valid; every stream
//! still goes through [`validate_stream`] and a rejected one is drawn again (counted).

use crate::op_model::{
    AffinityIntent, Backdrop, CgroupDef, CpusetSpec, HoldSpec, KernelFeature, Op, OpStream, ScenarioInfo, SchedPolicy,
    SpawnPlacement, Step, Topology, WorkSpec, WorkType, CONTRACT_VERSION,
};
use crate::validate::validate_stream;

use super::Rng;

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenConfig {
    pub topology: Topology,
    /// The scheduler under test: attached in the first step, replaced, restarted and
    /// detached by later ops. `None`: the kernel's own scheduler only.
    pub scheduler: Option<String>,
    /// Steps per stream, at most.
    pub max_steps: usize,
    /// Ops per step, at most.
    pub max_ops: usize,
    /// Hold of each step, ms (`lo..=hi`).
    pub hold_ms: (u64, u64),
}

impl GenConfig {
    pub fn new(topology: Topology, scheduler: Option<String>) -> Self {
        Self { topology, scheduler, max_steps: 4, max_ops: 5, hold_ms: (20, 60) }
    }
}

/// Op kinds the generator draws, with their weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pick {
    AddCgroup,
    RemoveCgroup,
    SetCpuset,
    ClearCpuset,
    SwapCpusets,
    Spawn,
    StopCgroup,
    SetAffinity,
    MoveAllTasks,
    Freeze,
    Unfreeze,
    Sched,
}

const PICKS: &[(Pick, u32)] = &[
    (Pick::AddCgroup, 8),
    (Pick::RemoveCgroup, 5),
    (Pick::SetCpuset, 14),
    (Pick::ClearCpuset, 5),
    (Pick::SwapCpusets, 6),
    (Pick::Spawn, 12),
    (Pick::StopCgroup, 4),
    (Pick::SetAffinity, 8),
    (Pick::MoveAllTasks, 6),
    (Pick::Freeze, 9),
    (Pick::Unfreeze, 6),
    (Pick::Sched, 6),
];

#[derive(Clone, Debug)]
struct Cg {
    name: String,
    backdrop: bool,
    frozen: bool,
}

struct State<'a> {
    cfg: &'a GenConfig,
    rng: Rng,
    cgroups: Vec<Cg>,
    attached: bool,
    next_cg: usize,
}

impl State<'_> {
    fn vcpus(&self) -> u32 {
        self.cfg.topology.vcpus() as u32
    }

    fn cpuset(&mut self) -> CpusetSpec {
        let n = self.vcpus().max(1);
        match self.rng.below(5) {
            0 => CpusetSpec::exact([self.rng.below(u64::from(n)) as u32]),
            1 => {
                let of = self.rng.range(2, u64::from(n.clamp(2, 4))) as u32;
                CpusetSpec::disjoint(self.rng.below(u64::from(of)) as u32, of)
            }
            2 => CpusetSpec::llc(self.rng.below(self.cfg.topology.llcs()) as u32),
            3 => {
                let a = self.rng.below(u64::from(n)) as u32;
                let b = self.rng.range(u64::from(a), u64::from(n - 1)) as u32;
                CpusetSpec::exact(a..=b)
            }
            _ => CpusetSpec::range(0.0, 0.5),
        }
    }

    fn work(&mut self) -> WorkSpec {
        let work = match self.rng.below(6) {
            0 | 1 => WorkType::SpinWait,
            2 => WorkType::YieldHeavy,
            3 => WorkType::Mixed,
            4 => WorkType::Bursty { burst_ms: self.rng.range(1, 5), sleep_ms: self.rng.range(1, 5) },
            _ => WorkType::Sleep { duration_ms: self.rng.range(1, 5) },
        };
        let policy = if self.rng.chance(85) { SchedPolicy::Ext } else { SchedPolicy::Normal };
        WorkSpec::default().work(work).workers(self.rng.range(1, 3) as u32).policy(policy)
    }

    fn affinity(&mut self) -> AffinityIntent {
        match self.rng.below(4) {
            0 => AffinityIntent::SingleCpu,
            1 => AffinityIntent::RandomSubset(self.rng.range(1, u64::from(self.vcpus().max(1))) as u32),
            2 => AffinityIntent::LlcAligned,
            _ => AffinityIntent::Inherit,
        }
    }

    fn any_cg(&mut self) -> Option<usize> {
        (!self.cgroups.is_empty()).then(|| self.rng.below(self.cgroups.len() as u64) as usize)
    }

    fn new_name(&mut self) -> String {
        self.next_cg += 1;
        format!("f{}", self.next_cg)
    }

    fn backdrop(&mut self) -> Backdrop {
        let mut b = Backdrop::new();
        for _ in 0..self.rng.range(1, 3) {
            let name = self.new_name();
            let mut def = CgroupDef::named(&name).work(self.work());
            if self.rng.chance(40) {
                def = def.cpuset(self.cpuset());
            }
            b = b.push_cgroup(def);
            self.cgroups.push(Cg { name, backdrop: true, frozen: false });
        }
        b
    }

    fn sched_op(&mut self) -> Option<Op> {
        let name = self.cfg.scheduler.clone()?;
        if !self.attached {
            self.attached = true;
            return Some(Op::attach_scheduler(name));
        }
        Some(match self.rng.below(4) {
            0 => Op::replace_scheduler(name),
            1 => Op::restart_scheduler(),
            2 => {
                self.attached = false;
                Op::detach_scheduler()
            }
            _ => Op::replace_scheduler(name),
        })
    }

    fn op(&mut self, step: usize) -> Option<Op> {
        let weights: Vec<u32> = PICKS.iter().map(|(_, w)| *w).collect();
        let pick = PICKS[self.rng.weighted(&weights)].0;
        let op = match pick {
            Pick::AddCgroup => {
                let name = self.new_name();
                let op = if self.rng.chance(50) {
                    let mut def = CgroupDef::named(&name).work(self.work());
                    if self.rng.chance(50) {
                        def = def.cpuset(self.cpuset());
                    }
                    Op::add_cgroup_def(def)
                } else {
                    Op::add_cgroup(&name)
                };
                self.cgroups.push(Cg { name, backdrop: false, frozen: false });
                op
            }
            Pick::RemoveCgroup => {
                let i = self.any_cg()?;
                Op::remove_cgroup(self.cgroups.remove(i).name)
            }
            Pick::SetCpuset => {
                let i = self.any_cg()?;
                let spec = self.cpuset();
                Op::set_cpuset(&self.cgroups[i].name, spec)
            }
            Pick::ClearCpuset => {
                let i = self.any_cg()?;
                Op::clear_cpuset(&self.cgroups[i].name)
            }
            Pick::SwapCpusets => {
                let (a, b) = (self.any_cg()?, self.any_cg()?);
                if a == b {
                    return None;
                }
                Op::swap_cpusets(&self.cgroups[a].name, &self.cgroups[b].name)
            }
            Pick::Spawn => {
                let work = self.work();
                if self.rng.chance(10) {
                    Op::spawn(SpawnPlacement::runner_cgroup(), work)
                } else {
                    let i = self.any_cg()?;
                    Op::spawn(SpawnPlacement::cgroup(&self.cgroups[i].name), work)
                }
            }
            Pick::StopCgroup => {
                let i = self.any_cg()?;
                Op::stop_cgroup(&self.cgroups[i].name)
            }
            Pick::SetAffinity => {
                let i = self.any_cg()?;
                let aff = self.affinity();
                Op::set_affinity(&self.cgroups[i].name, aff)
            }
            Pick::MoveAllTasks => {
                let (a, b) = (self.any_cg()?, self.any_cg()?);
                // Backdrop → step-local moves are refused by the validator.
                if a == b || (self.cgroups[a].backdrop && !self.cgroups[b].backdrop) {
                    return None;
                }
                Op::move_all_tasks(&self.cgroups[a].name, &self.cgroups[b].name)
            }
            Pick::Freeze => {
                let i = self.any_cg()?;
                self.cgroups[i].frozen = true;
                Op::freeze_cgroup(&self.cgroups[i].name)
            }
            Pick::Unfreeze => {
                let frozen: Vec<usize> = (0..self.cgroups.len()).filter(|i| self.cgroups[*i].frozen).collect();
                if frozen.is_empty() {
                    return None;
                }
                let i = *self.rng.pick(&frozen);
                self.cgroups[i].frozen = false;
                Op::unfreeze_cgroup(&self.cgroups[i].name)
            }
            Pick::Sched => {
                let _ = step;
                self.sched_op()?
            }
        };
        Some(op)
    }

    fn step(&mut self, index: usize) -> Step {
        let mut ops = Vec::new();
        if index == 0 {
            ops.extend(self.sched_op());
        }
        let want = self.rng.range(1, self.cfg.max_ops.max(1) as u64) as usize;
        let mut tries = 0;
        while ops.len() < want + usize::from(index == 0) && tries < want * 8 {
            tries += 1;
            if let Some(op) = self.op(index) {
                ops.push(op);
            }
        }
        // Step-local cgroups end with their step.
        self.cgroups.retain(|c| c.backdrop);
        let (lo, hi) = self.cfg.hold_ms;
        Step::new(ops, HoldSpec::fixed_ms(self.rng.range(lo, hi)))
    }
}

/// The stream for `seed`, unvalidated.
fn draw(cfg: &GenConfig, seed: u64) -> OpStream {
    let mut st = State { cfg, rng: Rng::new(seed), cgroups: Vec::new(), attached: false, next_cg: 0 };
    let backdrop = st.backdrop();
    let n = st.rng.range(1, cfg.max_steps.max(1) as u64) as usize;
    let steps = (0..n).map(|i| st.step(i)).collect();
    OpStream {
        contract: CONTRACT_VERSION.to_owned(),
        scenario: info(cfg, &format!("fuzz-{seed:016x}")),
        backdrop,
        steps,
    }
}

/// The scenario description of a generated stream.
pub fn info(cfg: &GenConfig, name: &str) -> ScenarioInfo {
    ScenarioInfo {
        name: name.to_owned(),
        summary: "generated by schedbox fuzz".to_owned(),
        topology: cfg.topology,
        kernel_features: vec![KernelFeature::SchedExt, KernelFeature::CgroupV2],
        payloads: Vec::new(),
        schedulers: cfg.scheduler.iter().cloned().collect(),
        duration_ms: 1000,
    }
}

/// A generated stream and how many draws the validator refused before it.
#[derive(Clone, Debug)]
pub struct Generated {
    pub stream: OpStream,
    pub rejected: u64,
}

/// The `index`-th stream of a run seeded with `seed`: valid, and the same for the same
/// arguments. Draws refused by the validator are drawn again (at most 1000 times, then
/// the last valid fallback: the Backdrop and one hold).
pub fn generate(cfg: &GenConfig, seed: u64, index: u64) -> Generated {
    let mut sub = Rng::new(seed ^ index.wrapping_mul(0xa076_1d64_78bd_642f));
    let mut rejected = 0;
    for _ in 0..1000 {
        let s = draw(cfg, sub.next_u64());
        match validate_stream(&s) {
            Ok(()) => return Generated { stream: s, rejected },
            Err(e) => {
                tracing::debug!("generated stream refused: {e}");
                rejected += 1;
            }
        }
    }
    let mut s = draw(cfg, seed);
    s.steps = vec![Step::new(Vec::new(), HoldSpec::fixed_ms(cfg.hold_ms.0.max(1)))];
    Generated { stream: s, rejected }
}

/// A mutation of `base` (a corpus stream): an op dropped, duplicated or moved, a step
/// dropped or duplicated, a hold changed; valid, else a fresh stream.
pub fn mutate(cfg: &GenConfig, base: &OpStream, seed: u64, index: u64) -> Generated {
    let mut rng = Rng::new(seed ^ index.wrapping_mul(0xe703_7ed1_a0b4_28db) ^ 0x5eed);
    let mut rejected = 0;
    for _ in 0..50 {
        let mut s = base.clone();
        for _ in 0..rng.range(1, 3) {
            mutate_once(&mut s, &mut rng, cfg);
        }
        match validate_stream(&s) {
            Ok(()) => return Generated { stream: s, rejected },
            Err(_) => rejected += 1,
        }
    }
    let mut g = generate(cfg, seed, index);
    g.rejected += rejected;
    g
}

fn mutate_once(s: &mut OpStream, rng: &mut Rng, cfg: &GenConfig) {
    if s.steps.is_empty() {
        return;
    }
    let si = rng.below(s.steps.len() as u64) as usize;
    match rng.below(5) {
        0 if !s.steps[si].ops.is_empty() => {
            let oi = rng.below(s.steps[si].ops.len() as u64) as usize;
            s.steps[si].ops.remove(oi);
        }
        1 if !s.steps[si].ops.is_empty() => {
            let oi = rng.below(s.steps[si].ops.len() as u64) as usize;
            let op = s.steps[si].ops[oi].clone();
            let to = rng.below(s.steps.len() as u64) as usize;
            let at = rng.below(s.steps[to].ops.len() as u64 + 1) as usize;
            s.steps[to].ops.insert(at, op);
        }
        2 if s.steps.len() > 1 => {
            s.steps.remove(si);
        }
        3 if s.steps.len() < cfg.max_steps * 2 => {
            let dup = s.steps[si].clone();
            s.steps.insert(si, dup);
        }
        _ => {
            let (lo, hi) = cfg.hold_ms;
            s.steps[si].hold = HoldSpec::fixed_ms(rng.range(lo, hi));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> GenConfig {
        let t = Topology { numa_nodes: 1, llcs_per_node: 2, cores_per_llc: 2, threads_per_core: 1 };
        GenConfig::new(t, Some("fixture".into()))
    }

    #[test]
    fn same_seed_same_streams_and_all_valid() {
        let c = cfg();
        let mut rejected = 0;
        for i in 0..200 {
            let a = generate(&c, 42, i);
            let b = generate(&c, 42, i);
            assert_eq!(a.stream, b.stream, "stream {i} differs between two generations");
            validate_stream(&a.stream).unwrap_or_else(|e| panic!("stream {i}: {e}"));
            rejected += a.rejected;
        }
        // Most draws are valid as drawn: the generator models what the validator checks.
        assert!(rejected < 200, "{rejected} draws refused for 200 streams");
        assert_ne!(generate(&c, 42, 0).stream, generate(&c, 43, 0).stream);
    }

    #[test]
    fn covers_the_scheduler_relevant_ops() {
        use crate::op_model::OpKind;
        let c = cfg();
        let mut kinds = std::collections::HashSet::new();
        for i in 0..300 {
            for (_, _, op) in generate(&c, 1, i).stream.ops() {
                kinds.insert(op.kind());
            }
        }
        for k in [
            OpKind::AddCgroup,
            OpKind::AddCgroupDef,
            OpKind::RemoveCgroup,
            OpKind::SetCpuset,
            OpKind::ClearCpuset,
            OpKind::SwapCpusets,
            OpKind::Spawn,
            OpKind::StopCgroup,
            OpKind::SetAffinity,
            OpKind::MoveAllTasks,
            OpKind::FreezeCgroup,
            OpKind::UnfreezeCgroup,
            OpKind::AttachScheduler,
            OpKind::ReplaceScheduler,
            OpKind::RestartScheduler,
            OpKind::DetachScheduler,
        ] {
            assert!(kinds.contains(&k), "no {} in 300 streams", k.wit_name());
        }
    }

    #[test]
    fn mutations_are_valid() {
        let c = cfg();
        let base = generate(&c, 9, 0).stream;
        for i in 0..50 {
            validate_stream(&mutate(&c, &base, 9, i).stream).expect("a mutation is valid");
        }
    }
}
