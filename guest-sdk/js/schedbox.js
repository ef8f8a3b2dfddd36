// schedbox scenarios in JavaScript: defaults for the WIT records and builders
// named like the Rust SDK's (`schedbox_scenario`), over the imports that
// `jco componentize` binds (`schedbox:scenario/ops@0.1.0`).
//
// A scenario is an object with `describe`, `run` and `check`; `exportScenario`
// gives the three functions the component exports:
//
//   import { ScenarioInfo, Backdrop, CgroupDef, Step, HoldSpec, Checker, emit, exportScenario } from "./schedbox.js";
//   const scenario = exportScenario({
//     describe: () => ScenarioInfo.new("idle", "holds").topology(1, 1, 2, 1),
//     run: () => emit(Backdrop.new(), [Step.new([], HoldSpec.FULL)]),
//     check: (results) => { const c = Checker.new(); c.expectStepsPassed(results); return c.verdict(); },
//   });
//   export const { describe, run, check } = scenario;
//
// Build with `jco componentize app.js --wit wit -n scenario --bundle -o app.wasm`.
//
// WIT mapping (jco): records are objects with camelCase fields, variants
// `{ tag, val }`, enums strings, options `undefined` or the value, and every
// u64 (durations in ms, kernel values, byte counts) a BigInt: the builders
// take numbers and convert.
//
// `run` fails (returns `err` to the host) when it throws a `ScenarioError` (an
// `EmitError` is one) or a string; any other exception is printed to the
// guest's stderr with its stack and fails `run` with its message. The host
// checks every op where it is called; `emit` stops at the first rejection and
// throws an `EmitError` whose message is the Rust SDK's: `step 1, op 2
// (set-cpuset): disjoint index 2 is not below of=2 — use an index in 0..2`.

import * as ops from "schedbox:scenario/ops@0.1.0";
import { steps as metricsSteps, latencies as metricsLatencies } from "schedbox:scenario/metrics@0.1.0";

const u64 = (v) => (typeof v === "bigint" ? v : BigInt(v));
const millis = (v) => {
  if (typeof v === "bigint") return v;
  if (!Number.isInteger(v) || v < 0) throw new TypeError(`expected a millisecond count (integer >= 0), got ${v}`);
  return BigInt(v);
};
const unit = (tag) => ({ tag });
const variant = (tag, val) => ({ tag, val });

// ---------------------------------------------------------------------------
// Variant constructors
// ---------------------------------------------------------------------------

export const CpusetSpec = {
  llc: (index) => variant("llc", index),
  numa: (index) => variant("numa", index),
  range: (start, end) => variant("range", { start, end }),
  disjoint: (index, of) => variant("disjoint", { index, of }),
  overlap: (index, of, frac) => variant("overlap", { index, of, frac }),
  exact: (cpus) => variant("exact", [...cpus]),
};

export const SpawnPlacement = {
  runnerCgroup: () => unit("runner-cgroup"),
  cgroup: (name) => variant("cgroup", name),
};

export const IrqSelector = {
  byNumber: (irq) => variant("by-number", irq),
  byLabel: (label) => variant("by-label", label),
};

export const KernelTarget = {
  symbol: (name) => variant("symbol", name),
  direct: (kva) => variant("direct", u64(kva)),
  kva: (kva) => variant("kva", u64(kva)),
  perCpuField: (symbol, field, cpu) => variant("per-cpu-field", { symbol, field, cpu }),
  taskField: (pid, expectedStartTimeNs, field) =>
    variant("task-field", { pid, expectedStartTimeNs: u64(expectedStartTimeNs), field }),
};

export const KernelValue = {
  u32: (value) => variant("u32", value),
  u64: (value) => variant("u64", u64(value)),
  bytes: (data) => variant("bytes", Uint8Array.from(data)),
  orU32: (mask) => variant("or-u32", mask),
  /** The number a read returned (`u32` or `u64`, as a BigInt), else undefined. */
  asBigInt: (value) => (value && (value.tag === "u32" || value.tag === "u64") ? BigInt(value.val) : undefined),
};

export const KernelValueWidth = {
  u32: () => unit("u32"),
  u64: () => unit("u64"),
  bytes: (len) => variant("bytes", len),
};

export const KernelWrite = { new: (target, value) => ({ target, value }) };

export const WorkType = {
  spinWait: () => unit("spin-wait"),
  yieldHeavy: () => unit("yield-heavy"),
  mixed: () => unit("mixed"),
  bursty: (burstMs, sleepMs) => variant("bursty", { burstMs: millis(burstMs), sleepMs: millis(sleepMs) }),
  futexPingPong: (spinIters) => variant("futex-ping-pong", u64(spinIters)),
  futexFanOut: (fanOut, spinIters) => variant("futex-fan-out", { fanOut, spinIters: u64(spinIters) }),
  pipeIo: (burstIters) => variant("pipe-io", u64(burstIters)),
  cachePressure: (sizeKib, stride) => variant("cache-pressure", { sizeKib, stride }),
  wakeChain: (depth) => variant("wake-chain", depth),
  forkExit: () => unit("fork-exit"),
  sleep: (periodMs) => variant("sleep", millis(periodMs)),
  waitOnFutex: () => unit("wait-on-futex"),
  sequence: (phases) => variant("sequence", [...phases]),
};

export const Phase = {
  spin: (ms) => variant("spin", millis(ms)),
  sleep: (ms) => variant("sleep", millis(ms)),
  yieldFor: (ms) => variant("yield", millis(ms)),
};

export const AffinityIntent = {
  Inherit: unit("inherit"),
  LlcAligned: unit("llc-aligned"),
  CrossCgroup: unit("cross-cgroup"),
  SingleCpu: unit("single-cpu"),
  SmtSiblingPair: unit("smt-sibling-pair"),
  exact: (cpus) => variant("exact", [...cpus]),
  randomSubset: (count) => variant("random-subset", count),
};

export const SchedPolicy = {
  Normal: unit("normal"),
  Batch: unit("batch"),
  Idle: unit("idle"),
  Ext: unit("ext"),
  fifo: (priority) => variant("fifo", priority),
  rr: (priority) => variant("rr", priority),
};

export const KernelFeature = { SchedExt: unit("sched-ext"), Btf: unit("btf"), CgroupV2: unit("cgroup-v2") };

export const HoldSpec = {
  FULL: variant("frac", 1.0),
  frac: (frac) => variant("frac", frac),
  fixed: (ms) => variant("fixed", millis(ms)),
  loopEvery: (ms) => variant("loop", millis(ms)),
};

// ---------------------------------------------------------------------------
// Records with defaults, built with chained setters
// ---------------------------------------------------------------------------

const record = (v) => (v && typeof v.build === "function" ? v.build() : v);

/** A worker group; `WorkSpec.default()` is one spin-wait worker, SCHED_NORMAL, nice 0, inherited affinity. */
export class WorkSpec {
  constructor() {
    this.r = { work: unit("spin-wait"), workers: variant("count", 1), policy: unit("normal"), nice: 0, affinity: unit("inherit"), comm: undefined };
  }
  static default() { return new WorkSpec(); }
  work(work) { this.r.work = work; return this; }
  workers(count) { this.r.workers = variant("count", count); return this; }
  workersPct(pct) { this.r.workers = variant("pct", pct); return this; }
  policy(policy) { this.r.policy = policy; return this; }
  nice(nice) { this.r.nice = nice; return this; }
  affinity(affinity) { this.r.affinity = affinity; return this; }
  comm(comm) { this.r.comm = comm; return this; }
  /** The WIT record. */
  build() { return this.r; }
}

/** A cgroup with its knobs and workload; `CgroupDef.named(name)` has none. */
export class CgroupDef {
  constructor(name) {
    this.r = {
      name, cpuset: undefined, cpusetMems: undefined, cpuWeight: undefined, cpuMax: undefined, memoryMax: undefined,
      pidsMax: undefined, ioWeight: undefined, workers: [], payload: undefined, swappable: false,
    };
  }
  static named(name) { return new CgroupDef(name); }
  cpuset(spec) { this.r.cpuset = spec; return this; }
  cpusetMems(nodes) { this.r.cpusetMems = [...nodes]; return this; }
  cpuWeight(weight) { this.r.cpuWeight = weight; return this; }
  cpuMax(quotaUs, periodUs) { this.r.cpuMax = { quotaUs: u64(quotaUs), periodUs: u64(periodUs) }; return this; }
  memoryMax(bytes) { this.r.memoryMax = u64(bytes); return this; }
  pidsMax(max) { this.r.pidsMax = u64(max); return this; }
  ioWeight(weight) { this.r.ioWeight = weight; return this; }
  /** Add a `WorkSpec.default()` group of `count` spin workers. */
  workers(count) { return this.work(WorkSpec.default().workers(count)); }
  work(spec) { this.r.workers.push(record(spec)); return this; }
  payload(name, args = []) { this.r.payload = { name, args: [...args] }; return this; }
  swappable(swappable) { this.r.swappable = swappable; return this; }
  /** The WIT record. */
  build() { return this.r; }
}

/** `ScenarioInfo.new(name, summary)`: 1 node x 1 LLC x 2 cores x 1 thread, no needs, lasting 3000 ms. */
export class ScenarioInfo {
  constructor(name, summary) {
    this.r = {
      name, summary, topology: { numaNodes: 1, llcsPerNode: 1, coresPerLlc: 2, threadsPerCore: 1 },
      kernelFeatures: [], payloads: [], schedulers: [], durationMs: 3000n,
    };
  }
  static new(name, summary) { return new ScenarioInfo(name, summary); }
  topology(numaNodes, llcsPerNode, coresPerLlc, threadsPerCore) {
    this.r.topology = { numaNodes, llcsPerNode, coresPerLlc, threadsPerCore };
    return this;
  }
  needs(feature) {
    if (!this.r.kernelFeatures.some((f) => f.tag === feature.tag)) this.r.kernelFeatures.push(feature);
    return this;
  }
  payload(name) { this.r.payloads.push(name); return this; }
  scheduler(name) { this.r.schedulers.push(name); return this; }
  duration(ms) { this.r.durationMs = millis(ms); return this; }
  /** The WIT record. */
  build() { return this.r; }
}

// ---------------------------------------------------------------------------
// Ops and the stream
// ---------------------------------------------------------------------------

/** One op: its WIT name and the import call that emits it. */
export class Op {
  constructor(witName, call, args) { this.witName = witName; this.fn = call; this.args = args; }
  /** Calls this op's import now; throws the host's op-error (a ComponentError with `payload`) when rejected. */
  call() { this.fn(...this.args); }
  static addCgroup(name) { return new Op("add-cgroup", ops.addCgroup, [name]); }
  static addCgroupDef(def) { return new Op("add-cgroup-def", ops.addCgroupDef, [record(def)]); }
  static removeCgroup(cgroup) { return new Op("remove-cgroup", ops.removeCgroup, [cgroup]); }
  static setCpuset(cgroup, cpus) { return new Op("set-cpuset", ops.setCpuset, [cgroup, cpus]); }
  static clearCpuset(cgroup) { return new Op("clear-cpuset", ops.clearCpuset, [cgroup]); }
  static swapCpusets(a, b) { return new Op("swap-cpusets", ops.swapCpusets, [a, b]); }
  static freezeCgroup(cgroup) { return new Op("freeze-cgroup", ops.freezeCgroup, [cgroup]); }
  static unfreezeCgroup(cgroup) { return new Op("unfreeze-cgroup", ops.unfreezeCgroup, [cgroup]); }
  static captureCgroupProcs(tag, cgroup) { return new Op("capture-cgroup-procs", ops.captureCgroupProcs, [tag, cgroup]); }
  static spawn(placement, work) { return new Op("spawn", ops.spawn, [placement, record(work)]); }
  static stopCgroup(cgroup) { return new Op("stop-cgroup", ops.stopCgroup, [cgroup]); }
  static setAffinity(cgroup, affinity) { return new Op("set-affinity", ops.setAffinity, [cgroup, affinity]); }
  static moveAllTasks(from, to) { return new Op("move-all-tasks", ops.moveAllTasks, [from, to]); }
  static runPayload(name, args = [], cgroup = undefined) { return new Op("run-payload", ops.runPayload, [name, [...args], cgroup]); }
  static waitPayload(name) { return new Op("wait-payload", ops.waitPayload, [name, undefined]); }
  static waitPayloadInCgroup(name, cgroup) { return new Op("wait-payload", ops.waitPayload, [name, cgroup]); }
  static killPayload(name) { return new Op("kill-payload", ops.killPayload, [name, undefined]); }
  static killPayloadInCgroup(name, cgroup) { return new Op("kill-payload", ops.killPayload, [name, cgroup]); }
  static captureSnapshot(name) { return new Op("capture-snapshot", ops.captureSnapshot, [name]); }
  static watchSnapshot(symbol) { return new Op("watch-snapshot", ops.watchSnapshot, [symbol]); }
  static writeKernelHot(target, value) { return new Op("write-kernel-hot", ops.writeKernelHot, [[{ target, value }]]); }
  static writeKernelHotBatch(writes) { return new Op("write-kernel-hot", ops.writeKernelHot, [[...writes]]); }
  static writeKernelCold(target, value) { return new Op("write-kernel-cold", ops.writeKernelCold, [[{ target, value }]]); }
  static writeKernelColdBatch(writes) { return new Op("write-kernel-cold", ops.writeKernelCold, [[...writes]]); }
  static readKernelHot(tag, target, width) { return new Op("read-kernel-hot", ops.readKernelHot, [tag, target, width]); }
  static readKernelCold(tag, target, width) { return new Op("read-kernel-cold", ops.readKernelCold, [tag, target, width]); }
  static attachScheduler(name) { return new Op("attach-scheduler", ops.attachScheduler, [name]); }
  static detachScheduler() { return new Op("detach-scheduler", ops.detachScheduler, []); }
  static restartScheduler() { return new Op("restart-scheduler", ops.restartScheduler, []); }
  static replaceScheduler(name) { return new Op("replace-scheduler", ops.replaceScheduler, [name]); }
  static pinBpfMap(name) { return new Op("pin-bpf-map", ops.pinBpfMap, [name]); }
  static steerIrq(irq, cpu) { return new Op("steer-irq", ops.steerIrq, [irq, cpu]); }
  static steerIrqCpus(irq, cpus) { return new Op("steer-irq-cpus", ops.steerIrqCpus, [irq, [...cpus]]); }
  /** `spawn-work` with a work-spec-v2 record (no builders here yet). */
  static spawnWork(placement, work) { return new Op("spawn-work", ops.spawnWork, [placement, work]); }
  /** `spawn-threads`: spawnWork with the workers threads of one process. */
  static spawnThreads(placement, work) { return new Op("spawn-threads", ops.spawnThreads, [placement, work]); }
}

/** Setup cgroups (created when the step opens, removed at its teardown), ops, then a hold. */
export class Step {
  constructor(ops_, hold, setup = []) { this.setup = setup.map(record); this.ops = [...ops_]; this.hold = hold; }
  static new(ops_, hold) { return new Step(ops_, hold); }
  static withDefs(defs, ops_, hold) { return new Step(ops_, hold, defs); }
  static withOp(op, hold) { return new Step([op], hold); }
  pushOp(op) { this.ops.push(op); return this; }
  pushCgroup(def) { this.setup.push(record(def)); return this; }
}

/** Cgroups that persist for the whole scenario and setup ops applied once before the first step. */
export class Backdrop {
  constructor() { this.cgroups = []; this.ops = []; }
  static new() { return new Backdrop(); }
  pushCgroup(def) { this.cgroups.push(record(def)); return this; }
  pushOp(op) { this.ops.push(op); return this; }
  isEmpty() { return this.cgroups.length === 0 && this.ops.length === 0; }
}

/** Thrown from `run`: the scenario fails with this message (`err` to the host). */
export class ScenarioError extends Error {}

/** A call the host rejected, located in the stream (the Rust SDK's `emit` message). */
export class EmitError extends ScenarioError {
  constructor(place, opIndex, call, error) {
    const where = opIndex === undefined ? `${place} (${call})` : `${place}, op ${opIndex} (${call})`;
    const fix = (error.fix || "").trim();
    super(`${where}: ${(error.message || "").trim()}${fix ? ` — ${fix}` : ""}`);
    Object.assign(this, { place, opIndex, call, error });
  }
}

/** The op-error a rejected import call threw (jco throws a ComponentError carrying it as `payload`). */
const opError = (e) => {
  const p = e && e.payload !== undefined ? e.payload : e;
  return p && typeof p.message === "string" && typeof p.fix === "string" ? p : { message: String(e), fix: "" };
};

/**
 * Emits the stream: `open-backdrop`, its ops, `close-backdrop` (none for an empty Backdrop),
 * then for each step `open-step`, its ops and `close-step`. Throws `EmitError` at the first
 * call the host rejects.
 */
export function emit(backdrop, steps) {
  const structure = (place, call, f, ...args) => {
    try { f(...args); } catch (e) { throw new EmitError(place, undefined, call, opError(e)); }
  };
  const runOps = (place, list) => {
    list.forEach((op, i) => {
      try { op.call(); } catch (e) { throw new EmitError(place, i, op.witName, opError(e)); }
    });
  };
  if (!backdrop.isEmpty()) {
    structure("backdrop", "open-backdrop", ops.openBackdrop, backdrop.cgroups);
    runOps("backdrop", backdrop.ops);
    structure("backdrop", "close-backdrop", ops.closeBackdrop);
  }
  steps.forEach((step, i) => {
    const place = `step ${i}`;
    structure(place, "open-step", ops.openStep, step.setup);
    runOps(place, step.ops);
    structure(place, "close-step", ops.closeStep, step.hold);
  });
}

// ---------------------------------------------------------------------------
// Results and verdicts
// ---------------------------------------------------------------------------

/** The executed stream's results with look-ups by tag (the raw record is `raw`). */
export class Results {
  constructor(raw) { this.raw = raw; Object.assign(this, raw); }
  procs(tag) { const c = this.cgroupProcsOf(tag); return c && c.pids; }
  cgroupProcsOf(tag) { return this.raw.cgroupProcs.find((c) => c.tag === tag); }
  kernelRead(tag) { const r = this.raw.kernelReads.find((k) => k.tag === tag); return r && r.value; }
  workerMetrics(cgroup) { return this.raw.workers.find((m) => m.cgroup === cgroup); }
  step(index) { return this.raw.steps.find((s) => s.index === index); }
  allStepsPassed() { return this.raw.steps.length > 0 && this.raw.steps.every((s) => s.status === "passed"); }
  unpassedSteps() { return this.raw.steps.filter((s) => s.status !== "passed"); }
  snapshot(name) { return this.raw.snapshots.find((s) => s.name === name); }
  payloadExit(name) { return this.raw.payloads.find((p) => p.name === name); }
  /** The CPUs a worker-metrics record's workers were seen on at least once, ascending. */
  static cpusSeen(metrics) { return metrics.cpus.filter((c) => c.count > 0n).map((c) => c.cpu).sort((a, b) => a - b); }
}

/**
 * The step metrics of the run `check` judges: one entry per step that reached its end, in step
 * order, read in the guest after the step's hold and before its teardown. Empty outside
 * `check`. Each call copies them: call it once per `check`.
 */
export function stepMetrics() { return metricsSteps(); }

/**
 * The latencies of every worker of `stepMetrics()`, in the same order (step, then its workers):
 * `{ step, cgroup, tid, wake, request }`, `wake` and `request` each `undefined` or
 * `{ samples, p50Ns, p90Ns, p99Ns, maxNs }` (BigInts), cumulative since the worker started.
 * Empty outside `check`.
 */
export function stepLatencies() { return metricsLatencies(); }

/** Which latency `Checker.expectLatencyBound` judges. */
export const LatencyKind = { Wake: "wake", Request: "request" };

export const Verdict = {
  pass: () => ({ outcome: "pass", messages: [] }),
  fail: (message) => ({ outcome: "fail", messages: [message] }),
  skip: (message) => ({ outcome: "skip", messages: [message] }),
};

/** A value as the Rust SDK's `{:?}` prints it (numbers, strings, arrays). */
const debug = (v) => {
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(debug).join(", ")}]`;
  return String(v);
};

/** Rust's `{:.d}` of a finite x >= 0: the exact value rounded half to even (`toFixed` rounds ties up). */
const fixed = (x, d) => {
  const up = x.toFixed(d);
  const exact = x.toFixed(100);
  const dot = exact.indexOf(".");
  const kept = exact.slice(0, d === 0 ? dot : dot + 1 + d);
  const tie = /^50*$/.test(exact.slice(dot + 1 + d));
  return tie && Number(kept[kept.length - 1]) % 2 === 0 ? kept : up;
};

/** Rust's `{}` of an f64 bound: 2 as `2`, never an exponent. */
const fnum = (x) => {
  if (typeof x === "bigint") return String(x);
  if (!Number.isFinite(x)) return Number.isNaN(x) ? "NaN" : x > 0 ? "inf" : "-inf";
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(String(x));
  if (!m) return String(x);
  const [, sign, first, frac = "", e] = m;
  const exp = Number(e);
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${first}${frac}`;
  return `${sign}${first}${frac}${"0".repeat(Math.max(exp - frac.length, 0))}`;
};

const ratioText = (r) => (Number.isFinite(r) ? fixed(r, 2) : "inf");
const cpuList = (cpus) => cpus.join(",");
const satSub = (a, b) => (a < b ? 0n : a - b);
const previousWorker = (steps, i, w) => (i === 0 ? undefined : steps[i - 1].workers.find((x) => x.tid === w.tid));
const unitsInStep = (steps, i, w) => {
  const p = previousWorker(steps, i, w);
  return p ? satSub(w.workUnits, p.workUnits) : w.workUnits;
};
const wallInStep = (steps, i, w) => {
  const p = previousWorker(steps, i, w);
  return p ? satSub(w.wallTimeNs, p.wallTimeNs) : w.wallTimeNs;
};
const cpusInStep = (steps, i, w) => {
  const p = previousWorker(steps, i, w);
  const before = new Map(p ? p.cpus.map((c) => [c.cpu, c.count]) : []);
  return w.cpus.filter((c) => c.count > (before.get(c.cpu) ?? 0n)).map((c) => c.cpu);
};
const stepCgroup = (step, name) => step.cgroups.find((c) => c.name === name);
const workersOf = (step, cgroup) => step.workers.filter((w) => w.cgroup === cgroup);
const stepIndex = (steps, step) => steps.findIndex((s) => s.step === step);
const latencyOf = (latencies, step, tid, kind) => {
  const l = latencies.find((x) => x.step === step && x.tid === tid);
  return l && (kind === LatencyKind.Request ? l.request : l.wake);
};

/**
 * Collects failed expectations into a verdict, with the Rust SDK's messages.
 *
 * The `expect*` assertions on the step metrics (`stepMetrics()`) have the Rust SDK's names
 * (camelCase), semantics and messages: each judges the per-step differences of the cumulative
 * counters (a worker is followed by its tid from one step's end to the next), records one
 * failure per offending cgroup, worker and step with the numbers, and returns whether
 * everything held. None passes on missing data. Bounds in ns may be numbers or BigInts.
 */
export class Checker {
  constructor() { this.failures = []; }
  static new() { return new Checker(); }
  expect(cond, message) { if (!cond) this.failures.push(message); return Boolean(cond); }
  expectEq(what, got, want) {
    const eq = typeof got === "bigint" || typeof want === "bigint" ? BigInt(got) === BigInt(want) : got === want;
    return this.expect(eq, `${what}: got ${debug(got)}, want ${debug(want)}`);
  }
  expectStepsPassed(results) {
    if (results.steps.length === 0) { this.fail("no step results"); return false; }
    let ok = true;
    const words = { passed: "passed", failed: "failed", skipped: "was skipped" };
    for (const s of results.steps) {
      if (s.status !== "passed") {
        ok = false;
        this.fail(`step ${s.index} ${words[s.status]}: ${s.error === undefined ? "no error given" : s.error}`);
      }
    }
    return ok;
  }
  fail(message) { this.failures.push(message); }

  stepsWith(steps, cgroup, what) {
    const with_ = [];
    steps.forEach((s, i) => { if (stepCgroup(s, cgroup)) with_.push(i); });
    if (with_.length === 0) this.fail(`${what}: cgroup \`${cgroup}\` is in no step's metrics (${steps.length} steps)`);
    return with_;
  }

  /** In every step where `cgroup` lived, each of its workers ran only on CPUs of its resolved
   * cpuset (`cpusEffective` at that step's end, or at the previous step's end). */
  expectIsolation(steps, cgroup) {
    const with_ = this.stepsWith(steps, cgroup, "isolation");
    if (with_.length === 0) return false;
    let ok = true;
    for (const i of with_) {
      const cg = stepCgroup(steps[i], cgroup);
      const allowed = new Set(cg.cpusEffective);
      const prev = i > 0 ? stepCgroup(steps[i - 1], cgroup) : undefined;
      if (prev) prev.cpusEffective.forEach((c) => allowed.add(c));
      for (const w of workersOf(steps[i], cgroup)) {
        const outside = cpusInStep(steps, i, w).filter((c) => !allowed.has(c));
        if (outside.length > 0) {
          ok = false;
          this.fail(`isolation: step ${steps[i].step}, cgroup \`${cgroup}\`, worker ${w.tid}: ran on CPUs ` +
            `${cpuList(outside)} outside its cpuset ${cpuList(cg.cpusEffective)}`);
        }
      }
    }
    return ok;
  }

  /** In every step where `cgroup` lived, each of its live workers did some work, and none had
   * a gap between two iterations longer than `maxGapNs`. */
  expectNotStarved(steps, cgroup, maxGapNs) {
    const bound = u64(maxGapNs);
    const with_ = this.stepsWith(steps, cgroup, "not starved");
    if (with_.length === 0) return false;
    let ok = true;
    for (const i of with_) {
      const step = steps[i].step;
      const live = workersOf(steps[i], cgroup).filter((w) => w.alive);
      if (live.length === 0) {
        ok = false;
        this.fail(`not starved: step ${step}, cgroup \`${cgroup}\`: no live worker`);
      }
      for (const w of live) {
        if (unitsInStep(steps, i, w) === 0n) {
          ok = false;
          this.fail(`not starved: step ${step}, cgroup \`${cgroup}\`, worker ${w.tid}: no work done in the step ` +
            `(${w.workUnits} units in all)`);
        }
        if (w.maxGapNs > bound) {
          ok = false;
          this.fail(`not starved: step ${step}, cgroup \`${cgroup}\`, worker ${w.tid}: a gap of ${w.maxGapNs} ns ` +
            `(bound ${bound} ns) ending on CPU ${w.maxGapCpu} at ${w.maxGapAtNs} ns`);
        }
      }
    }
    return ok;
  }

  /** In step `step`, the work units each live worker of `cgroup` did in that step are within
   * `maxRatio` of each other (most / fewest <= maxRatio). */
  expectFairness(steps, step, cgroup, maxRatio) {
    const i = stepIndex(steps, step);
    if (i < 0) {
      this.fail(`fairness: no metrics for step ${step} (${steps.length} steps)`);
      return false;
    }
    const units = workersOf(steps[i], cgroup).filter((w) => w.alive).map((w) => [w.tid, unitsInStep(steps, i, w)]);
    if (units.length < 2) {
      this.fail(`fairness: step ${step}, cgroup \`${cgroup}\`: ${units.length} live worker(s), need at least 2 to compare`);
      return false;
    }
    // The first fewest and the last most, as the Rust SDK picks them.
    let lo = units[0];
    let hi = units[0];
    for (const u of units.slice(1)) {
      if (u[1] < lo[1]) lo = u;
      if (u[1] >= hi[1]) hi = u;
    }
    const ratio = lo[1] === 0n ? Infinity : Number(hi[1]) / Number(lo[1]);
    return this.expect(ratio <= maxRatio,
      `fairness: step ${step}, cgroup \`${cgroup}\`: worker ${hi[0]} did ${hi[1]} units, worker ${lo[0]} ${lo[1]} ` +
      `(ratio ${ratioText(ratio)}, bound ${fnum(maxRatio)})`);
  }

  /** `cgroup`'s throughput (work units per second, summed over its workers) in step `b`
   * divided by that in step `a` lies in lo..=hi. */
  expectPhaseRatio(steps, cgroup, a, b, lo, hi) {
    const rate = (step) => {
      const i = stepIndex(steps, step);
      if (i < 0) {
        this.fail(`phase ratio: no metrics for step ${step} (${steps.length} steps)`);
        return undefined;
      }
      const workers = workersOf(steps[i], cgroup);
      let wall = 0n;
      let units = 0n;
      for (const w of workers) {
        const x = wallInStep(steps, i, w);
        if (x > wall) wall = x;
        units += unitsInStep(steps, i, w);
      }
      if (workers.length === 0 || wall === 0n) {
        this.fail(`phase ratio: step ${step}, cgroup \`${cgroup}\`: no workers to measure`);
        return undefined;
      }
      return Number(units) / (Number(wall) / 1e9);
    };
    const ra = rate(a);
    const rb = rate(b);
    if (ra === undefined || rb === undefined) return false;
    const ratio = ra === 0 ? Infinity : rb / ra;
    return this.expect(ratio >= lo && ratio <= hi,
      `phase ratio: cgroup \`${cgroup}\`: step ${b} did ${fixed(rb, 0)} units/s, step ${a} ${fixed(ra, 0)} units/s ` +
      `(ratio ${ratioText(ratio)}, want ${fnum(lo)}..=${fnum(hi)})`);
  }

  /** In every step where `cgroup` lived, each of its live workers measured `kind`
   * (`LatencyKind.Wake` or `.Request`) latency during that step (its sample count grew since the
   * previous step's end) and its p99 (cumulative since the worker started) is at most
   * `maxP99Ns`. A worker with no such latency fails. `latencies`: `stepLatencies()`. */
  expectLatencyBound(steps, latencies, cgroup, kind, maxP99Ns) {
    const bound = u64(maxP99Ns);
    const with_ = this.stepsWith(steps, cgroup, "latency bound");
    if (with_.length === 0) return false;
    let ok = true;
    for (const i of with_) {
      const step = steps[i].step;
      const live = workersOf(steps[i], cgroup).filter((w) => w.alive);
      if (live.length === 0) {
        ok = false;
        this.fail(`latency bound: step ${step}, cgroup \`${cgroup}\`: no live worker`);
      }
      for (const w of live) {
        const l = latencyOf(latencies, step, w.tid, kind);
        if (!l) {
          ok = false;
          this.fail(`latency bound: step ${step}, cgroup \`${cgroup}\`, worker ${w.tid}: no ${kind} latency measured`);
          continue;
        }
        const p = i > 0 ? latencyOf(latencies, steps[i - 1].step, w.tid, kind) : undefined;
        if (l.samples <= (p ? p.samples : 0n)) {
          ok = false;
          this.fail(`latency bound: step ${step}, cgroup \`${cgroup}\`, worker ${w.tid}: no ${kind} latency samples ` +
            `in the step (${l.samples} in all)`);
        }
        if (l.p99Ns > bound) {
          ok = false;
          this.fail(`latency bound: step ${step}, cgroup \`${cgroup}\`, worker ${w.tid}: ${kind} p99 ${l.p99Ns} ns ` +
            `(bound ${bound} ns; p50 ${l.p50Ns} ns, p90 ${l.p90Ns} ns, max ${l.maxNs} ns, ${l.samples} samples ` +
            "since it started)");
        }
      }
    }
    return ok;
  }

  /** At the end of every step in first..=last, sched_ext is `enabled` and, when `ops` is
   * given, `root/ops` names it. */
  expectSchedulerAttached(steps, first, last, ops) {
    let ok = true;
    for (let step = first; step <= last; step++) {
      const i = stepIndex(steps, step);
      if (i < 0) {
        this.fail(`scheduler attached: no metrics for step ${step} (${steps.length} steps)`);
        ok = false;
        continue;
      }
      const s = steps[i];
      if (s.schedExtState !== "enabled" || (ops !== undefined && ops !== null && ops !== s.schedExtOps)) {
        ok = false;
        const want = ops === undefined || ops === null ? ", want enabled" : `, want enabled with ${debug(ops)}`;
        this.fail(`scheduler attached: step ${step}: sched_ext ${debug(s.schedExtState)} with ops ` +
          `${debug(s.schedExtOps)}${want}`);
      }
    }
    return ok;
  }

  isOk() { return this.failures.length === 0; }
  verdict() { return this.failures.length === 0 ? Verdict.pass() : { outcome: "fail", messages: [...this.failures] }; }
}

const printed = (e) => {
  console.error(e && e.stack ? e.stack : String(e));
  return e;
};

/**
 * The component's exports for `scenario` (an object with `describe`, `run` and `check`),
 * converting builders to WIT records and errors to `run`'s `err`:
 * `export const { describe, run, check } = exportScenario({...})`.
 */
export function exportScenario(scenario) {
  return {
    describe: () => {
      try { return record(scenario.describe()); } catch (e) { throw printed(e); }
    },
    run: () => {
      let failed;
      try { failed = scenario.run(); } catch (e) {
        if (e instanceof ScenarioError) throw e.message;
        if (typeof e === "string") throw e;
        printed(e);
        throw `uncaught exception in run: ${e && e.message !== undefined ? e.message : String(e)}`;
      }
      if (typeof failed === "string") throw failed;
    },
    check: (results) => {
      try { return record(scenario.check(new Results(results))); } catch (e) { throw printed(e); }
    },
  };
}
