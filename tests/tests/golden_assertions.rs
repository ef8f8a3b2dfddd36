//! The step-metrics assertions of the Rust, C and Go SDKs give the same verdicts,
//! messages included: `tests/fixtures/{guests,c,go}/assertions` run every assertion
//! (latency bound included, on `metrics.latencies`) with the same bounds in `check`,
//! judged here on the same step metrics (`common/assertion_samples.rs`; the Python and
//! JavaScript twins are judged on them in `golden_py_js.rs`). The Rust messages are
//! pinned, so each names the step, cgroup, worker and numbers.
//!
//! Build the components first with `cargo xtask build-scenarios`.

#[path = "common/assertion_samples.rs"]
mod samples;

use samples::{clean, sample, samples, SAMPLE_MESSAGES};
use schedbox::results::{Outcome, Results};
use schedbox::sandbox::SandboxLimits;
use schedbox_tests::{fixture, TestSandbox};

#[test]
fn c_and_go_assertions_judge_step_metrics_like_the_rust_ones() {
    let sandbox = TestSandbox::new(SandboxLimits::default());
    let [rust, c, go] = ["assertions", "c/assertions", "go/assertions"]
        .map(|f| sandbox.load_file(&fixture(f)).unwrap_or_else(|e| panic!("{f}: {e}")));
    for (i, metrics) in samples().into_iter().enumerate() {
        let results = Results { step_metrics: metrics, ..Results::default() };
        let judge = |sc| sandbox.check(sc, "assertions", results.clone()).unwrap();
        let want = judge(&rust);
        assert_eq!(format!("{:?}", judge(&c)), format!("{want:?}"), "C differs on sample {i}");
        assert_eq!(format!("{:?}", judge(&go)), format!("{want:?}"), "Go differs on sample {i}");
        assert_eq!(want.outcome, Outcome::Fail, "sample {i}: every sample misses something: {want:?}");
    }
    let v = sandbox.check(&rust, "assertions", Results { step_metrics: sample(), ..Results::default() }).unwrap();
    assert_eq!(v.messages, SAMPLE_MESSAGES);
    // The wake bound holds on the clean sample: a pass is no message.
    let v = sandbox.check(&rust, "assertions", Results { step_metrics: clean(), ..Results::default() }).unwrap();
    assert!(!v.messages.iter().any(|m| m.contains("wake")), "{:?}", v.messages);
    assert!(v.messages.iter().any(|m| m.contains("no request latency measured")), "{:?}", v.messages);
}
