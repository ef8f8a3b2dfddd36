use super::*;

fn component(name: &str) -> Vec<u8> {
    wat::parse_str(format!(r#"(component (core module (func (export "{name}"))))"#)).unwrap()
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn loads(bytes: &[u8]) {
    let mut c = wasmtime::Config::new();
    c.wasm_component_model(true);
    let engine = wasmtime::Engine::new(&c).unwrap();
    wasmtime::component::Component::new(&engine, bytes).expect("a signed component is still a component");
}

#[test]
fn a_signed_component_verifies_and_still_loads() {
    let plain = component("a");
    assert_eq!(check(&plain), Signature::Unsigned);
    let signed = sign(&plain, &key(1), None).unwrap();
    assert_eq!(check(&signed), Signature::Valid { key: key_text(&key(1).verifying_key()), source: None });
    assert!(signed.starts_with(&plain), "the section is appended");
    loads(&signed);
    // Signing again (another key) replaces the section instead of adding one.
    let resigned = sign(&signed, &key(2), None).unwrap();
    assert_eq!(resigned.len(), signed.len());
    assert_eq!(check(&resigned), Signature::Valid { key: key_text(&key(2).verifying_key()), source: None });
    loads(&resigned);
}

#[test]
fn every_single_byte_change_breaks_the_signature() {
    let signed = sign(&component("a"), &key(1), Some(&[5; 32])).unwrap();
    for i in 0..signed.len() {
        let mut t = signed.clone();
        t[i] ^= 0x01;
        let got = check(&t);
        assert!(!matches!(got, Signature::Valid { .. }), "byte {i} changed and it still verifies: {got}");
    }
}

#[test]
fn a_section_copied_from_another_component_does_not_verify() {
    let a = sign(&component("a"), &key(1), None).unwrap();
    let b = component("b");
    let section = &a[component("a").len()..];
    let forged = [&b[..], section].concat();
    match check(&forged) {
        Signature::Invalid { key: Some(k), why } => {
            assert_eq!(k, key_text(&key(1).verifying_key()));
            assert!(why.contains("does not verify"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    // Bytes added after signing (even another custom section) are covered too.
    let mut extra = a.clone();
    extra.extend_from_slice(&[0, 2, 1, b'x']);
    assert!(matches!(check(&extra), Signature::Invalid { .. }));
}

#[test]
fn the_source_digest_is_signed_and_two_sections_are_refused() {
    let signed = sign(&component("a"), &key(1), Some(&[9; 32])).unwrap();
    assert_eq!(
        check(&signed),
        Signature::Valid { key: key_text(&key(1).verifying_key()), source: Some(source_text(&[9; 32])) }
    );
    // A second section, even a valid one, makes the component invalid.
    let plain_len = component("a").len();
    let twice = [&signed[..], &signed[plain_len..]].concat();
    match check(&twice) {
        Signature::Invalid { why, .. } => assert!(why.contains("2 `schedbox:signature` sections"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Core modules and text are not signed.
    let module = wat::parse_str("(module)").unwrap();
    assert!(sign(&module, &key(1), None).unwrap_err().contains("not a WebAssembly component"));
    assert!(sign(b"(component)", &key(1), None).unwrap_err().contains("not a WebAssembly binary"));
    assert_eq!(check(b"(component)"), Signature::Unsigned, "WAT text carries no signature");
}

#[test]
fn keys_and_sources_round_trip_and_bad_ones_are_named() {
    let k = key(3);
    let text = key_text(&k.verifying_key());
    assert_eq!(parse_key(&text.to_uppercase().replace("ED25519:", "ed25519:")).unwrap(), k.verifying_key());
    assert!(parse_key("ed25519:abc").unwrap_err().contains("64 hex digits"));
    assert!(parse_key(&hex::encode([1; 32])).unwrap_err().contains("ed25519:"));
    assert_eq!(parse_source(&source_text(&[4; 32])).unwrap(), [4; 32]);
    assert!(parse_source("4444").unwrap_err().contains("sha256:"));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("k");
    std::fs::write(&p, secret_text(&k)).unwrap();
    assert_eq!(read_secret(&p).unwrap().to_bytes(), k.to_bytes());
    std::fs::write(&p, text).unwrap();
    assert!(read_secret(&p).unwrap_err().contains("not a schedbox private key"));
}

#[test]
fn a_source_digest_names_every_file_and_skips_build_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("s/src")).unwrap();
    std::fs::create_dir_all(root.join("s/target/x")).unwrap();
    std::fs::create_dir_all(root.join("s/.git")).unwrap();
    std::fs::write(root.join("s/src/main.py"), "print(1)\n").unwrap();
    std::fs::write(root.join("s/app.toml"), "a = 1\n").unwrap();
    std::fs::write(root.join("s/target/x/out.wasm"), "build output").unwrap();
    std::fs::write(root.join("s/.git/HEAD"), "x").unwrap();
    std::fs::write(root.join("wit.wit"), "package a:b;\n").unwrap();
    let paths = [PathBuf::from("./s"), PathBuf::from("wit.wit")];
    let (d1, manifest) = source_digest(root, &paths).unwrap();
    assert_eq!(
        manifest,
        format!(
            "{}  s/app.toml\n{}  s/src/main.py\n{}  wit.wit\n",
            hex::encode(Sha256::digest(b"a = 1\n")),
            hex::encode(Sha256::digest(b"print(1)\n")),
            hex::encode(Sha256::digest(b"package a:b;\n")),
        )
    );
    assert_eq!(d1, <[u8; 32]>::from(Sha256::digest(manifest.as_bytes())));
    // Build outputs do not count; a changed source does.
    std::fs::write(root.join("s/target/x/out.wasm"), "another build").unwrap();
    assert_eq!(source_digest(root, &paths).unwrap().0, d1);
    std::fs::write(root.join("s/src/main.py"), "print(2)\n").unwrap();
    assert_ne!(source_digest(root, &paths).unwrap().0, d1);
    assert!(source_digest(root, &[root.join("s")]).unwrap_err().contains("relative to the project root"));
    assert!(source_digest(root, &[PathBuf::from("s/../wit.wit")]).unwrap_err().contains("without `..`"));
    assert!(source_digest(root, &[PathBuf::from("missing")]).unwrap_err().starts_with("missing"));
}

#[test]
fn wasmparser_reads_the_section_where_the_walk_put_it() {
    let plain = component("a");
    let signed = sign(&plain, &key(1), None).unwrap();
    let mut found = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&signed) {
        if let wasmparser::Payload::CustomSection(c) = payload.unwrap() {
            found.push((c.name().to_owned(), c.range(), c.data().len()));
        }
    }
    let ours: Vec<_> = found.iter().filter(|(n, ..)| n == SECTION).collect();
    assert_eq!(ours.len(), 1, "{found:?}");
    assert_eq!(ours[0].1.end, signed.len(), "appended at the end: {found:?}");
    assert_eq!(ours[0].2, 1 + 32 + 1 + 64, "format 1 without a source digest");
    let walked = find(&signed).unwrap().unwrap();
    assert_eq!(walked.0.start, plain.len());
    assert_eq!(walked.1.len(), ours[0].2);
}
