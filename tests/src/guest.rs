//! A booted guest for the VM tests that talk to the agent directly: boot, ask, read.

use schedbox::machine::{self, parse_topology, BootRequest, Machine};
use schedbox::results::StepMetrics;
use schedbox_wire::{RequestBody, ResponseBody};

/// Boots `topology` (512 MiB) on the test backend with `cmdline` appended to the
/// kernel command line.
pub fn boot(topology: &str, cmdline: &str) -> Box<dyn Machine> {
    let req =
        BootRequest { kernel: None, topology: parse_topology(topology).unwrap(), memory_mib: 512, staged: vec![] };
    let mut spec = machine::prepare_boot(&req).unwrap_or_else(|e| panic!("prepare (run `cargo xtask setup`): {e:#}"));
    spec.extra_cmdline = cmdline.into();
    machine::boot(crate::test_backend(), &spec).unwrap_or_else(|e| panic!("boot: {e}"))
}

/// The agent's answer to `body`; panics naming the request on a failure.
pub fn ask(m: &mut dyn Machine, body: RequestBody) -> ResponseBody {
    let what = format!("{body:?}");
    m.request(body).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// A guest file's text, or `None` when the agent could not read it.
pub fn try_read(m: &mut dyn Machine, path: &str) -> Option<String> {
    match m.request(RequestBody::ReadFile { path: path.into() }) {
        Ok(ResponseBody::File(s)) => Some(s),
        _ => None,
    }
}

/// A guest file's text; panics when it cannot be read.
pub fn read(m: &mut dyn Machine, path: &str) -> String {
    match m.request(RequestBody::ReadFile { path: path.into() }) {
        Ok(ResponseBody::File(s)) => s,
        other => panic!("{path}: {other:?}"),
    }
}

/// Ends the step: its metrics, read before the teardown; panics when the teardown left
/// anything behind.
pub fn end_step(m: &mut dyn Machine) -> StepMetrics {
    match ask(m, RequestBody::EndStep) {
        ResponseBody::Teardown(t) => {
            assert!(t.leftovers.is_empty(), "{:?}", t.leftovers);
            t.step.expect("EndStep reports the step metrics")
        }
        other => panic!("{other:?}"),
    }
}
