//! `kernel-reads`: read kernel memory with the guest paused.
//!
//! Reads `jiffies_64` before and after a fixed 200 ms hold, and CPU 0's
//! `runqueues.clock`. The check wants both steps passed, jiffies to have
//! advanced and the run-queue clock to be non-zero.

use schedbox_scenario::prelude::*;
use std::time::Duration;

struct KernelReads;

fn jiffies(tag: &str) -> Op {
    Op::read_kernel_cold(tag, KernelTarget::symbol("jiffies_64"), KernelValueWidth::u64())
}

impl Scenario for KernelReads {
    fn describe() -> ScenarioInfo {
        ScenarioInfo::new("kernel-reads", "jiffies advance across a hold; CPU 0's run-queue clock is set")
            .topology(1, 1, 2, 1)
            .needs(KernelFeature::Btf)
            .duration(Duration::from_millis(2000))
    }

    fn run() -> Result<(), String> {
        emit(
            Backdrop::new(),
            vec![
                Step::with_op(jiffies("jiffies-before"), HoldSpec::fixed(Duration::from_millis(200))),
                Step::new(
                    vec![
                        jiffies("jiffies-after"),
                        Op::read_kernel_cold(
                            "rq-clock-0",
                            KernelTarget::per_cpu_field("runqueues", "clock", 0),
                            KernelValueWidth::u64(),
                        ),
                    ],
                    HoldSpec::fixed(Duration::from_millis(100)),
                ),
            ],
        )
    }

    fn check(results: Results) -> Verdict {
        let mut c = Checker::new();
        c.expect_steps_passed(&results);
        let read = |tag: &str| results.kernel_read(tag).and_then(KernelValue::as_u64);
        match (read("jiffies-before"), read("jiffies-after")) {
            (Some(before), Some(after)) => {
                c.expect(after > before, format!("jiffies did not advance: before {before}, after {after}"));
            }
            _ => c.fail("missing a u64 read tagged `jiffies-before` or `jiffies-after`"),
        }
        match read("rq-clock-0") {
            Some(clock) => {
                c.expect(clock != 0, "runqueues.clock of CPU 0 is zero");
            }
            None => c.fail("missing a u64 read tagged `rq-clock-0`"),
        }
        c.verdict()
    }
}

schedbox_scenario::export_scenario!(KernelReads);
