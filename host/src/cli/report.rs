//! `schedbox report`: a JSON report of `schedbox run` (schema in docs/REPORT.md)
//! as a human summary, and optionally an SVG of where the scheduler put the
//! work: per worker group (a cgroup of a step), the samples on each CPU, its CPU
//! time and run delay; per CPU, the total; per step, its status and duration.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::Args;
use plotters::prelude::*;
use schedbox::op_model::{Op, OpStream};
use schedbox::results::{Results, StepResult, StepStatus, WorkerMetrics};
use serde::Deserialize;

use super::Failure;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A report written by `schedbox run --report`.
    pub report: PathBuf,
    /// Also draw the per-CPU placement and step timeline as SVG here.
    #[arg(long, value_name = "FILE.svg")]
    pub svg: Option<PathBuf>,
}

/// The parts of the report this command reads (docs/REPORT.md has all of it).
#[derive(Deserialize)]
struct ReportIn {
    #[serde(default)]
    backend: Option<String>,
    scenarios: Vec<ScenarioIn>,
}

#[derive(Deserialize)]
struct ScenarioIn {
    name: String,
    #[serde(default)]
    source: String,
    verdict: String,
    #[serde(default)]
    messages: Vec<String>,
    #[serde(default)]
    steps: Vec<StepResult>,
    #[serde(default)]
    duration_ms: u64,
    #[serde(default)]
    results: Results,
    stream: Option<OpStream>,
}

/// Workers of one cgroup while one step (or the whole scenario) ran.
struct Group<'a> {
    label: String,
    metrics: &'a WorkerMetrics,
}

/// Labels each worker record with the step that created its cgroup.
///
/// Teardowns report workers in step order, so each record belongs to the
/// earliest step at or after the previous record's that creates its cgroup
/// (after the step of this cgroup's previous record, when a later one creates
/// it again); Backdrop cgroups live for the whole scenario; `""` is the
/// runner's cgroup.
fn groups(s: &ScenarioIn) -> Vec<Group<'_>> {
    let created: Vec<Vec<&str>> = s
        .stream
        .as_ref()
        .map(|st| {
            st.steps
                .iter()
                .map(|step| {
                    let mut names: Vec<&str> = step.setup.iter().map(|d| d.name.as_str()).collect();
                    names.extend(step.ops.iter().filter_map(|op| match op {
                        Op::AddCgroup { name } => Some(name.as_str()),
                        Op::AddCgroupDef { def } => Some(def.name.as_str()),
                        _ => None,
                    }));
                    names
                })
                .collect()
        })
        .unwrap_or_default();
    let mut cursor = 0;
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    s.results
        .workers
        .iter()
        .map(|w| {
            let cg = w.cgroup.as_str();
            let creates = |k: &usize| created[*k].contains(&cg);
            // A second record of a cgroup comes from a later step that creates it again,
            // if one does (else from the same step: stopped twice).
            let from = last.get(cg).map_or(cursor, |&j| (j + 1).max(cursor));
            let step = (from..created.len()).find(creates).or_else(|| (cursor..created.len()).find(creates));
            let label = if cg.is_empty() {
                "runner cgroup".to_owned()
            } else if let Some(k) = step {
                cursor = k;
                last.insert(cg, k);
                format!("step {k} · {}", w.cgroup)
            } else {
                format!("backdrop · {}", w.cgroup)
            };
            Group { label, metrics: w }
        })
        .collect()
}

/// CPU count to draw: the topology's, or enough for every CPU seen.
fn cpu_count(s: &ScenarioIn) -> u32 {
    let seen = s.results.workers.iter().flat_map(|w| w.cpus.iter().map(|(c, _)| c + 1)).max().unwrap_or(0);
    let topo = s.stream.as_ref().map(|st| st.scenario.topology.vcpus() as u32).unwrap_or(0);
    seen.max(topo).max(1)
}

/// Samples per CPU over every worker group.
fn per_cpu_totals(s: &ScenarioIn, cpus: u32) -> Vec<u64> {
    let mut t = vec![0u64; cpus as usize];
    for w in &s.results.workers {
        for (c, n) in &w.cpus {
            if let Some(slot) = t.get_mut(*c as usize) {
                *slot += n;
            }
        }
    }
    t
}

pub fn run(a: ReportArgs) -> Result<u8, Failure> {
    let text = std::fs::read_to_string(&a.report)
        .map_err(|e| Failure::usage(anyhow!("cannot read {}: {e}", a.report.display())))?;
    let report: ReportIn = serde_json::from_str(&text).map_err(|e| {
        Failure::usage(anyhow!(
            "{}: not a schedbox run report ({e}); write one with `schedbox run --report FILE`",
            a.report.display()
        ))
    })?;
    print!("{}", schedbox::untrusted::escape(&summary(&report)));
    if let Some(path) = &a.svg {
        let svg = svg(&report).map_err(Failure::usage)?;
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display())).map_err(Failure::usage)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(0)
}

fn status_name(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Passed => "passed",
        StepStatus::Failed => "failed",
        StepStatus::Skipped => "skipped",
    }
}

/// The human summary: verdicts, steps, and each worker group's placement.
fn summary(r: &ReportIn) -> String {
    let mut out = String::new();
    let backend = r.backend.as_deref().unwrap_or("unknown");
    let _ = writeln!(out, "{} scenario(s) on the {backend} backend", r.scenarios.len());
    for s in &r.scenarios {
        let topo = s.stream.as_ref().map(|st| st.scenario.topology.to_string()).unwrap_or_else(|| "?".into());
        let _ =
            writeln!(out, "\n{} {} — {topo}, {} ms ({})", s.verdict.to_uppercase(), s.name, s.duration_ms, s.source);
        for st in &s.steps {
            let err = st.error.as_deref().map(|e| format!("  {e}")).unwrap_or_default();
            let _ = writeln!(out, "  step {:<3} {:<8} {:>6} ms{err}", st.index, status_name(st.status), st.duration_ms);
        }
        let cpus = cpu_count(s);
        for g in groups(s) {
            let w = g.metrics;
            let total: u64 = w.cpus.iter().map(|(_, n)| n).sum::<u64>().max(1);
            let placement: Vec<String> =
                w.cpus.iter().map(|(c, n)| format!("cpu{c} {:.0}%", *n as f64 * 100.0 / total as f64)).collect();
            let _ = writeln!(
                out,
                "  {}: {} workers, {:.0} ms CPU, {:.1} ms run delay, {} migrations; {}",
                g.label,
                w.workers,
                w.cpu_time_ns as f64 / 1e6,
                w.run_delay_ns as f64 / 1e6,
                w.migrations,
                if placement.is_empty() { "no samples".into() } else { placement.join(", ") }
            );
        }
        let totals = per_cpu_totals(s, cpus);
        if totals.iter().any(|&n| n > 0) {
            let idle: Vec<String> =
                totals.iter().enumerate().filter(|(_, &n)| n == 0).map(|(c, _)| format!("cpu{c}")).collect();
            if !idle.is_empty() {
                let _ = writeln!(out, "  no worker samples on: {}", idle.join(", "));
            }
        }
        for m in &s.messages {
            let _ = writeln!(out, "  - {m}");
        }
    }
    out
}

const WIDTH: u32 = 960;
const CELL_H: i32 = 26;
const LEFT: i32 = 200;
const RIGHT_TEXT: i32 = 240;
const FONT: &str = "sans-serif";

fn heat(share: f64) -> RGBColor {
    // White (no samples) to a saturated blue (every sample of the row).
    let s = share.clamp(0.0, 1.0);
    let mix = |from: f64, to: f64| (from + (to - from) * s).round() as u8;
    RGBColor(mix(250.0, 31.0), mix(250.0, 94.0), mix(250.0, 180.0))
}

fn step_color(s: StepStatus) -> RGBColor {
    match s {
        StepStatus::Passed => RGBColor(76, 160, 90),
        StepStatus::Failed => RGBColor(200, 60, 60),
        StepStatus::Skipped => RGBColor(170, 170, 170),
    }
}

/// Height one scenario's panel takes.
fn panel_height(s: &ScenarioIn) -> i32 {
    // Title, step bar, header, one row per group, the totals row, margins.
    40 + 40 + 22 + CELL_H * (s.results.workers.len() as i32 + 1) + 36
}

/// The SVG: one panel per scenario.
fn svg(r: &ReportIn) -> anyhow::Result<String> {
    let height: i32 = 10 + r.scenarios.iter().map(panel_height).sum::<i32>();
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, height.max(60) as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("drawing: {e}"))?;
        let mut y = 10;
        for s in &r.scenarios {
            draw_panel(&root, s, y).map_err(|e| anyhow!("drawing {}: {e}", s.name))?;
            y += panel_height(s);
        }
        root.present().map_err(|e| anyhow!("drawing: {e}"))?;
    }
    Ok(buf)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn text(area: &Area<'_>, s: &str, (x, y): (i32, i32), size: u32, color: &RGBColor) -> DrawResult {
    area.draw(&Text::new(s.to_owned(), (x, y), (FONT, size).into_font().color(color)))
}

fn draw_panel(area: &Area<'_>, s: &ScenarioIn, top: i32) -> DrawResult {
    let topo = s.stream.as_ref().map(|st| st.scenario.topology.to_string()).unwrap_or_else(|| "?".into());
    text(
        area,
        &format!("{} — {} ({topo}, {} ms)", s.name, s.verdict.to_uppercase(), s.duration_ms),
        (10, top),
        19,
        &BLACK,
    )?;

    // Steps: a bar each, as wide as its share of the run.
    let y = top + 26;
    let span = (WIDTH as i32 - LEFT - 10).max(1);
    let total_ms: u64 = s.steps.iter().map(|st| st.duration_ms.max(1)).sum::<u64>().max(1);
    text(area, "steps", (10, y + 4), 14, &BLACK)?;
    let mut x = LEFT;
    for st in &s.steps {
        let w = ((st.duration_ms.max(1) as f64 / total_ms as f64) * span as f64).round() as i32;
        area.draw(&Rectangle::new([(x, y), (x + w.max(2) - 1, y + 20)], step_color(st.status).filled()))?;
        let label = format!("step {} {} {} ms", st.index, status_name(st.status), st.duration_ms);
        if w > 90 {
            text(area, &label, (x + 4, y + 4), 13, &WHITE)?;
        }
        x += w.max(2);
    }

    // Placement: worker groups × CPUs, shaded by each row's share of samples.
    let cpus = cpu_count(s);
    let grid = (WIDTH as i32 - LEFT - RIGHT_TEXT).max(cpus as i32);
    let cell_w = (grid / cpus as i32).max(1);
    let header = top + 72;
    for c in 0..cpus as i32 {
        text(area, &format!("cpu {c}"), (LEFT + c * cell_w + 4, header), 13, &BLACK)?;
    }
    let right = LEFT + cell_w * cpus as i32 + 8;
    text(area, "CPU time · run delay · migrations", (right, header), 13, &BLACK)?;
    let mut row = header + 16;
    for g in groups(s) {
        let w = g.metrics;
        let sum: u64 = w.cpus.iter().map(|(_, n)| n).sum::<u64>().max(1);
        text(area, &format!("{} ({}w)", g.label, w.workers), (10, row + 7), 13, &BLACK)?;
        for c in 0..cpus {
            let n = w.cpus.iter().filter(|(cpu, _)| *cpu == c).map(|(_, n)| n).sum::<u64>();
            let x0 = LEFT + c as i32 * cell_w;
            let share = n as f64 / sum as f64;
            area.draw(&Rectangle::new([(x0, row), (x0 + cell_w - 2, row + CELL_H - 3)], heat(share).filled()))?;
            if n > 0 {
                let ink = if share > 0.5 { WHITE } else { BLACK };
                text(area, &format!("{:.0}%", share * 100.0), (x0 + 4, row + 7), 13, &ink)?;
            }
        }
        let stats =
            format!("{:.0} ms · {:.1} ms · {}", w.cpu_time_ns as f64 / 1e6, w.run_delay_ns as f64 / 1e6, w.migrations);
        text(area, &stats, (right, row + 7), 13, &BLACK)?;
        row += CELL_H;
    }

    // Totals: one cell per CPU that had work, labelled `cpu N · samples`.
    let totals = per_cpu_totals(s, cpus);
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    text(area, "all workers", (10, row + 7), 13, &BLACK)?;
    for (c, &n) in totals.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let x0 = LEFT + c as i32 * cell_w;
        let share = n as f64 / max as f64;
        area.draw(&Rectangle::new([(x0, row), (x0 + cell_w - 2, row + CELL_H - 3)], heat(share).filled()))?;
        let ink = if share > 0.5 { WHITE } else { BLACK };
        text(area, &format!("cpu {c} · {n}"), (x0 + 4, row + 7), 13, &ink)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(workers: Vec<WorkerMetrics>) -> ScenarioIn {
        ScenarioIn {
            name: "s".into(),
            source: "s.wasm".into(),
            verdict: "pass".into(),
            messages: Vec::new(),
            steps: vec![StepResult { index: 0, status: StepStatus::Passed, error: None, duration_ms: 100 }],
            duration_ms: 100,
            results: Results { workers, ..Results::default() },
            stream: None,
        }
    }

    fn w(cgroup: &str, cpus: Vec<(u32, u64)>) -> WorkerMetrics {
        WorkerMetrics {
            cgroup: cgroup.into(),
            workers: 2,
            iterations: 1,
            cpu_time_ns: 5_000_000,
            run_delay_ns: 0,
            migrations: 0,
            cpus,
        }
    }

    #[test]
    fn worker_groups_are_labelled_with_the_step_that_created_their_cgroup() {
        use schedbox::op_model::{Backdrop, CgroupDef, HoldSpec, ScenarioInfo, Step, Topology};
        let step = |names: &[&str]| Step::new(names.iter().map(|n| Op::add_cgroup(*n)).collect(), HoldSpec::FULL);
        let mut s = scenario(vec![
            w("x", vec![(0, 1)]),
            w("y", vec![(1, 1)]),
            w("x", vec![(1, 1)]),
            w("base", vec![(0, 1)]),
            w("", vec![(0, 1)]),
        ]);
        s.stream = Some(OpStream {
            contract: "0.1.0".into(),
            scenario: ScenarioInfo {
                name: "s".into(),
                summary: String::new(),
                topology: Topology { numa_nodes: 1, llcs_per_node: 1, cores_per_llc: 2, threads_per_core: 1 },
                kernel_features: Vec::new(),
                payloads: Vec::new(),
                schedulers: Vec::new(),
                duration_ms: 100,
            },
            backdrop: Backdrop::new().push_cgroup(CgroupDef::named("base")),
            // `x` exists in steps 0 and 2: its second record belongs to step 2.
            steps: vec![step(&["x"]), step(&["y"]), step(&["x"])],
        });
        let labels: Vec<String> = groups(&s).into_iter().map(|g| g.label).collect();
        assert_eq!(labels, ["step 0 · x", "step 1 · y", "step 2 · x", "backdrop · base", "runner cgroup"]);
    }

    #[test]
    fn the_svg_labels_every_cpu_with_work_and_no_idle_one() {
        let r = ReportIn {
            backend: Some("qemu".into()),
            scenarios: vec![scenario(vec![w("a", vec![(0, 3), (2, 5)]), w("b", vec![(2, 1)])])],
        };
        let svg = svg(&r).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("cpu 0 · 3"), "{svg}");
        assert!(svg.contains("cpu 2 · 6"), "{svg}");
        assert!(!svg.contains("cpu 1 · "), "cpu 1 had no work: {svg}");
        let text = summary(&r);
        assert!(text.contains("no worker samples on: cpu1"), "{text}");
    }
}
