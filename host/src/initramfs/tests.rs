//! Archives are read back with a small newc reader written here from the format's
//! description, independent of the writer.

use std::fs;

use sha2::{Digest, Sha256};

use super::*;

#[derive(Debug)]
struct Read {
    name: String,
    ino: u32,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    data: Vec<u8>,
}

/// Parses `bytes` as newc, asserting the magic, the 4-byte alignment of every header and
/// data start, and that the archive ends with `TRAILER!!!` (returned as the last entry).
fn parse(bytes: &[u8]) -> Vec<Read> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let align = |n: usize| (n + 3) & !3;
    loop {
        assert_eq!(at % 4, 0, "header at {at} is not 4-byte aligned");
        let h = &bytes[at..at + 110];
        assert_eq!(&h[..6], b"070701", "bad magic at {at}");
        let field =
            |i: usize| u32::from_str_radix(std::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).unwrap(), 16).unwrap();
        let (namesize, filesize) = (field(11) as usize, field(6) as usize);
        let name_bytes = &bytes[at + 110..at + 110 + namesize];
        assert_eq!(name_bytes.last(), Some(&0), "name not NUL-terminated");
        let name = std::str::from_utf8(&name_bytes[..namesize - 1]).unwrap().to_owned();
        let data_at = align(at + 110 + namesize);
        assert!(bytes[at + 110 + namesize..data_at].iter().all(|&b| b == 0), "name padding is not zero");
        let data = bytes[data_at..data_at + filesize].to_vec();
        at = align(data_at + filesize);
        let done = name == "TRAILER!!!";
        out.push(Read { name, ino: field(0), mode: field(1), nlink: field(4), rdev: (field(9), field(10)), data });
        if done {
            assert_eq!(at, bytes.len(), "bytes after the trailer");
            return out;
        }
    }
}

fn entry<'a>(all: &'a [Read], name: &str) -> &'a Read {
    all.iter().find(|e| e.name == name).unwrap_or_else(|| panic!("{name} not in {:?}", names(all)))
}

fn names(all: &[Read]) -> Vec<&str> {
    all.iter().map(|e| e.name.as_str()).collect()
}

fn archive(image: &Initramfs) -> Vec<u8> {
    let mut bytes = Vec::new();
    let len = image.write_to(&mut bytes).unwrap();
    assert_eq!(len, bytes.len() as u64);
    bytes
}

#[test]
fn base_image_has_init_devices_and_mount_points() {
    let all = parse(&archive(&Initramfs::new(b"\x7fELF agent".as_slice())));
    assert_eq!(names(&all), ["dev", "dev/console", "dev/null", "init", "proc", "sys", "tmp", "TRAILER!!!"]);
    let console = entry(&all, "dev/console");
    assert_eq!((console.mode, console.rdev, console.data.len()), (0o020600, (5, 1), 0));
    let null = entry(&all, "dev/null");
    assert_eq!((null.mode, null.rdev), (0o020666, (1, 3)));
    let init = entry(&all, "init");
    assert_eq!((init.mode, init.nlink, init.data.as_slice()), (0o100755, 1, b"\x7fELF agent".as_slice()));
    assert_eq!(entry(&all, "tmp").mode, 0o041777);
    assert_eq!((entry(&all, "dev").mode, entry(&all, "dev").nlink), (0o040755, 2));
    assert_eq!(entry(&all, "proc").mode, 0o040555);
    let inos: Vec<u32> = all[..all.len() - 1].iter().map(|e| e.ino).collect();
    assert_eq!(inos, (1..=7).collect::<Vec<_>>(), "distinct inode numbers (no accidental hard links)");
    let trailer = all.last().unwrap();
    assert_eq!((trailer.mode, trailer.data.len()), (0, 0));
}

#[test]
fn parents_come_first_and_odd_sizes_are_padded() {
    let mut image = Initramfs::new(vec![1u8; 5]);
    image.file("/a/b/c.bin", vec![7u8; 13], 0o600).unwrap().symlink("/a/link", "b/c.bin").unwrap();
    image.file("/a-b", b"x".as_slice(), 0o644).unwrap();
    let all = parse(&archive(&image));
    let pos = |n: &str| names(&all).iter().position(|x| *x == n).unwrap();
    assert!(pos("a") < pos("a/b") && pos("a/b") < pos("a/b/c.bin"), "{:?}", names(&all));
    assert_eq!(entry(&all, "a/b").mode, 0o040755);
    let c = entry(&all, "a/b/c.bin");
    assert_eq!((c.mode, c.data.as_slice()), (0o100600, [7u8; 13].as_slice()));
    let link = entry(&all, "a/link");
    assert_eq!((link.mode, link.data.as_slice()), (0o120777, b"b/c.bin".as_slice()));
}

#[test]
fn bad_paths_modes_and_conflicts_are_refused_without_side_effects() {
    let mut image = Initramfs::new(vec![0u8]);
    for bad in ["relative", "/", "/a/../b", "/a//b", "/a/./b", "/a\0b"] {
        assert!(matches!(image.dir(bad, 0o755), Err(InitramfsError::BadPath { .. })), "{bad:?}");
    }
    assert!(matches!(image.dir("/x", 0o10000), Err(InitramfsError::BadMode { .. })));
    let before: Vec<String> = image.paths().collect();
    let err = image.file("/init/below", vec![], 0o644).unwrap_err();
    assert!(matches!(err, InitramfsError::Conflict { existing: "file", .. }), "{err}");
    assert!(image.file("/new/dir/init", vec![], 0o644).is_ok());
    assert!(image.char_dev("/new/dir/init", 1, 1, 0o600).is_err(), "a second entry at one path");
    assert!(image.file("/dev/console/x/y", vec![], 0o644).is_err());
    let after: Vec<String> = image.paths().collect();
    assert_eq!(after.len(), before.len() + 3, "only /new, /new/dir and /new/dir/init were added: {after:?}");
    image.dir("/tmp", 0o700).unwrap();
    assert_eq!(entry(&parse(&archive(&image)), "tmp").mode, 0o040700, "re-adding a directory sets its mode");
}

#[test]
fn digest_is_the_hash_of_the_archive_and_tracks_every_input() {
    let a = Initramfs::new(vec![1u8, 2, 3]);
    let bytes = archive(&a);
    assert_eq!(a.digest().unwrap(), hex::encode(Sha256::digest(&bytes)));
    assert_eq!(a.digest().unwrap(), Initramfs::new(vec![1u8, 2, 3]).digest().unwrap());
    let mut mode = a.clone();
    mode.dir("/tmp", 0o755).unwrap();
    let mut dev = a.clone();
    dev.char_dev("/dev/ttyS1", 4, 65, 0o600).unwrap();
    let digests = [
        a.digest().unwrap(),
        Initramfs::new(vec![1u8, 2, 4]).digest().unwrap(),
        mode.digest().unwrap(),
        dev.digest().unwrap(),
    ];
    for (i, x) in digests.iter().enumerate() {
        assert!(digests[i + 1..].iter().all(|y| y != x), "digest {i} repeats: {digests:?}");
    }
}

#[test]
fn build_cached_writes_once_and_rebuilds_on_change() {
    let tmp = tempfile::tempdir().unwrap();
    let host = |name: &str, bytes: &[u8]| {
        let p = tmp.path().join(name);
        fs::write(&p, bytes).unwrap();
        p
    };
    let spec = InitramfsSpec {
        agent: host("agent", b"\x7fELF static agent"),
        modules: vec![host("virtio_mmio.ko.xz", b"xz module"), host("a.ko", b"plain module")],
        on_demand_modules: vec![host("null_blk.ko.xz", b"on demand")],
        staged: vec![("/staging/bin/payload".into(), host("payload", &[9u8; 1001]))],
        kernel_config: Some(host("config", b"CONFIG_HZ=250\n")),
    };
    let cache = tmp.path().join("cache");
    let first = build_cached(&spec, &cache).unwrap();
    assert_eq!(first.parent().unwrap(), cache.join("initramfs"));
    assert_eq!(first.extension().unwrap(), "cpio");
    let bytes = fs::read(&first).unwrap();
    assert_eq!(first.file_stem().unwrap().to_str().unwrap(), hex::encode(Sha256::digest(&bytes)));
    let all = parse(&bytes);
    assert_eq!(entry(&all, "init").data, b"\x7fELF static agent");
    let config = entry(&all, "boot/config");
    assert_eq!((config.mode, config.data.as_slice()), (0o100644, b"CONFIG_HZ=250\n".as_slice()));
    let m0 = entry(&all, "lib/modules/schedbox/00-virtio_mmio.ko.xz");
    assert_eq!((m0.mode, m0.data.as_slice()), (0o100644, b"xz module".as_slice()));
    assert_eq!(entry(&all, "lib/modules/schedbox/01-a.ko").data, b"plain module");
    // On-demand modules keep their names, in a directory of their own the boot-time
    // loader does not read.
    let nb = entry(&all, "lib/modules/schedbox/on-demand/null_blk.ko.xz");
    assert_eq!((nb.mode, nb.data.as_slice()), (0o100644, b"on demand".as_slice()));
    assert_eq!(entry(&all, "lib/modules/schedbox/on-demand").mode & 0o170000, 0o040000);
    let payload = entry(&all, "staging/bin/payload");
    assert_eq!((payload.mode, payload.data.len()), (0o100755, 1001));

    // A hit: same path, file untouched, no temporaries left.
    let modified = fs::metadata(&first).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(build_cached(&spec, &cache).unwrap(), first);
    assert_eq!(fs::metadata(&first).unwrap().modified().unwrap(), modified, "a hit rewrote the archive");
    assert_eq!(fs::read_dir(cache.join("initramfs")).unwrap().count(), 1);

    // A miss: any changed input byte gives a new archive beside the old one.
    fs::write(&spec.agent, b"\x7fELF static agent v2").unwrap();
    let second = build_cached(&spec, &cache).unwrap();
    assert_ne!(second, first);
    assert_eq!(entry(&parse(&fs::read(&second).unwrap()), "init").data, b"\x7fELF static agent v2");
    assert_eq!(fs::read_dir(cache.join("initramfs")).unwrap().count(), 2);
}

#[test]
fn build_cached_refuses_non_modules_stray_staging_and_missing_files() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("agent");
    fs::write(&agent, b"a").unwrap();
    let cache = tmp.path().join("cache");
    let spec = InitramfsSpec { agent: agent.clone(), modules: vec![agent.clone()], ..Default::default() };
    assert!(build_cached(&spec, &cache).unwrap_err().to_string().contains("not a kernel module"));
    let spec = InitramfsSpec { agent: agent.clone(), on_demand_modules: vec![agent.clone()], ..Default::default() };
    assert!(build_cached(&spec, &cache).unwrap_err().to_string().contains("not a kernel module"));
    for guest in ["/init2", "/staging", "/staging/", "/stagingx/a", "/staging/../init"] {
        let spec = InitramfsSpec {
            agent: agent.clone(),
            modules: vec![],
            staged: vec![(guest.into(), agent.clone())],
            ..Default::default()
        };
        assert!(build_cached(&spec, &cache).is_err(), "{guest}");
    }
    let spec = InitramfsSpec { agent: tmp.path().join("missing"), ..Default::default() };
    let err = build_cached(&spec, &cache).unwrap_err().to_string();
    assert!(err.contains("missing") && err.contains("/init"), "{err}");
    assert!(!cache.join("initramfs").exists() || fs::read_dir(cache.join("initramfs")).unwrap().count() == 0);
}

#[test]
fn a_corrupt_cache_entry_is_rebuilt_not_booted() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("agent");
    fs::write(&agent, vec![7u8; 100_000]).unwrap();
    let spec = InitramfsSpec { agent, ..Default::default() };
    let cache = tmp.path().join("cache");
    let path = build_cached(&spec, &cache).unwrap();
    let good = fs::read(&path).unwrap();
    // Truncated (a full disk, a killed writer), then empty: each is rebuilt under its name.
    for broken in [&good[..good.len() / 2], &[][..]] {
        fs::write(&path, broken).unwrap();
        assert_eq!(build_cached(&spec, &cache).unwrap(), path);
        assert_eq!(fs::read(&path).unwrap(), good);
    }
}
