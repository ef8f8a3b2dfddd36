//! The sandbox: loads scenario components into wasmtime with no ambient
//! authority and calls their exports under CPU, memory and stream bounds.
//!
//! One [`Engine`] and [`Linker`] per [`Sandbox`]; an `InstancePre` per
//! component (memoised, and compiled code cached on disk); a fresh [`Store`]
//! for every export call sequence.

mod cache;
mod error;
pub mod imports;
mod recorder;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, Trap, WasmBacktrace, WasmBacktraceDetails};
use wasmtime::{StoreContextMut, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{subscribe, DynPollable, Pollable};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub use cache::{digest, ComponentCache};
pub use error::{Bound, SandboxError};
pub use imports::ImportVerdict;
pub use recorder::BoundError;

use crate::contract::{Scenario, ScenarioPre};
use crate::op_model::{OpStream, ScenarioInfo};
use crate::results::{Results, Verdict};
use recorder::{Phase, Recorder};

/// Bounds on what a scenario may consume. Every export call gets the full CPU budget.
#[derive(Clone, Debug)]
pub struct SandboxLimits {
    /// Fuel per export call (about one unit per wasm instruction).
    pub fuel: u64,
    /// Linear memory per instance, bytes.
    pub memory_bytes: usize,
    /// Wasm stack, bytes.
    pub stack_bytes: usize,
    /// Ops per stream.
    pub max_ops: usize,
    /// Bytes of string/list arguments per import call.
    pub max_arg_bytes: usize,
    /// Wall-clock time per export call, ms (epoch interruption; a backstop for
    /// what fuel does not count, such as time spent in host calls).
    pub wall_ms: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            fuel: 2_000_000_000,
            memory_bytes: 256 << 20,
            stack_bytes: 512 << 10,
            max_ops: 100_000,
            max_arg_bytes: 64 << 10,
            wall_ms: 30_000,
        }
    }
}

/// How a [`Sandbox`] is set up.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    pub limits: SandboxLimits,
    /// Link WASI (without authority) for components whose std needs it.
    pub wasi: bool,
    /// Where compiled components are cached; `None` disables the disk cache.
    pub cache_root: Option<PathBuf>,
    /// Compile for a fixed x86-64 feature set (SSE4.2, POPCNT) instead of this
    /// CPU's, so cache entries are valid on any such machine (nested runs
    /// compile on the host for the outer guest). Also on when the environment
    /// has `SCHEDBOX_PORTABLE_CODE=1`.
    pub portable_code: bool,
}

/// The environment variable that turns [`SandboxConfig::portable_code`] on.
pub const PORTABLE_CODE_ENV: &str = "SCHEDBOX_PORTABLE_CODE";

/// Cranelift x86-64 flags of portable code (the x86-64-v2 level).
const PORTABLE_FLAGS: [&str; 5] = ["has_sse3", "has_ssse3", "has_sse41", "has_sse42", "has_popcnt"];

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            limits: SandboxLimits::default(),
            wasi: true,
            cache_root: ComponentCache::default_root(),
            portable_code: false,
        }
    }
}

/// Per-store state: the recorder behind the `ops` imports, and WASI without authority.
pub struct HostState {
    recorder: Recorder,
    memory_limit: usize,
    /// Bytes of all linear memories of the store, and elements of all its tables.
    memory_used: usize,
    /// `memory_used` before the growth last permitted, and the total it asked for:
    /// a growth that then fails is taken back and reported.
    growing: (usize, usize),
    table_elements: usize,
    /// When the current export call's wall-clock budget runs out.
    deadline: std::time::Instant,
    wasi: WasiCtx,
    table: ResourceTable,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Table elements of all tables of one store.
const TABLE_ELEMENTS: usize = 1 << 20;

/// A memory request over the bound: traps the guest with this error.
#[derive(Debug, thiserror::Error)]
#[error("linear memory (all memories of the instance together) would grow to {desired} bytes; the bound is {limit} bytes (raise it with --wasm-memory)")]
pub struct MemoryBoundError {
    pub desired: usize,
    pub limit: usize,
}

/// A permitted growth that then failed (the memory's own maximum, or the host
/// could not map it): traps the guest with this error, reported as the memory bound.
#[derive(Debug, thiserror::Error)]
#[error("linear memory (all memories of the instance together) could not grow to {desired} bytes: {cause}; the bound is {limit} bytes (raise it with --wasm-memory, or `wasm-memory-mib` in [limits] of the policy; a maximum the component declares itself needs a rebuild)")]
pub struct MemoryGrowFailed {
    pub desired: usize,
    pub limit: usize,
    pub cause: String,
}

impl ResourceLimiter for HostState {
    /// The bound is on the sum of every linear memory of the store.
    fn memory_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.memory_used.saturating_sub(current).saturating_add(desired);
        if total > self.memory_limit {
            return Err(MemoryBoundError { desired: total, limit: self.memory_limit }.into());
        }
        self.growing = (self.memory_used, total);
        self.memory_used = total;
        Ok(true)
    }
    /// A growth `memory_growing` permitted failed: it no longer counts, and the
    /// guest traps with [`MemoryGrowFailed`] instead of seeing `memory.grow` -1.
    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        let (before, desired) = self.growing;
        self.memory_used = before;
        tracing::debug!("linear memory growth to {desired} bytes failed: {error:#}");
        Err(MemoryGrowFailed { desired, limit: self.memory_limit, cause: format!("{error:#}") }.into())
    }
    /// At most 2^20 table elements in all tables of the store.
    fn table_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.table_elements.saturating_sub(current).saturating_add(desired);
        if total > TABLE_ELEMENTS {
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
    }
    fn instances(&self) -> usize {
        64
    }
    fn tables(&self) -> usize {
        64
    }
    fn memories(&self) -> usize {
        16
    }
}

/// Seeds of `wasi:random/random` and `wasi:random/insecure` (the insecure seed is 0):
/// the same component plans to the same stream every time.
const RANDOM_SEED: u64 = 0x5eed_5eed_5eed_5eed;
const INSECURE_RANDOM_SEED: u64 = 0x1;

/// SplitMix64: a small, well-mixed generator for fixed-seed randomness.
struct SplitMix64(u64);

impl rand_core::TryRng for SplitMix64 {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok((self.try_next_u64()? >> 32) as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Ok(z ^ (z >> 31))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let v = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

/// A stop signal (SIGINT, SIGTERM, SIGHUP) arrived during an export call.
#[derive(Debug, thiserror::Error)]
#[error("stopped by {signal} while the component ran")]
pub struct StoppedBySignal {
    pub signal: &'static str,
}

/// Time stands still inside a scenario: it gets no clock authority.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    /// One second, not zero: a monotonic clock's origin is arbitrary, and the Go
    /// runtime refuses to start on a clock that reads zero ("nanotime returning zero").
    fn now(&self) -> u64 {
        1_000_000_000
    }
}

/// A sleep (`wasi:clocks/monotonic-clock` subscribe-duration or -instant):
/// ready at once, since time stands still inside a scenario. A guest that
/// waits for the clock to move spins on fuel instead of hanging the host.
struct Instant0;

#[wasmtime_wasi::async_trait]
impl Pollable for Instant0 {
    async fn ready(&mut self) {}
}

/// Links the monotonic clock's `subscribe-*` over WASI's (which sleep for real).
fn link_instant_sleeps(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    fn ready(mut store: StoreContextMut<'_, HostState>) -> wasmtime::Result<(Resource<DynPollable>,)> {
        let table = &mut store.data_mut().table;
        let r = table.push(Instant0)?;
        Ok((subscribe(table, r)?,))
    }
    linker.allow_shadowing(true);
    let mut clock = linker.instance("wasi:clocks/monotonic-clock@0.2.12")?;
    clock.func_wrap("subscribe-duration", |store, (_,): (u64,)| ready(store))?;
    clock.func_wrap("subscribe-instant", |store, (_,): (u64,)| ready(store))?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Epoch ticks per second: the wall-clock bound's resolution.
const EPOCH_TICKS_PER_SEC: u64 = 10;

/// Advances `engine`'s epoch [`EPOCH_TICKS_PER_SEC`] times a second until the
/// engine is dropped.
fn start_epoch_ticker(engine: &Engine) -> Result<(), SandboxError> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("schedbox-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(1000 / EPOCH_TICKS_PER_SEC));
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => return,
            }
        })
        .map(|_| ())
        .map_err(|e| SandboxError::Setup(format!("cannot start the epoch thread: {e}")))
}

/// A component ready to instantiate.
#[derive(Clone)]
pub struct LoadedScenario {
    /// The file (or label) it came from, for messages.
    pub label: String,
    pub digest: [u8; 32],
    /// Whether compiled code came from the disk cache.
    pub from_cache: bool,
    pub imports: Vec<ImportVerdict>,
    /// Its embedded signature, checked against its bytes (not yet against a policy).
    pub signature: crate::signing::Signature,
    pre: ScenarioPre<HostState>,
}

impl LoadedScenario {
    /// Who asks, for the policy.
    pub fn subject(&self) -> crate::policy::Subject<'_> {
        crate::policy::Subject { label: &self.label, digest: &self.digest, signature: Some(&self.signature) }
    }
}

/// The result of planning a scenario: what it says it is and what it emits.
#[derive(Clone, Debug)]
pub struct Plan {
    pub info: ScenarioInfo,
    pub stream: OpStream,
}

/// A configured wasmtime engine and linker for scenario components.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<ComponentCache>,
    config: SandboxConfig,
    memo: Mutex<HashMap<[u8; 32], Arc<LoadedScenario>>>,
}

const LAYER_COMPONENT: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let setup = |e: wasmtime::Error| SandboxError::Setup(format!("{e:#}"));
        let mut c = Config::new();
        c.wasm_component_model(true)
            .concurrency_support(false)
            .consume_fuel(true)
            .epoch_interruption(true)
            .wasm_backtrace_details(WasmBacktraceDetails::Enable)
            .max_wasm_stack(config.limits.stack_bytes);
        if config.portable_code || std::env::var(PORTABLE_CODE_ENV).is_ok_and(|v| v == "1") {
            // An explicit target turns off the host CPU's feature detection.
            c.target("x86_64-unknown-linux-gnu").map_err(setup)?;
            for flag in PORTABLE_FLAGS {
                // SAFETY: these flags only widen the instruction set Cranelift may use;
                // Engine::new checks that this CPU has each of them.
                unsafe { c.cranelift_flag_enable(flag) };
            }
        }
        let engine = Engine::new(&c).map_err(setup)?;
        let mut linker = Linker::new(&engine);
        Scenario::add_to_linker::<HostState, HasSelf<Recorder>>(&mut linker, |s| &mut s.recorder).map_err(setup)?;
        if config.wasi {
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(setup)?;
            link_instant_sleeps(&mut linker).map_err(setup)?;
        }
        start_epoch_ticker(&engine)?;
        let cache = config.cache_root.as_deref().map(|root| ComponentCache::new(root, &engine));
        Ok(Self { engine, linker, cache, config, memo: Mutex::new(HashMap::new()) })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Where the disk cache keeps the compiled form of the component `bytes`
    /// (present once it was loaded); `None` without a disk cache.
    pub fn cache_file(&self, bytes: &[u8]) -> Option<PathBuf> {
        self.cache.as_ref().map(|c| c.path(&digest(bytes)))
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Loads a component file (binary, or WAT text for `.wat`).
    pub fn load_file(&self, path: &Path) -> Result<Arc<LoadedScenario>, SandboxError> {
        let bytes = std::fs::read(path).map_err(|source| SandboxError::Read { path: path.to_owned(), source })?;
        self.load_bytes(&path.display().to_string(), &bytes)
    }

    /// Compiles (or fetches from cache) and checks a component; refuses
    /// forbidden imports before anything is instantiated.
    pub fn load_bytes(&self, label: &str, bytes: &[u8]) -> Result<Arc<LoadedScenario>, SandboxError> {
        let key = digest(bytes);
        if let Some(hit) = self.memo.lock().ok().and_then(|m| m.get(&key).cloned()) {
            if hit.label == label {
                return Ok(hit);
            }
            // Same bytes under another name: errors must name this file.
            return Ok(Arc::new(LoadedScenario { label: label.to_owned(), ..(*hit).clone() }));
        }
        // Imports are judged from the import section, before the (seconds-long) compile.
        let verdicts = self.judge_imports(label, bytes)?;
        let refused: Vec<ImportVerdict> = verdicts.iter().filter(|v| !v.allowed).cloned().collect();
        if !refused.is_empty() {
            return Err(SandboxError::ForbiddenImports { label: label.to_owned(), refused });
        }
        let (component, from_cache) = self.compile(label, &key, bytes)?;
        let not_scenario =
            |e: wasmtime::Error| SandboxError::NotAScenario { label: label.to_owned(), message: format!("{e:#}") };
        let pre = if verdicts.iter().any(|v| imports::needs_stubs(&v.name)) {
            // HTTP client interfaces: trapping stubs, in a linker of this component's own.
            let mut linker = self.linker.clone();
            imports::link_inert(&mut linker, &self.engine, &component).map_err(not_scenario)?;
            linker.instantiate_pre(&component).map_err(not_scenario)?
        } else {
            self.linker.instantiate_pre(&component).map_err(not_scenario)?
        };
        let pre = ScenarioPre::new(pre).map_err(not_scenario)?;
        let signature = crate::signing::check(bytes);
        let loaded = Arc::new(LoadedScenario {
            label: label.to_owned(),
            digest: key,
            from_cache,
            imports: verdicts,
            signature,
            pre,
        });
        if let Ok(mut m) = self.memo.lock() {
            m.insert(key, loaded.clone());
        }
        Ok(loaded)
    }

    /// The component's import list, judged, whether or not it may run. Reads
    /// the import section only: nothing is compiled.
    pub fn judge_imports(&self, label: &str, bytes: &[u8]) -> Result<Vec<ImportVerdict>, SandboxError> {
        Ok(imports::check_names(&self.declared(label, bytes)?.imports, self.config.wasi))
    }

    /// The component's top-level imports and exports, read without compiling.
    fn declared(&self, label: &str, bytes: &[u8]) -> Result<imports::Declared, SandboxError> {
        check_header(label, bytes)?;
        imports::declared(bytes).map_err(|message| SandboxError::Compile { label: label.to_owned(), message })
    }

    fn compile(&self, label: &str, key: &[u8; 32], bytes: &[u8]) -> Result<(Component, bool), SandboxError> {
        check_header(label, bytes)?;
        if let Some(c) = self.cache.as_ref().and_then(|c| c.get(&self.engine, key)) {
            return Ok((c, true));
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| {
            let message = format!("{e:#}");
            if message.contains("core module")
                || message.contains("expected component")
                || message.contains("a wasm module with a component parser")
            {
                SandboxError::CoreModule { label: label.to_owned() }
            } else {
                SandboxError::Compile { label: label.to_owned(), message }
            }
        })?;
        if let Some(cache) = &self.cache {
            cache.put(key, &component);
        }
        Ok((component, false))
    }

    fn store(&self) -> Store<HostState> {
        let stdout = MemoryOutputPipe::new(64 << 10);
        let stderr = MemoryOutputPipe::new(64 << 10);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            // Plans are deterministic: every random source starts from a fixed seed.
            .secure_random(SplitMix64(RANDOM_SEED))
            .insecure_random(SplitMix64(INSECURE_RANDOM_SEED))
            .insecure_random_seed(0)
            // Sockets are linked (toolchains import them by default) but grant nothing.
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .allow_blocking_current_thread(false)
            .build();
        let state = HostState {
            recorder: Recorder::new(self.config.limits.clone()),
            memory_limit: self.config.limits.memory_bytes,
            memory_used: 0,
            growing: (0, 0),
            table_elements: 0,
            deadline: std::time::Instant::now(),
            wasi,
            table: ResourceTable::new(),
            stdout,
            stderr,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| s);
        // Every epoch tick: a stop signal or the spent wall-clock budget ends the call.
        store.epoch_deadline_callback(|store| {
            if let Some(signal) = crate::interrupt::received() {
                return Err(StoppedBySignal { signal: crate::interrupt::name(signal) }.into());
            }
            if std::time::Instant::now() >= store.data().deadline {
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Continue(1))
        });
        self.arm(&mut store);
        store
    }

    /// Gives the next export call the full wall-clock budget.
    fn arm(&self, store: &mut Store<HostState>) {
        let now = std::time::Instant::now();
        store.data_mut().deadline = now
            .checked_add(Duration::from_millis(self.config.limits.wall_ms))
            .unwrap_or(now + Duration::from_secs(1 << 40));
        store.set_epoch_deadline(1);
    }

    fn instantiate(&self, sc: &LoadedScenario, store: &mut Store<HostState>) -> Result<Scenario, SandboxError> {
        store.set_fuel(self.config.limits.fuel).map_err(|e| SandboxError::Setup(format!("{e:#}")))?;
        sc.pre.instantiate(&mut *store).map_err(|e| classify(&sc.label, "instantiate", e))
    }

    /// Calls `describe`.
    pub fn describe(&self, sc: &LoadedScenario) -> Result<ScenarioInfo, SandboxError> {
        let mut store = self.store();
        let inst = self.instantiate(sc, &mut store)?;
        let r = inst.call_describe(&mut store).map_err(|e| classify(&sc.label, "describe", e));
        let mut info: ScenarioInfo = finish_call(&sc.label, &store, r)?.into();
        info.summary = crate::untrusted::cap(info.summary);
        Ok(info)
    }

    /// Calls `describe` then `run` in one instance and returns the validated stream.
    pub fn plan(&self, sc: &LoadedScenario) -> Result<Plan, SandboxError> {
        let mut store = self.store();
        let inst = self.instantiate(sc, &mut store)?;
        let result = self.plan_in(sc, &mut store, &inst);
        finish_call(&sc.label, &store, result)
    }

    fn plan_in(
        &self,
        sc: &LoadedScenario,
        store: &mut Store<HostState>,
        inst: &Scenario,
    ) -> Result<Plan, SandboxError> {
        let mut info: ScenarioInfo =
            inst.call_describe(&mut *store).map_err(|e| classify(&sc.label, "describe", e))?.into();
        info.summary = crate::untrusted::cap(info.summary);
        let name = info.name.clone();
        store.data_mut().recorder.start(&info).map_err(Box::new)?;
        store.set_fuel(self.config.limits.fuel).map_err(|e| SandboxError::Setup(format!("{e:#}")))?;
        self.arm(store);
        let ran = inst.call_run(&mut *store).map_err(|e| classify(&name, "run", e))?;
        let rec = &mut store.data_mut().recorder;
        if let Err(message) = ran {
            let message = crate::untrusted::cap(message);
            let rejection = rec.rejections.first().cloned().map(Box::new);
            return Err(SandboxError::RunFailed { scenario: name, message, rejection });
        }
        if let Some(first) = rec.rejections.first() {
            // The scenario ignored an op-error: the stream is not what it meant.
            return Err(Box::new(first.clone()).into());
        }
        let stream = rec.finish(info.clone()).map_err(Box::new)?;
        Ok(Plan { info, stream })
    }

    /// Calls `check` with `results` in a fresh instance.
    pub fn check(&self, sc: &LoadedScenario, scenario: &str, results: Results) -> Result<Verdict, SandboxError> {
        let mut store = self.store();
        let inst = self.instantiate(sc, &mut store)?;
        store.data_mut().recorder.phase = Phase::Check;
        store.data_mut().recorder.step_metrics = results.step_metrics.clone();
        let r = inst.call_check(&mut store, &results.into()).map_err(|e| classify(scenario, "check", e));
        let mut verdict: Verdict = finish_call(&sc.label, &store, r)?.into();
        verdict.messages = crate::untrusted::cap_messages(verdict.messages);
        Ok(verdict)
    }
}

/// Lines of guest stderr appended to a trap's message (a panic message or traceback lives there).
const STDERR_TAIL: usize = 12;

/// Logs what the guest wrote to stdout/stderr under the scenario's name (at
/// `info`; at `warn`, so without `-v`, when the call failed), and appends to a
/// trap or bound error the last op call the host rejected (a guest that traps
/// on an op-error it did not handle) and the tail of its stderr.
fn finish_call<T>(label: &str, store: &Store<HostState>, r: Result<T, SandboxError>) -> Result<T, SandboxError> {
    let failed = r.is_err();
    // A trap or bound error carries the stderr tail; the rest is logged.
    let carries_tail = matches!(r, Err(SandboxError::Trap { .. } | SandboxError::Bound { .. }));
    let mut stderr_tail = Vec::new();
    for (stream, pipe) in [("stdout", &store.data().stdout), ("stderr", &store.data().stderr)] {
        let bytes = pipe.contents();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        let tail_start =
            if stream == "stderr" && carries_tail { lines.len().saturating_sub(STDERR_TAIL) } else { lines.len() };
        for (i, line) in lines.iter().enumerate() {
            if failed && i < tail_start {
                tracing::warn!(target: "schedbox::guest", scenario = label, stream, "{line}");
            } else {
                tracing::info!(target: "schedbox::guest", scenario = label, stream, "{line}");
            }
        }
        if stream == "stderr" {
            stderr_tail = lines[lines.len().saturating_sub(STDERR_TAIL)..].iter().map(|l| l.to_string()).collect();
        }
    }
    let last_rejection = store.data().recorder.rejections.last().map(|e| e.to_string());
    r.map_err(|mut e| {
        if let SandboxError::Trap { message, .. } | SandboxError::Bound { message, .. } = &mut e {
            if let Some(rejected) = &last_rejection {
                message.push_str("\nlast op call the host rejected (the guest got this op-error back): ");
                message.push_str(rejected);
            }
            if !stderr_tail.is_empty() {
                message.push_str("\nguest stderr (last lines):\n  ");
                message.push_str(&crate::untrusted::cap(stderr_tail.join("\n  ")));
            }
        }
        e
    })
}

/// Turns a wasmtime error from an export call into a sandbox error that names
/// the bound or trap and carries the guest backtrace.
fn classify(scenario: &str, export: &'static str, e: wasmtime::Error) -> SandboxError {
    let backtrace = e.downcast_ref::<WasmBacktrace>().map(|bt| format!("\nguest backtrace:\n{bt}")).unwrap_or_default();
    let scenario = scenario.to_owned();
    let bound = |bound: Bound, message: String| SandboxError::Bound {
        scenario: scenario.clone(),
        export,
        bound,
        message: format!("{message}{backtrace}"),
    };
    if let Some(m) = e.downcast_ref::<MemoryBoundError>() {
        return bound(Bound::Memory, m.to_string());
    }
    if let Some(m) = e.downcast_ref::<MemoryGrowFailed>() {
        return bound(Bound::Memory, m.to_string());
    }
    if let Some(s) = e.downcast_ref::<StoppedBySignal>() {
        return SandboxError::Trap { scenario, export, message: s.to_string() };
    }
    if let Some(call) = e.downcast_ref::<imports::InertCall>() {
        return SandboxError::Trap { scenario, export, message: format!("{call}{backtrace}") };
    }
    if let Some(b) = e.downcast_ref::<BoundError>() {
        let kind = match b {
            BoundError::TooManyOps { .. } | BoundError::TooManyItems { .. } | BoundError::TooManyRejections { .. } => {
                Bound::OpStream
            }
            BoundError::TooLarge { .. } | BoundError::WrongPhase { .. } => Bound::ArgumentSize,
        };
        if let BoundError::WrongPhase { .. } = b {
            return SandboxError::Trap { scenario, export, message: format!("{b}{backtrace}") };
        }
        return bound(kind, b.to_string());
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => bound(
            Bound::Cpu,
            "the CPU budget (fuel) ran out; raise it with --fuel if the scenario is legitimately heavy".into(),
        ),
        Some(Trap::Interrupt) => bound(
            Bound::WallClock,
            "the wall-clock bound per export call ran out (the export blocked or ran too long); raise it with --wall-ms if the scenario is legitimately slow".into(),
        ),
        Some(Trap::StackOverflow) => bound(Bound::Stack, "the wasm stack overflowed; look for unbounded recursion in the backtrace, or raise the bound with --stack-kib".into()),
        Some(t) => SandboxError::Trap {
            scenario,
            export,
            message: format!("{t} (a guest panic or bug; its backtrace and stderr follow){backtrace}"),
        },
        None => SandboxError::Trap { scenario, export, message: format!("{e:#}{backtrace}") },
    }
}

impl Sandbox {
    /// Names of the component's exports, read without compiling.
    pub fn export_names(&self, label: &str, bytes: &[u8]) -> Result<Vec<String>, SandboxError> {
        Ok(self.declared(label, bytes)?.exports)
    }
}

/// Refuses what is not a component binary (or WAT text) before any parsing.
fn check_header(label: &str, bytes: &[u8]) -> Result<(), SandboxError> {
    let is_text = bytes.iter().take_while(|b| b.is_ascii_whitespace()).count() < bytes.len()
        && bytes.first().is_some_and(|b| *b == b'(' || b.is_ascii_whitespace() || *b == b';');
    if !is_text {
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
            return Err(SandboxError::NotWasm { label: label.to_owned() });
        }
        if bytes[4..8] != LAYER_COMPONENT {
            return Err(SandboxError::CoreModule { label: label.to_owned() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
