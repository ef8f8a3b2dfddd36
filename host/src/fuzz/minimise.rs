//! Delta debugging of a failing stream: steps, then ops (Backdrop cgroups and ops
//! included), again while that shrinks it, then numeric arguments (worker counts, holds, CPU sets), each candidate
//! validated and re-run until the failure no longer reproduces, within a budget.

use std::time::{Duration, Instant};

use crate::op_model::{CpusetSpec, HoldSpec, Op, OpStream, WorkSpec, WorkerCount};
use crate::validate::validate_stream;

use super::oracles::Finding;

/// Runs a stream on a clean guest and judges it.
pub trait Runner {
    /// The oracles' findings; `Err` when the guest could not run it at all (no guest).
    fn run(&mut self, stream: &OpStream) -> Result<Vec<Finding>, String>;
}

/// How much minimising may cost.
#[derive(Clone, Debug)]
pub struct Budget {
    pub runs: u64,
    pub time: Duration,
    /// Runs per candidate: it reproduces when any of them fails the same way (for
    /// flaky failures).
    pub tries: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Self { runs: 200, time: Duration::from_secs(600), tries: 1 }
    }
}

/// What minimising found.
#[derive(Clone, Debug)]
pub struct Minimised {
    pub stream: OpStream,
    /// Candidate runs (invalid candidates are not run).
    pub runs: u64,
    pub elapsed: Duration,
    /// The budget ran out before every reduction was tried.
    pub exhausted: bool,
}

struct Search<'a, R: Runner> {
    runner: &'a mut R,
    signature: &'a str,
    budget: &'a Budget,
    start: Instant,
    runs: u64,
    exhausted: bool,
}

impl<R: Runner> Search<'_, R> {
    fn out_of_budget(&mut self) -> bool {
        if self.runs >= self.budget.runs || self.start.elapsed() >= self.budget.time {
            self.exhausted = true;
        }
        self.exhausted
    }

    /// Whether `cand` is valid and still fails with the signature.
    fn reproduces(&mut self, cand: &OpStream) -> bool {
        if validate_stream(cand).is_err() {
            return false;
        }
        for _ in 0..self.budget.tries.max(1) {
            if self.out_of_budget() {
                return false;
            }
            self.runs += 1;
            match self.runner.run(cand) {
                Ok(f) if f.iter().any(|f| f.signature == self.signature) => return true,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("minimising: a candidate could not run: {e}");
                    self.exhausted = true;
                    return false;
                }
            }
        }
        false
    }
}

/// Delta debugging (ddmin, complements only) over `n` units: the smallest subset of
/// indices found for which `test` holds (`test` of every index is assumed to hold).
/// `min` units are always kept.
pub fn ddmin(n: usize, min: usize, mut test: impl FnMut(&[usize]) -> bool) -> Vec<usize> {
    let mut cur: Vec<usize> = (0..n).collect();
    let mut gran = 2usize;
    while cur.len() > min {
        let chunk = cur.len().div_ceil(gran).max(1);
        let mut reduced = false;
        let mut at = 0;
        while at < cur.len() {
            let comp: Vec<usize> = cur[..at].iter().chain(&cur[(at + chunk).min(cur.len())..]).copied().collect();
            if comp.len() >= min && comp.len() < cur.len() && test(&comp) {
                cur = comp;
                gran = gran.saturating_sub(1).max(2);
                reduced = true;
                break;
            }
            at += chunk;
        }
        if !reduced {
            if chunk == 1 {
                break;
            }
            gran = (gran * 2).min(cur.len());
        }
    }
    cur
}

/// Every op of a stream by position: `None` = the Backdrop.
type OpAt = (Option<usize>, usize);

fn op_positions(s: &OpStream) -> Vec<OpAt> {
    let mut v: Vec<OpAt> = (0..s.backdrop.ops.len()).map(|i| (None, i)).collect();
    for (si, step) in s.steps.iter().enumerate() {
        v.extend((0..step.ops.len()).map(|i| (Some(si), i)));
    }
    v
}

fn keep_ops(s: &OpStream, all: &[OpAt], keep: &[usize]) -> OpStream {
    let kept: std::collections::HashSet<OpAt> = keep.iter().map(|i| all[*i]).collect();
    let mut out = s.clone();
    let mut i = 0;
    out.backdrop.ops.retain(|_| {
        i += 1;
        kept.contains(&(None, i - 1))
    });
    for (si, step) in out.steps.iter_mut().enumerate() {
        let mut i = 0;
        step.ops.retain(|_| {
            i += 1;
            kept.contains(&(Some(si), i - 1))
        });
    }
    out
}

/// Minimises `failing`, which failed with `signature`.
pub fn minimise<R: Runner>(failing: &OpStream, signature: &str, runner: &mut R, budget: &Budget) -> Minimised {
    let mut s = Search { runner, signature, budget, start: Instant::now(), runs: 0, exhausted: false };
    let mut best = failing.clone();

    // 1 and 2 again while they shrink the stream: removing ops can empty a step or free a
    // Backdrop cgroup that an earlier pass had to keep.
    let size = |s: &OpStream| s.steps.len() + s.backdrop.cgroups.len() + s.op_count();
    loop {
        let before = size(&best);

        // 1. Steps.
        let steps = best.steps.clone();
        let keep = ddmin(steps.len(), 1, |keep| {
            let mut c = best.clone();
            c.steps = keep.iter().map(|i| steps[*i].clone()).collect();
            s.reproduces(&c)
        });
        best.steps = keep.iter().map(|i| steps[*i].clone()).collect();

        // 2. Backdrop cgroups, then ops.
        let defs = best.backdrop.cgroups.clone();
        let keep = ddmin(defs.len(), 0, |keep| {
            let mut c = best.clone();
            c.backdrop.cgroups = keep.iter().map(|i| defs[*i].clone()).collect();
            s.reproduces(&c)
        });
        best.backdrop.cgroups = keep.iter().map(|i| defs[*i].clone()).collect();
        let all = op_positions(&best);
        let keep = ddmin(all.len(), 0, |keep| s.reproduces(&keep_ops(&best, &all, keep)));
        best = keep_ops(&best, &all, &keep);

        if size(&best) == before || s.out_of_budget() {
            break;
        }
    }

    // 3. Numbers: one at a time, each kept when the failure stays.
    for cand in shrink_numbers(&best) {
        if s.out_of_budget() {
            break;
        }
        // Re-derive against the current best: apply the same edit to it.
        let c = apply_edit(&best, &cand);
        if c != best && s.reproduces(&c) {
            best = c;
        }
    }
    Minimised { stream: best, runs: s.runs, elapsed: s.start.elapsed(), exhausted: s.exhausted }
}

/// One numeric reduction: where, and to what.
#[derive(Clone, Debug)]
enum Edit {
    Hold {
        step: usize,
        ms: u64,
    },
    /// Workers of a spawn op (`step` None: Backdrop op) or of a cgroup definition.
    SpawnWorkers {
        at: OpAt,
        n: u32,
    },
    DefWorkers {
        def: usize,
        spec: usize,
        n: u32,
    },
    OpDefWorkers {
        at: OpAt,
        spec: usize,
        n: u32,
    },
    Cpuset {
        at: OpAt,
        cpu: u32,
    },
}

fn shrink_numbers(s: &OpStream) -> Vec<Edit> {
    let mut v = Vec::new();
    let workers = |w: &WorkSpec| match w.workers {
        WorkerCount::Count(n) if n > 1 => Some(w.work.group_size().max(1)),
        _ => None,
    };
    for (di, d) in s.backdrop.cgroups.iter().enumerate() {
        for (wi, w) in d.workers.iter().enumerate() {
            if let Some(n) = workers(w) {
                v.push(Edit::DefWorkers { def: di, spec: wi, n });
            }
        }
    }
    for (at, op) in op_positions(s).into_iter().map(|at| (at, op_at(s, at))) {
        match op {
            Op::Spawn { work, .. } => {
                if let Some(n) = workers(work) {
                    v.push(Edit::SpawnWorkers { at, n });
                }
            }
            Op::AddCgroupDef { def } => {
                for (wi, w) in def.workers.iter().enumerate() {
                    if let Some(n) = workers(w) {
                        v.push(Edit::OpDefWorkers { at, spec: wi, n });
                    }
                }
            }
            Op::SetCpuset { cpus: CpusetSpec::Exact(c), .. } if c.len() > 1 => v.push(Edit::Cpuset { at, cpu: c[0] }),
            _ => {}
        }
    }
    for (si, step) in s.steps.iter().enumerate() {
        if let HoldSpec::FixedMs(ms) = step.hold {
            if ms > 10 {
                v.push(Edit::Hold { step: si, ms: (ms / 2).max(10) });
            }
        }
    }
    v
}

fn op_at(s: &OpStream, at: OpAt) -> &Op {
    match at.0 {
        None => &s.backdrop.ops[at.1],
        Some(si) => &s.steps[si].ops[at.1],
    }
}

fn op_at_mut(s: &mut OpStream, at: OpAt) -> Option<&mut Op> {
    match at.0 {
        None => s.backdrop.ops.get_mut(at.1),
        Some(si) => s.steps.get_mut(si)?.ops.get_mut(at.1),
    }
}

fn apply_edit(s: &OpStream, e: &Edit) -> OpStream {
    let mut c = s.clone();
    match e {
        Edit::Hold { step, ms } => {
            if let Some(st) = c.steps.get_mut(*step) {
                st.hold = HoldSpec::fixed_ms(*ms);
            }
        }
        Edit::SpawnWorkers { at, n } => {
            if let Some(Op::Spawn { work, .. }) = op_at_mut(&mut c, *at) {
                work.workers = WorkerCount::Count(*n);
            }
        }
        Edit::DefWorkers { def, spec, n } => {
            if let Some(w) = c.backdrop.cgroups.get_mut(*def).and_then(|d| d.workers.get_mut(*spec)) {
                w.workers = WorkerCount::Count(*n);
            }
        }
        Edit::OpDefWorkers { at, spec, n } => {
            if let Some(Op::AddCgroupDef { def }) = op_at_mut(&mut c, *at) {
                if let Some(w) = def.workers.get_mut(*spec) {
                    w.workers = WorkerCount::Count(*n);
                }
            }
        }
        Edit::Cpuset { at, cpu } => {
            if let Some(Op::SetCpuset { cpus, .. }) = op_at_mut(&mut c, *at) {
                *cpus = CpusetSpec::exact([*cpu]);
            }
        }
    }
    c
}

/// What [`stabilise`] settled on.
#[derive(Clone, Debug)]
pub struct Stabilised {
    pub stream: OpStream,
    /// Its reproduction rate: failed the same way in `hit` of `ran` re-runs.
    pub hit: u32,
    pub ran: u32,
    /// How many times every fixed hold was doubled (0: the stream as given).
    pub doublings: u32,
    /// Re-runs spent, the first `n` included.
    pub runs: u64,
}

/// Makes a minimal stream reproduce every time when the failure it came from did. A
/// failure that needs time (a watchdog, a scheduler that errors after a while, a stall
/// that builds up) minimises to the edge of that time: the last shrink that still failed
/// once, which fails only sometimes. `minimal` is re-run `n` times; when some re-run
/// passed, every fixed hold is doubled (at most `max_doublings` times) until a candidate
/// fails in all `n` re-runs, and then once more, for a margin against a slower or busier
/// host, when that one fails in all `n` too. When no doubling fails every time, the
/// stream as given is kept with its own rate.
pub fn stabilise<R: Runner>(
    minimal: &OpStream,
    signature: &str,
    runner: &mut R,
    n: u32,
    max_doublings: u32,
) -> Stabilised {
    let (hit, ran) = reproduction_rate(minimal, signature, runner, n);
    let mut runs = u64::from(ran);
    let given = Stabilised { stream: minimal.clone(), hit, ran, doublings: 0, runs };
    if ran == 0 || hit == ran || !minimal.steps.iter().any(|s| matches!(s.hold, HoldSpec::FixedMs(_))) {
        return given;
    }
    let mut found: Option<Stabilised> = None;
    for k in 1..=max_doublings {
        let cand = scale_holds(minimal, 1 << k);
        let (h, r) = reproduction_rate(&cand, signature, runner, n);
        runs += u64::from(r);
        let every = r == n && h == r;
        match &found {
            None if every => found = Some(Stabilised { stream: cand, hit: h, ran: r, doublings: k, runs }),
            None => {}
            // The margin.
            Some(_) if every => return Stabilised { stream: cand, hit: h, ran: r, doublings: k, runs },
            Some(f) => return Stabilised { runs, ..f.clone() },
        }
        if r < n {
            // The guest could not run it: keep what is known.
            break;
        }
    }
    found.map(|f| Stabilised { runs, ..f }).unwrap_or(Stabilised { runs, ..given })
}

/// `s` with every fixed hold `factor` times as long.
fn scale_holds(s: &OpStream, factor: u64) -> OpStream {
    let mut c = s.clone();
    for step in &mut c.steps {
        if let HoldSpec::FixedMs(ms) = step.hold {
            step.hold = HoldSpec::fixed_ms(ms.max(1).saturating_mul(factor));
        }
    }
    c
}

/// Runs `stream` `n` times; how many failed with `signature`.
pub fn reproduction_rate<R: Runner>(stream: &OpStream, signature: &str, runner: &mut R, n: u32) -> (u32, u32) {
    let mut hit = 0;
    let mut ran = 0;
    for _ in 0..n {
        match runner.run(stream) {
            Ok(f) => {
                ran += 1;
                if f.iter().any(|f| f.signature == signature) {
                    hit += 1;
                }
            }
            Err(e) => {
                tracing::warn!("re-running the minimal stream: {e}");
                break;
            }
        }
    }
    (hit, ran)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::generator::{generate, GenConfig};
    use crate::fuzz::oracles::Oracle;
    use crate::op_model::{Step, Topology};

    /// A planted bug in a fake guest: fails when a freeze is followed, anywhere later,
    /// by a single-CPU cpuset of another cgroup.
    struct Planted {
        runs: u64,
    }

    fn planted(s: &OpStream) -> bool {
        let ops: Vec<&Op> = s.ops().map(|(_, _, op)| op).collect();
        ops.iter().enumerate().any(|(i, op)| match op {
            Op::FreezeCgroup { cgroup } => ops[i + 1..].iter().any(
                |o| matches!(o, Op::SetCpuset { cgroup: c, cpus: CpusetSpec::Exact(v) } if c != cgroup && v.len() == 1),
            ),
            _ => false,
        })
    }

    impl Runner for Planted {
        fn run(&mut self, s: &OpStream) -> Result<Vec<Finding>, String> {
            self.runs += 1;
            Ok(if planted(s) {
                vec![Finding { oracle: Oracle::SchedulerExit, detail: "planted".into(), signature: "x".into() }]
            } else {
                Vec::new()
            })
        }
    }

    /// A failure that needs time: it fails when the holds add up to 400 ms or more, and
    /// every other run from 200 ms (the edge a minimiser leaves it at).
    struct Timed {
        runs: u64,
    }

    impl Runner for Timed {
        fn run(&mut self, s: &OpStream) -> Result<Vec<Finding>, String> {
            self.runs += 1;
            let total: u64 = s.steps.iter().map(|st| if let HoldSpec::FixedMs(ms) = st.hold { ms } else { 0 }).sum();
            let fails = total >= 400 || (total >= 200 && self.runs.is_multiple_of(2));
            Ok(if fails {
                vec![Finding { oracle: Oracle::SchedulerExit, detail: "timed".into(), signature: "t".into() }]
            } else {
                Vec::new()
            })
        }
    }

    fn held(ms: &[u64]) -> OpStream {
        let t = Topology { numa_nodes: 1, llcs_per_node: 1, cores_per_llc: 2, threads_per_core: 1 };
        let mut s = generate(&GenConfig::new(t, Some("fixture".into())), 1, 0).stream;
        s.backdrop = Default::default();
        s.steps =
            ms.iter().map(|ms| Step::new(vec![Op::attach_scheduler("fixture")], HoldSpec::fixed_ms(*ms))).collect();
        s
    }

    #[test]
    fn a_failure_at_the_edge_of_its_time_gets_longer_holds_and_a_margin() {
        let mut r = Timed { runs: 0 };
        // 100 ms: never; 200: every other run; 400: every run; 800: the margin.
        let st = stabilise(&held(&[60, 40]), "t", &mut r, 3, 6);
        assert_eq!(st.doublings, 3, "{st:?}");
        assert_eq!((st.hit, st.ran), (3, 3));
        let holds: Vec<_> = st.stream.steps.iter().map(|s| s.hold.clone()).collect();
        assert_eq!(holds, [HoldSpec::fixed_ms(480), HoldSpec::fixed_ms(320)]);
        assert_eq!(st.runs, 12, "the given stream, then three doublings, three runs each");
        assert_eq!(st.runs, r.runs);

        // One that already fails every time is left alone.
        let st = stabilise(&held(&[500]), "t", &mut r, 3, 6);
        assert_eq!((st.doublings, st.hit, st.ran, st.runs), (0, 3, 3, 3));
        assert_eq!(st.stream, held(&[500]));

        // One that no doubling fixes keeps its own rate.
        let mut never = Planted { runs: 0 };
        let st = stabilise(&held(&[10]), "x", &mut never, 3, 2);
        assert_eq!((st.doublings, st.hit, st.ran, st.runs), (0, 0, 3, 9));
        assert_eq!(st.stream, held(&[10]));
    }

    #[test]
    fn ddmin_finds_the_two_needed_units() {
        let keep = ddmin(40, 0, |k| k.contains(&7) && k.contains(&31));
        assert_eq!(keep, vec![7, 31]);
        assert_eq!(ddmin(5, 1, |_| true).len(), 1);
    }

    #[test]
    fn minimises_a_planted_failure_to_its_trigger() {
        let t = Topology { numa_nodes: 1, llcs_per_node: 2, cores_per_llc: 2, threads_per_core: 1 };
        let mut cfg = GenConfig::new(t, Some("fixture".into()));
        cfg.max_steps = 6;
        cfg.max_ops = 8;
        let failing = (0..2000)
            .map(|i| generate(&cfg, 5, i).stream)
            .find(|s| planted(s) && s.op_count() >= 10)
            .expect("the generator reaches the planted trigger");
        let mut r = Planted { runs: 0 };
        let m = minimise(&failing, "x", &mut r, &Budget::default());
        assert!(planted(&m.stream));
        validate_stream(&m.stream).expect("the minimal stream is valid");
        // The freeze, the cpuset and what they need to be valid (the cgroups, and a step).
        assert!(
            m.stream.op_count() <= 4,
            "{} ops left of {}: {:#?}",
            m.stream.op_count(),
            failing.op_count(),
            m.stream
        );
        assert!(m.stream.op_count() < failing.op_count());
        // A second pass drops the steps that removing ops emptied.
        assert!(m.stream.steps.iter().all(|s| !s.ops.is_empty()), "{:#?}", m.stream);
        assert_eq!(m.runs, r.runs);
        assert_eq!(reproduction_rate(&m.stream, "x", &mut r, 3), (3, 3));
    }
}
