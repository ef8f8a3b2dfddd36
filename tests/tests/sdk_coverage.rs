//! Every WIT op is reachable from the Rust SDK: a component built with the SDK
//! that calls each SDK constructor yields a stream holding every op kind the
//! host knows (and `host/tests/contract.rs` ties the host's kinds to the WIT).

use std::collections::BTreeSet;

use schedbox::op_model::OpKind;
use schedbox::sandbox::SandboxLimits;
use schedbox_tests::{fixture, TestSandbox};
use strum::IntoEnumIterator;

#[test]
fn the_sdk_reaches_every_op_of_the_contract() {
    let sb = TestSandbox::new(SandboxLimits::default());
    let loaded = sb.load_file(&fixture("sdk-coverage")).unwrap_or_else(|e| panic!("{e}"));
    let plan = sb.plan(&loaded).unwrap_or_else(|e| panic!("{e}"));
    let emitted: BTreeSet<&str> = plan.stream.ops().map(|(_, _, op)| op.kind().wit_name()).collect();
    let all: BTreeSet<&str> = OpKind::iter().map(OpKind::wit_name).collect();
    let missing: Vec<_> = all.difference(&emitted).collect();
    assert!(missing.is_empty(), "the SDK coverage scenario emits no {missing:?}: add them to the SDK and the fixture");
    // The component imports the ops interface and nothing the policy refuses.
    assert!(loaded.imports.iter().any(|i| i.name.starts_with("schedbox:scenario/ops@0.1.")));
    assert!(loaded.imports.iter().all(|i| i.allowed));
}
