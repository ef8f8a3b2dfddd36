//! The guest image's cache, as every boot meets it: `build_cached` on a hit (the inputs
//! hashed to name the entry, then the entry itself verified against that name) and on a
//! miss (the archive written), for the real agent plus a staged scheduler-sized file.
//!
//! `cargo bench -p schedbox --bench initramfs` (after `cargo xtask build-scenarios`).

use criterion::{criterion_group, criterion_main, Criterion};
use schedbox::initramfs::{build_cached, InitramfsSpec};

fn bench(c: &mut Criterion) {
    let agent = schedbox::machine::find_agent().expect("the agent is built: run `cargo xtask build-scenarios`");
    let tmp = tempfile::tempdir().unwrap();
    // A staged binary the size of a real scx scheduler (about 4 MB).
    let staged = tmp.path().join("scheduler");
    std::fs::write(&staged, vec![0x5au8; 4 << 20]).unwrap();
    let spec = InitramfsSpec { agent, staged: vec![("/staging/schedulers/s".into(), staged)], ..Default::default() };
    let cache = tmp.path().join("cache");
    let path = build_cached(&spec, &cache).unwrap();
    let bytes = std::fs::metadata(&path).unwrap().len();
    let mut g = c.benchmark_group(format!("initramfs ({:.1} MB)", bytes as f64 / 1e6));
    g.sample_size(20);
    g.bench_function("cache hit (inputs hashed, entry verified)", |b| {
        b.iter(|| build_cached(&spec, &cache).unwrap());
    });
    // What a hit cost before entries were verified: naming the entry only.
    g.bench_function("inputs hashed only", |b| {
        b.iter(|| spec.image().unwrap().digest().unwrap());
    });
    g.bench_function("cache miss (written)", |b| {
        b.iter(|| {
            std::fs::remove_file(&path).unwrap();
            build_cached(&spec, &cache).unwrap()
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
