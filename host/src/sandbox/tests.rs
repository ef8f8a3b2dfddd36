//! The sandbox's WASI context: fixed-seed randomness.

use wasmtime_wasi::p2::bindings::random::{insecure, insecure_seed, random};

use super::{Sandbox, SandboxConfig};

fn draws(sb: &Sandbox) -> (Vec<u8>, Vec<u8>, (u64, u64)) {
    let mut store = sb.store();
    let r = store.data_mut().wasi.random();
    let secure = random::Host::get_random_bytes(r, 64).unwrap();
    let weak = insecure::Host::get_insecure_random_bytes(r, 64).unwrap();
    let seed = insecure_seed::Host::insecure_seed(r).unwrap();
    (secure, weak, seed)
}

#[test]
fn every_random_source_is_seeded_the_same_in_every_store() {
    let config = SandboxConfig { cache_root: None, ..SandboxConfig::default() };
    let a = Sandbox::new(config.clone()).unwrap();
    let b = Sandbox::new(config).unwrap();
    let first = draws(&a);
    assert_eq!(first, draws(&a), "a second store of the same sandbox draws differently");
    assert_eq!(first, draws(&b), "another sandbox draws differently");
    assert_ne!(first.0, vec![0; 64], "the bytes are not random-looking");
    assert_ne!(first.0, first.1, "secure and insecure streams are the same");
    assert_eq!(first.2, (0, 0), "the README promises insecure-seed 0");
}
