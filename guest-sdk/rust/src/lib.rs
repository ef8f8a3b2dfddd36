//! Guest SDK for schedbox scenario components.
//!
//! A scenario is a WebAssembly component of the WIT world
//! `schedbox:scenario/scenario` (`wit/scenario.wit`). The host calls its
//! `describe` export for its name and needs, its `run` export to collect an op
//! stream, executes the stream against a real Linux kernel and calls its
//! `check` export with what it observed.
//!
//! This crate wraps the WIT in a builder API modelled on ktstr's op
//! constructors:
//!
//! - [`Op`] has one constructor per op import (`Op::set_cpuset(..)`,
//!   `Op::spawn(..)`, `Op::read_kernel_cold(..)`, ...);
//! - the WIT types (re-exported from [`types`] and the [`prelude`]) gain
//!   constructors and chained setters: [`CpusetSpec::disjoint`],
//!   [`WorkSpec::default()`]`.workers(2)`, [`CgroupDef::named`]`("x").cpuset(..)`,
//!   [`HoldSpec::frac`], ...;
//! - [`Step`] and [`Backdrop`] group ops, and [`emit`] sends a whole stream to
//!   the host, turning a call-site rejection into a message that says where it
//!   happened;
//! - [`Scenario`] plus [`export_scenario!`] make the component;
//!   [`ScenarioInfo::new`], [`Results`] lookups, [`Verdict`] constructors and
//!   [`Checker`] cover `describe` and `check`.
//!
//! # A complete scenario
//!
//! Two cgroups split the CPUs between them, each with two spinning workers;
//! the check asserts that each cgroup held its two workers and that the
//! workers of the two cgroups never shared a CPU.
//!
//! ```rust,no_run
//! use schedbox_scenario::prelude::*;
//! use std::time::Duration;
//!
//! struct CpusetSplit;
//!
//! impl Scenario for CpusetSplit {
//!     fn describe() -> ScenarioInfo {
//!         ScenarioInfo::new("cpuset-split", "two cgroups on disjoint halves of the CPUs")
//!             .topology(1, 2, 2, 1)
//!             .needs(KernelFeature::CgroupV2)
//!             .duration(Duration::from_secs(3))
//!     }
//!
//!     fn run() -> Result<(), String> {
//!         let backdrop = Backdrop::new()
//!             .push_cgroup(CgroupDef::named("left").cpuset(CpusetSpec::disjoint(0, 2)).workers(2))
//!             .push_cgroup(CgroupDef::named("right").cpuset(CpusetSpec::disjoint(1, 2)).workers(2));
//!         emit(
//!             backdrop,
//!             vec![
//!                 // Let the workers run.
//!                 Step::new(vec![], HoldSpec::frac(0.5)),
//!                 // Record who is where, keep running.
//!                 Step::new(
//!                     vec![
//!                         Op::capture_cgroup_procs("left-procs", "left"),
//!                         Op::capture_cgroup_procs("right-procs", "right"),
//!                     ],
//!                     HoldSpec::frac(0.5),
//!                 ),
//!             ],
//!         )
//!     }
//!
//!     fn check(results: Results) -> Verdict {
//!         let mut c = Checker::new();
//!         c.expect_steps_passed(&results);
//!         for cg in ["left", "right"] {
//!             let pids = results.procs(&format!("{cg}-procs")).unwrap_or_default();
//!             c.expect_eq(&format!("pids in {cg}"), pids.len(), 2);
//!         }
//!         let (Some(left), Some(right)) =
//!             (results.worker_metrics("left"), results.worker_metrics("right"))
//!         else {
//!             c.fail("missing worker metrics");
//!             return c.verdict();
//!         };
//!         c.expect(left.iterations > 0 && right.iterations > 0, "a cgroup made no progress");
//!         let shared: Vec<u32> =
//!             left.cpus_seen().intersection(&right.cpus_seen()).copied().collect();
//!         c.expect(shared.is_empty(), format!("left and right shared CPUs {shared:?}"));
//!         c.verdict()
//!     }
//! }
//!
//! schedbox_scenario::export_scenario!(CpusetSplit);
//! ```
//!
//! Build it as a `cdylib` for `wasm32-wasip2`; the `.wasm` that comes out is
//! the component:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! schedbox-scenario = { path = "../../../guest-sdk/rust" }
//! ```
//!
//! Worked examples per op family (cgroups, workers, payloads, kernel memory,
//! schedulers, IRQs) are on [`Op`]'s constructors.
//!
//! # Errors
//!
//! The host checks every op where it is called. [`emit`] stops at the first
//! rejection and returns e.g.
//! `step 1, op 2 (set-cpuset): disjoint index 2 is not below of=2 — use an index in 0..2`;
//! returning that from [`Scenario::run`] hands it back to the host.
//!
//! # Off wasm32
//!
//! The crate also builds for the host target so that builders can be unit
//! tested there; the op imports only exist on wasm32, and calling them
//! elsewhere ([`emit`], [`Op::call`]) panics.

#![warn(missing_docs)]

mod assertions;
mod builders;
mod op;
mod scenario;
mod stream;
mod workloads;

/// The `wit-bindgen` output for `wit/scenario.wit`. Used by
/// [`export_scenario!`]; scenarios use the re-exports instead.
#[doc(hidden)]
pub mod bindings {
    #![allow(missing_docs, clippy::all)]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "scenario",
        // `export_scenario!` expands in the scenario's crate.
        pub_export_macro: true,
        export_macro_name: "__export_scenario_world",
        default_bindings_module: "::schedbox_scenario::bindings",
        additional_derives: [PartialEq],
    });
}

/// Every type of the WIT `types` interface, as generated from the WIT.
///
/// The SDK adds constructors and setters to them; their fields stay public.
pub mod types {
    pub use crate::bindings::schedbox::scenario::types::*;
}

/// The raw `ops` imports, one function per WIT function.
///
/// [`emit`] and [`Op::call`] are built on these; call them directly only to
/// shape a stream [`emit`] cannot (structure calls included).
pub mod ops {
    pub use crate::bindings::schedbox::scenario::ops::*;
}

/// The `metrics` import: the guest at the end of each step, for `check`
/// (see [`step_metrics`]).
pub mod metrics {
    pub use crate::bindings::schedbox::scenario::metrics::*;
}

pub use assertions::LatencyKind;
pub use builders::IntoMillis;
pub use op::Op;
pub use scenario::{step_latencies, step_metrics};
pub use scenario::{Checker, Scenario};
pub use stream::{emit, Backdrop, Step};
#[doc(no_inline)]
pub use types::{
    AffinityIntent, CgroupDef, CpusetSpec, HoldSpec, IrqSelector, KernelFeature, KernelTarget, KernelValue,
    KernelValueWidth, KernelWrite, OpError, Outcome, Phase, Results, ScenarioInfo, SchedPolicy, SpawnPlacement,
    StepStatus, Topology, Verdict, WorkSpec, WorkType, WorkerCount,
};

/// Everything a scenario usually needs: `use schedbox_scenario::prelude::*;`.
pub mod prelude {
    pub use crate::metrics::{CgroupState, StepMetrics, WorkerLatency, WorkerStat};
    pub use crate::ops::{Policy, Work, WorkSpecV2};
    pub use crate::types::{
        AffinityIntent, CgroupDef, CpusetSpec, HoldSpec, IrqSelector, KernelFeature, KernelTarget, KernelValue,
        KernelValueWidth, KernelWrite, OpError, Outcome, Phase, Results, ScenarioInfo, SchedPolicy, SpawnPlacement,
        StepStatus, Topology, Verdict, WorkSpec, WorkType, WorkerCount, WorkerMetrics,
    };
    pub use crate::{
        emit, step_latencies, step_metrics, Backdrop, Checker, IntoMillis, LatencyKind, Op, Scenario, Step,
    };
}

/// Export a [`Scenario`] implementation as the component's `describe`, `run`
/// and `check`.
///
/// Invoke it once, at the top level of the scenario's `cdylib` crate:
///
/// ```rust,no_run
/// use schedbox_scenario::prelude::*;
///
/// struct Idle;
///
/// impl Scenario for Idle {
///     fn describe() -> ScenarioInfo {
///         ScenarioInfo::new("idle", "does nothing for a second").duration(1000)
///     }
///     fn run() -> Result<(), String> {
///         emit(Backdrop::new(), vec![Step::new(vec![], HoldSpec::FULL)])
///     }
///     fn check(results: Results) -> Verdict {
///         if results.all_steps_passed() {
///             Verdict::pass()
///         } else {
///             Verdict::fail("a step did not pass")
///         }
///     }
/// }
///
/// schedbox_scenario::export_scenario!(Idle);
/// ```
#[macro_export]
macro_rules! export_scenario {
    ($ty:ty) => {
        const _: () = {
            type __SchedboxScenarioExport = $crate::__private::Export<$ty>;
            $crate::bindings::__export_scenario_world!(
                __SchedboxScenarioExport with_types_in $crate::bindings
            );
        };
    };
}

#[doc(hidden)]
pub mod __private {
    use core::marker::PhantomData;

    use crate::types::{Results, ScenarioInfo, Verdict};
    use crate::Scenario;

    /// Adapts a [`Scenario`] to the generated `Guest` trait.
    pub struct Export<T>(PhantomData<T>);

    impl<T: Scenario> crate::bindings::Guest for Export<T> {
        fn describe() -> ScenarioInfo {
            T::describe()
        }

        fn run() -> Result<(), String> {
            T::run()
        }

        fn check(results: Results) -> Verdict {
            T::check(results)
        }
    }
}

/// Keeps the README's example compiling.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
