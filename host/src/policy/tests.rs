use super::*;
use crate::op_model::{
    Backdrop, HoldSpec, KernelTarget, KernelValue, KernelWrite, Op, OpStream, ScenarioInfo, Section, Step, Topology,
};
use crate::signing;

fn stream(steps: Vec<Step>) -> OpStream {
    OpStream {
        contract: "0.1.0".into(),
        scenario: ScenarioInfo {
            name: "s".into(),
            summary: String::new(),
            topology: Topology { numa_nodes: 1, llcs_per_node: 1, cores_per_llc: 2, threads_per_core: 1 },
            kernel_features: Vec::new(),
            payloads: vec!["fio".into()],
            schedulers: Vec::new(),
            duration_ms: 1000,
        },
        backdrop: Backdrop::default(),
        steps,
    }
}

fn write(sym: &str) -> Op {
    Op::write_kernel_cold(vec![KernelWrite { target: KernelTarget::symbol(sym), value: KernelValue::U32(1) }])
}

const DIGEST: [u8; 32] = [7; 32];

fn subject() -> Subject<'static> {
    Subject { label: "s.wasm", digest: &DIGEST, signature: None }
}

#[test]
fn the_default_refuses_kernel_writes_and_names_the_place_and_the_fix() {
    let s = stream(vec![
        Step::new(vec![Op::add_cgroup("a")], HoldSpec::frac(0.5)),
        Step::new(vec![Op::add_cgroup("b"), write("scx_watchdog_timeout")], HoldSpec::frac(0.5)),
    ]);
    let refused = Policy::default().admit(subject(), &s).expect_err("untrusted kernel write");
    assert_eq!(refused.violations.len(), 1, "{refused}");
    let v = &refused.violations[0];
    let at = v.at.as_ref().unwrap();
    assert_eq!((at.section, at.op_index, at.op), (Some(Section::Step(1)), Some(1), Some("write-kernel-cold")));
    let text = refused.to_string();
    assert!(text.contains("scenario \"s\""), "{text}");
    assert!(text.contains("step 1, op 1 (write-kernel-cold)"), "{text}");
    assert!(text.contains(&format!("add its sha256 \"{}\" to `sha256` in [trusted]", hex::encode(DIGEST))), "{text}");
}

#[test]
fn trust_by_digest_name_or_flag_lifts_authority_rules_but_not_bounds() {
    let s = stream(vec![Step::new(vec![write("x")], HoldSpec::fixed_ms(5000))]);
    let by_digest = Policy::from_toml(&format!("[trusted]\nsha256 = [\"{}\"]", hex::encode(DIGEST))).unwrap();
    assert_eq!(by_digest.trusted_by(subject(), "s"), Some(TrustedBy::Sha256));
    assert!(by_digest.admit(subject(), &s).is_ok());
    let by_name = Policy::from_toml("[trusted]\nnames = [\"s\"]").unwrap();
    assert_eq!(by_name.trusted_by(subject(), "s"), Some(TrustedBy::Name));
    assert!(by_name.admit(subject(), &s).is_ok());
    let mut all = Policy::from_toml("[limits]\nmax-duration-ms = 1000").unwrap();
    all.trusted.all = true;
    let refused = all.admit(subject(), &s).expect_err("5 s of holds over a 1 s bound");
    assert_eq!(refused.violations.len(), 1);
    assert!(refused.violations[0].what.contains("5000 ms, at most 1000 ms"), "{refused}");
}

#[test]
fn write_rules_allow_matching_targets_only() {
    let p = Policy::from_toml("[kernel]\nwrites = [\"symbol:scx_*\", \"symbol:ok\", \"per-cpu:runqueues.*\"]").unwrap();
    let s = stream(vec![Step::new(
        vec![
            write("ok"),
            write("not_ok"),
            write("scx_watchdog_timeout"),
            Op::write_kernel_hot(vec![KernelWrite {
                target: KernelTarget::per_cpu_field("runqueues", "nr_running", 1),
                value: KernelValue::U32(0),
            }]),
        ],
        HoldSpec::FULL,
    )]);
    let refused = p.admit(subject(), &s).expect_err("not_ok is not allowed");
    let at: Vec<_> = refused.violations.iter().map(|v| v.at.as_ref().unwrap().op_index).collect();
    assert_eq!(at, vec![Some(1)], "{refused}");
    assert!(!WriteRule::parse("symbol:scx_*").unwrap().matches("symbol:jiffies_64"));
    assert!(!WriteRule::parse("per-cpu:runqueues.*").unwrap().matches("per-cpu:kstat.cpustat"));
    assert!(WriteRule::parse("kva").unwrap().matches("kva:0xffff888000000000"));
    assert!(!WriteRule::parse("kva").unwrap().matches("direct:0x1000"));
    assert!(WriteRule::parse("bogus").is_err());
    assert!(Policy::from_toml("[kernel]\nwrites = [\"bogus\"]").is_err());
}

#[test]
fn payload_scheduler_and_read_rules() {
    let p = Policy::from_toml(
        "[payloads]\nallow = [\"stress\"]\n[schedulers]\nallow = [\"fixture\"]\n[kernel]\nreads = false\n",
    )
    .unwrap();
    let s = stream(vec![Step::new(
        vec![
            Op::attach_scheduler("scx_evil"),
            Op::attach_scheduler("fixture"),
            Op::read_kernel_cold("t", KernelTarget::symbol("jiffies"), crate::op_model::KernelValueWidth::U64),
        ],
        HoldSpec::FULL,
    )]);
    let refused = p.admit(subject(), &s).expect_err("three violations");
    let text = refused.to_string();
    assert_eq!(refused.violations.len(), 3, "{text}");
    assert!(text.contains("describe(): payload \"fio\""), "{text}");
    assert!(text.contains("step 0, op 0 (attach-scheduler): scheduler \"scx_evil\""), "{text}");
    assert!(text.contains("step 0, op 2 (read-kernel-cold)"), "{text}");
}

#[test]
fn guest_requests_get_the_components_read_grant() {
    let closed = Policy::from_toml("[kernel]\nreads = false\n").unwrap();
    let why = closed.guest_grants(subject(), "s").reads_refused.expect("reads = false refuses an untrusted component");
    assert!(why.contains("reads = false") && why.contains("s.wasm") && why.contains(&hex::encode(DIGEST)), "{why}");
    let trusted =
        Policy::from_toml(&format!("[kernel]\nreads = false\n[trusted]\nsha256 = [\"{}\"]\n", hex::encode(DIGEST)))
            .unwrap();
    assert_eq!(trusted.guest_grants(subject(), "s").reads_refused, None);
    assert_eq!(Policy::default().guest_grants(subject(), "s").reads_refused, None);
}

#[test]
fn the_file_format_sets_bounds_and_refuses_unknown_keys() {
    let p = Policy::from_toml(
        "[limits]\nfuel = 5\nwasm-memory-mib = 3\nstack-kib = 64\nmax-ops = 9\nmax-arg-kib = 1\nmax-steps = 2\n[wasi]\nlink = false\n",
    )
    .unwrap();
    assert_eq!(
        (p.limits.fuel, p.limits.memory_bytes, p.limits.stack_bytes, p.limits.max_ops, p.limits.max_arg_bytes),
        (5, 3 << 20, 64 << 10, 9, 1 << 10)
    );
    assert_eq!(p.stream.max_steps, Some(2));
    assert!(!p.wasi);
    let s = stream(vec![Step::new(vec![], HoldSpec::FULL); 3]);
    assert!(p.admit(subject(), &s).unwrap_err().to_string().contains("3 steps, at most 2"));
    let err = Policy::from_toml("[limits]\nfeul = 5").unwrap_err();
    assert!(err.contains("feul"), "{err}");
    assert!(Policy::from_toml("[trusted]\nsha256 = [\"abc\"]").unwrap_err().contains("64 digits"));
}

#[test]
fn the_file_format_sets_the_wall_clock_bound() {
    assert_eq!(Policy::from_toml("[limits]\nwall-ms = 1500\n").unwrap().limits.wall_ms, 1500);
    assert_eq!(Policy::default().limits.wall_ms, 30_000);
}

/// A signature as `signing::check` reports it, by a key made from `seed`.
fn signed_by(seed: u8, source: Option<[u8; 32]>) -> (String, Signature) {
    let key = signing::key_text(&ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key());
    (key.clone(), Signature::Valid { key, source: source.as_ref().map(signing::source_text) })
}

#[test]
fn a_listed_key_trusts_what_it_signed_and_grants_what_a_digest_pin_grants() {
    let s = stream(vec![Step::new(vec![write("x")], HoldSpec::fixed_ms(5000))]);
    let (key, sig) = signed_by(1, None);
    let p = Policy::from_toml(&format!(
        "[limits]\nmax-duration-ms = 1000\n[trusted]\nkeys = [\"{}\"]",
        key.to_uppercase().replace("ED25519", "ed25519")
    ))
    .unwrap();
    let signed = Subject { signature: Some(&sig), ..subject() };
    assert_eq!(p.trusted_by(signed, "s"), Some(TrustedBy::Key(key.clone())));
    assert_eq!(TrustedBy::Key(key.clone()).to_string(), format!("key {key}"));
    // Trusted: the kernel write passes; the bound still binds, as with a sha256 pin.
    let refused = p.admit(signed, &s).expect_err("bounds bind trusted components");
    assert_eq!(refused.violations.len(), 1, "{refused}");
    assert!(refused.violations[0].at.is_none(), "{refused}");
    // Unsigned, signed by another key or invalid: not trusted, and the refusal says why.
    let (other, other_sig) = signed_by(2, None);
    let invalid = Signature::Invalid { key: Some(key.clone()), why: "it does not verify".into() };
    for (sig, says) in [
        (None, None),
        (Some(&Signature::Unsigned), Some("it is not signed".to_owned())),
        (Some(&other_sig), Some(format!("it is signed by {other}, which is not in `keys` of [trusted]"))),
        (
            Some(&invalid),
            Some(format!("its signature is not accepted: INVALID signature by {key}: it does not verify")),
        ),
    ] {
        let subject = Subject { signature: sig, ..subject() };
        assert_eq!(p.trusted_by(subject, "s"), None, "{sig:?}");
        let text = p.admit(subject, &s).expect_err("untrusted kernel write").to_string();
        assert!(text.contains("kernel write to symbol:x"), "{text}");
        if let Some(says) = says {
            assert!(text.contains(&says), "{says:?} in {text}");
        }
    }
    // A guest's kernel reads under `reads = false` get the same note.
    let closed = Policy::from_toml(&format!("[kernel]\nreads = false\n[trusted]\nkeys = [\"{key}\"]")).unwrap();
    let why = closed.guest_grants(Subject { signature: Some(&other_sig), ..subject() }, "s").reads_refused.unwrap();
    assert!(why.contains(&format!("it is signed by {other}, which is not in `keys`")), "{why}");
    assert_eq!(closed.guest_grants(signed, "s").reads_refused, None, "a listed key lifts `reads = false`");
    // Without keys in the policy, an unsigned component gets no note.
    assert_eq!(Policy::default().signature_note(Subject { signature: Some(&Signature::Unsigned), ..subject() }), None);
}

#[test]
fn a_builder_key_trusts_only_a_listed_source_digest() {
    let (builder, _) = signed_by(3, None);
    let reviewed = [7u8; 32];
    let p = Policy::from_toml(&format!(
        "[trusted]\nbuilders = [\"{builder}\"]\nsources = [\"{}\"]",
        signing::source_text(&reviewed)
    ))
    .unwrap();
    let (_, good) = signed_by(3, Some(reviewed));
    assert_eq!(
        p.trusted_by(Subject { signature: Some(&good), ..subject() }, "s"),
        Some(TrustedBy::Source { source: signing::source_text(&reviewed), builder: builder.clone() })
    );
    // Another source, no source, or the reviewed source signed by a key not in `builders`.
    let (_, other_source) = signed_by(3, Some([8; 32]));
    let (_, no_source) = signed_by(3, None);
    let (_, other_builder) = signed_by(4, Some(reviewed));
    for sig in [&other_source, &no_source, &other_builder] {
        assert_eq!(p.trusted_by(Subject { signature: Some(sig), ..subject() }, "s"), None, "{sig:?}");
    }
    let note = p.signature_note(Subject { signature: Some(&other_source), ..subject() }).unwrap();
    assert!(note.contains("which is not in `sources` of [trusted]"), "{note}");
    // A builder key does not trust what it signs without a source: that is `keys`.
    let err = Policy::from_toml(&format!("[trusted]\nbuilders = [\"{builder}\"]")).unwrap_err();
    assert!(err.contains("builders needs `sources`"), "{err}");
    // A bare source digest proves nothing (a component can claim any): refused.
    let err =
        Policy::from_toml(&format!("[trusted]\nsources = [\"{}\"]", signing::source_text(&reviewed))).unwrap_err();
    assert!(err.contains("sources needs `builders`"), "{err}");
    let err = Policy::from_toml("[trusted]\nkeys = [\"ed25519:1234\"]").unwrap_err();
    assert!(err.contains("[trusted] keys") && err.contains("64 hex digits"), "{err}");
}

#[test]
fn max_duration_has_a_default_that_a_policy_or_flag_raises() {
    assert_eq!(Policy::default().stream.max_duration_ms, Some(DEFAULT_MAX_DURATION_MS));
    assert_eq!(Policy::from_toml("").unwrap().stream.max_duration_ms, Some(DEFAULT_MAX_DURATION_MS));
    let mut p = Policy::from_toml("[limits]\nmax-duration-ms = 100_000_000").unwrap();
    assert_eq!(p.stream.max_duration_ms, Some(100_000_000));
    // 25 steps of one hour each: over the 24 h default.
    let s = stream((0..25).map(|_| Step::new(vec![], HoldSpec::fixed_ms(3_600_000))).collect());
    let mut trusting = Policy::default();
    trusting.trusted.all = true;
    let refused = trusting.admit(subject(), &s).expect_err("over the default");
    assert!(refused.violations[0].what.contains("90000000 ms, at most 86400000 ms"), "{refused}");
    p.trusted.all = true;
    assert!(p.admit(subject(), &s).is_ok(), "raised by the policy");
}
