use proptest::prelude::*;

use super::*;

fn facts() -> impl Strategy<Value = GuestFacts> {
    (
        ".{0,40}",
        proptest::collection::vec(0u32..512, 0..64),
        proptest::collection::vec(proptest::collection::vec(0u32..512, 0..8), 0..8),
        "[a-z]{0,12}",
        any::<u64>(),
    )
        .prop_map(|(kernel_release, cpus_online, llc_groups, sched_ext_state, uptime_ms)| GuestFacts {
            kernel_release,
            cpus_online,
            numa_nodes: llc_groups.clone(),
            llc_groups,
            sched_ext_state,
            kallsyms: uptime_ms / 3,
            cgroup_controllers: vec!["cpuset".into(), "cpu".into()],
            uptime_ms,
        })
}

fn message() -> impl Strategy<Value = AgentMessage> {
    prop_oneof![
        facts().prop_map(AgentMessage::Ready),
        (any::<u64>(), facts()).prop_map(|(id, f)| AgentMessage::Response { id, result: Ok(ResponseBody::Facts(f)) }),
        (any::<u64>(), ".{0,200}").prop_map(|(id, e)| AgentMessage::Response { id, result: Err(e) }),
        (any::<u64>(), ".{0,200}").prop_map(|(id, s)| AgentMessage::Response { id, result: Ok(ResponseBody::File(s)) }),
    ]
}

proptest! {
    #[test]
    fn round_trip(msg in message()) {
        let bytes = encode(&msg).unwrap();
        let (back, used): (AgentMessage, usize) = decode(&bytes).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(&back, &msg);
        let back: AgentMessage = read_msg(&mut bytes.as_slice()).unwrap();
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn any_flipped_payload_bit_is_caught(msg in message(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = encode(&msg).unwrap();
        let i = 16 + pos.index(bytes.len() - 16);
        bytes[i] ^= 1 << bit;
        let r: Result<(AgentMessage, usize), _> = decode(&bytes);
        prop_assert!(matches!(r, Err(WireError::Checksum { .. })), "{:?}", r);
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode::<AgentMessage>(&bytes);
        let _ = read_msg::<_, Request>(&mut bytes.as_slice());
    }
}

#[test]
fn bad_magic_version_and_length_are_named() {
    let good = encode(&Request { id: 7, body: RequestBody::Ping }).unwrap();
    let mut b = good.clone();
    b[0] = b'X';
    let e = decode::<Request>(&b).unwrap_err();
    assert!(e.to_string().contains("bad frame magic"), "{e}");
    let mut b = good.clone();
    b[4] = 9;
    assert!(decode::<Request>(&b).unwrap_err().to_string().contains("protocol version 9"));
    let mut b = good.clone();
    b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(decode::<Request>(&b), Err(WireError::TooLarge(_))));
    assert!(matches!(read_msg::<_, Request>(&mut &good[..10]), Err(WireError::Closed)));
}

#[test]
fn a_reset_round_trips_and_is_verified_only_when_nothing_remains() {
    let req = Request { id: 3, body: RequestBody::Reset };
    let (back, _): (Request, usize) = decode(&encode(&req).unwrap()).unwrap();
    assert_eq!(back, req);
    let mut report = ResetReport {
        frozen: ResetCheck { found: vec!["/schedbox/a".into()], remaining: Vec::new() },
        actions: vec!["thawed /schedbox/a".into()],
        ..ResetReport::default()
    };
    assert!(report.verified(), "found and cleaned is clean");
    report.irqs.remaining.push("IRQ 4 affinity \"1\" (originally \"0-3\")".into());
    assert!(!report.verified(), "an IRQ left steered is not clean");
    report.irqs.remaining.clear();
    report.tasks.remaining.push("pid 9 (w) in /schedbox/a".into());
    assert!(!report.verified());
    let msg = AgentMessage::Response { id: 3, result: Ok(ResponseBody::Reset(report.clone())) };
    let (back, _): (AgentMessage, usize) = decode(&encode(&msg).unwrap()).unwrap();
    assert_eq!(back, msg);
}
