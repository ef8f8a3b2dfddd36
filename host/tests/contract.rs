//! The WIT is the single source of truth: every `ops` function is an op kind
//! of the host's model (or one of the four structure functions), and back.

use std::collections::BTreeSet;
use std::path::Path;

use schedbox::op_model::OpKind;
use strum::IntoEnumIterator;

const STRUCTURE: [&str; 4] = ["open-backdrop", "close-backdrop", "open-step", "close-step"];

fn wit_ops_functions() -> BTreeSet<String> {
    let mut resolve = wit_parser::Resolve::default();
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    let (pkg, _) = resolve.push_dir(&wit).expect("wit/ parses");
    let ops = resolve.packages[pkg].interfaces["ops"];
    resolve.interfaces[ops].functions.keys().cloned().collect()
}

#[test]
fn every_wit_op_is_an_op_kind_and_back() {
    let all = wit_ops_functions();
    // spawn-work records a `spawn` op (the work types and policies added within 0.1).
    assert!(all.contains("spawn-work") && OpKind::iter().any(|k| k.wit_name() == "spawn"));
    // spawn-threads records a `spawn` op whose workers are threads.
    assert!(all.contains("spawn-threads"));
    let wit: BTreeSet<String> = all
        .into_iter()
        .filter(|f| !STRUCTURE.contains(&f.as_str()) && f != "spawn-work" && f != "spawn-threads")
        .collect();
    let host: BTreeSet<String> = OpKind::iter().map(|k| k.wit_name().to_owned()).collect();
    let missing_in_host: Vec<_> = wit.difference(&host).collect();
    let missing_in_wit: Vec<_> = host.difference(&wit).collect();
    assert!(missing_in_host.is_empty(), "WIT ops without an OpKind: {missing_in_host:?}");
    assert!(missing_in_wit.is_empty(), "OpKinds without a WIT import: {missing_in_wit:?}");
    // The reference taxonomy's 28 op constructors, plus steer-irq-cpus (steer-irq with a CPU set).
    assert_eq!(wit.len(), 29, "the reference taxonomy has 28 op constructors, and schedbox adds steer-irq-cpus");
    assert!(wit.contains("steer-irq-cpus"));
}

#[test]
fn structure_functions_exist() {
    let all = wit_ops_functions();
    for f in STRUCTURE {
        assert!(all.contains(f), "ops interface lacks {f}");
    }
}

#[test]
fn wit_package_version_matches_the_host() {
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve.push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")).unwrap();
    let name = &resolve.packages[pkg].name;
    assert_eq!(format!("{name}"), schedbox::op_model::CONTRACT_VERSION);
}

/// The WIT is the contract every language reads (its docs end up in every
/// binding): every interface, function, type and world export carries a doc
/// comment.
#[test]
fn every_wit_function_and_type_is_documented() {
    use wit_parser::{Type, TypeDefKind, WorldItem};
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve.push_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")).unwrap();
    let documented = |d: &wit_parser::Docs| d.contents.as_deref().is_some_and(|c| !c.trim().is_empty());
    let mut missing = Vec::new();
    for (name, &id) in &resolve.packages[pkg].interfaces {
        let iface = &resolve.interfaces[id];
        if !documented(&iface.docs) {
            missing.push(format!("interface {name}"));
        }
        for (f, func) in &iface.functions {
            if !documented(&func.docs) {
                missing.push(format!("{name}.{f}"));
            }
        }
        for (t, &ty) in &iface.types {
            let def = &resolve.types[ty];
            // `use` brings in an alias of another interface's (documented) type.
            let used = matches!(def.kind, TypeDefKind::Type(Type::Id(_)));
            if !used && !documented(&def.docs) {
                missing.push(format!("{name}.{t}"));
            }
        }
    }
    for (_, &world) in &resolve.packages[pkg].worlds {
        for (key, item) in &resolve.worlds[world].exports {
            if let WorldItem::Function(f) = item {
                if !documented(&f.docs) {
                    missing.push(format!("export {}", resolve.name_world_key(key)));
                }
            }
        }
    }
    assert!(missing.is_empty(), "undocumented in wit/scenario.wit: {missing:?}");
}
