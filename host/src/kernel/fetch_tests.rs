//! The fetch flow against stand-in apt tools (shell scripts): resolution through the
//! metapackage, the split linux-binary/linux-base layout, idempotence, modules.

use std::os::unix::fs::PermissionsExt;

use super::*;

const APT_GET: &str = r#"#!/bin/sh
state=""; mode=""; pkgs=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) case "$2" in Dir::State=*) state="${2#Dir::State=}";; esac; shift 2;;
    -q) shift;;
    update|download) mode="$1"; shift;;
    *) pkgs="$pkgs $1"; shift;;
  esac
done
echo "$mode$pkgs" >> "$LOG"
case $mode in
  update) touch "$state/lists/mirror.example_debian_dists_sid_InRelease";;
  download) for p in $pkgs; do n="${p%%=*}"; v="${p#*=}"; echo "$n" > "${n}_${v}_amd64.deb"; done;;
esac
"#;

const APT_CACHE: &str = r#"#!/bin/sh
for last; do :; done
case "$*" in
  *"depends linux-image-amd64") printf 'linux-image-amd64\n  Depends: linux-base-amd64\n  Depends: linux-image-9.9.9-amd64\n';;
  *"depends linux-image-9.9.9-amd64") printf 'linux-image-9.9.9-amd64\n |Depends: dracut\n  Depends: <linux-initramfs-tool>\n  Depends: linux-base-9.9.9-amd64\n  Depends: linux-binary-9.9.9-amd64\n  Depends: linux-modules-9.9.9-amd64\n';;
  *show*) printf 'Package: %s\nVersion: 9.9.9-1\nSize: 123\n' "$last";;
  *) echo "E: unexpected: $*" >&2; exit 100;;
esac
"#;

const DPKG_DEB: &str = r#"#!/bin/sh
name=$(cat "$2"); d="$3/usr/lib/modules/9.9.9-amd64"; mkdir -p "$d"
case "$name" in
  linux-binary-*) echo bzimage > "$d/vmlinuz";;
  linux-base-*) echo 'CONFIG_SCHED_CLASS_EXT=y' > "$d/config"; echo 'ffffffffffffffff B placeholder' > "$d/System.map";;
  linux-modules-*) mkdir -p "$d/kernel"; echo ko > "$d/kernel/x.ko";;
esac
"#;

struct Fake {
    _tmp: tempfile::TempDir,
    cache: KernelCache,
    opts: FetchOptions,
    log: PathBuf,
}

fn fake() -> Fake {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log");
    let bin = tmp.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let tool = |name: &str, body: &str| {
        let p = bin.join(name);
        fs::write(&p, body.replace("\"$LOG\"", &format!("'{}'", log.display()))).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    let tools = AptTools {
        apt_get: tool("apt-get", APT_GET),
        apt_cache: tool("apt-cache", APT_CACHE),
        dpkg_deb: tool("dpkg-deb", DPKG_DEB),
    };
    let etc = tmp.path().join("etc-apt");
    fs::create_dir_all(&etc).unwrap();
    fs::write(etc.join("sources.list"), "deb http://mirror.example/debian bookworm main\n").unwrap();
    let cache = KernelCache::at(tmp.path().join("cache"));
    let opts = FetchOptions { etc_apt: etc, tools, ..FetchOptions::default() };
    Fake { _tmp: tmp, cache, opts, log }
}

fn log(f: &Fake) -> Vec<String> {
    fs::read_to_string(&f.log).unwrap_or_default().lines().map(str::to_owned).collect()
}

#[test]
fn fetch_resolves_downloads_unpacks_then_is_idempotent() {
    let f = fake();
    let mut events = Vec::new();
    let entry = fetch_with(&f.cache, &f.opts, &mut |e| events.push(e)).unwrap();
    assert_eq!(entry.release, "9.9.9-amd64");
    assert_eq!(fs::read_to_string(entry.vmlinuz()).unwrap(), "bzimage\n");
    assert!(entry.config().unwrap().get("CONFIG_SCHED_CLASS_EXT").is_some());
    assert!(entry.system_map().is_none(), "the placeholder System.map must not be cached");
    let names: Vec<_> = entry.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["linux-binary-9.9.9-amd64", "linux-base-9.9.9-amd64"]);
    assert_eq!(log(&f), ["update", "download linux-binary-9.9.9-amd64=9.9.9-1 linux-base-9.9.9-amd64=9.9.9-1"]);
    assert!(events.contains(&FetchEvent::Installed { release: "9.9.9-amd64".into() }));
    // The download reports the bytes that arrived (the last count is the whole download).
    let mut arrived = events.iter().filter_map(|e| match e {
        FetchEvent::Downloaded { done, .. } => Some(*done),
        _ => None,
    });
    assert!(arrived.next_back().is_some_and(|done| done > 0), "{events:?}");
    let sources = fs::read_to_string(f.cache.apt_dir().join("sources/sid.sources")).unwrap();
    assert!(sources.contains("URIs: http://mirror.example/debian\nSuites: sid\n"), "{sources}");
    assert!(fs::read_dir(f.cache.apt_dir().join("debs")).unwrap().next().is_none(), ".debs are removed");

    // Second call: lists are fresh, the release is cached: no apt-get at all.
    let mut events = Vec::new();
    let again = fetch_with(&f.cache, &f.opts, &mut |e| events.push(e)).unwrap();
    assert_eq!(again.dir, entry.dir);
    assert_eq!(log(&f).len(), 2);
    assert!(events.contains(&FetchEvent::AlreadyCached { release: "9.9.9-amd64".into() }));

    // A forced refresh updates the lists but still downloads nothing.
    let opts = FetchOptions { refresh: true, ..f.opts.clone() };
    fetch_with(&f.cache, &opts, &mut |_| {}).unwrap();
    assert_eq!(log(&f)[2..], ["update"]);
    assert_eq!(f.cache.list().unwrap().len(), 1);
}

#[test]
fn modules_are_opt_in_and_fetched_once() {
    let f = fake();
    let entry = fetch_with(&f.cache, &f.opts, &mut |_| {}).unwrap();
    assert!(entry.modules_dir().is_none());
    let with = fetch_modules(&f.cache, &entry, &f.opts, &mut |_| {}).unwrap();
    let dir = with.modules_dir().unwrap();
    assert!(dir.join("kernel/x.ko").is_file());
    assert_eq!(with.modules.as_ref().unwrap().name, "linux-modules-9.9.9-amd64");
    let n = log(&f).len();
    fetch_modules(&f.cache, &with, &f.opts, &mut |_| {}).unwrap();
    assert_eq!(log(&f).len(), n);
    assert!(f.cache.get("9.9.9-amd64").unwrap().unwrap().modules.is_some(), "the manifest records the modules");
}

#[test]
fn a_failed_update_falls_back_to_the_cache_or_says_what_to_do() {
    let f = fake();
    let broken = FetchOptions {
        refresh: true,
        tools: AptTools { apt_get: "/nonexistent/apt-get".into(), ..f.opts.tools.clone() },
        ..f.opts.clone()
    };
    let err = format!("{:#}", fetch_with(&f.cache, &broken, &mut |_| {}).unwrap_err());
    assert!(err.contains("could not read the sid package lists") && err.contains("apt-get"), "{err}");
    fetch_with(&f.cache, &f.opts, &mut |_| {}).unwrap();
    let entry = fetch_with(&f.cache, &broken, &mut |_| {}).unwrap();
    assert_eq!(entry.release, "9.9.9-amd64");
}

/// The real thing: the system's Debian mirror, sid, apt. Needs the network and apt;
/// run with `cargo test -p schedbox --lib kernel::fetch -- --ignored`.
#[test]
#[ignore = "downloads about 25 MB from the system's Debian mirror"]
fn fetches_the_real_sid_kernel() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = KernelCache::at(tmp.path());
    let t = std::time::Instant::now();
    let mut events = Vec::new();
    let entry = fetch(&cache, &mut |e| events.push(e)).unwrap();
    eprintln!("fetched {} in {:?}: {:?}", entry.release, t.elapsed(), entry.packages);
    let findings = super::super::check(&entry.config().unwrap());
    let errors: Vec<_> = findings.iter().filter(|f| f.severity == super::super::Severity::Error).collect();
    assert!(errors.is_empty(), "{errors:?}");
    for f in findings.iter().filter(|f| f.severity != super::super::Severity::Ok) {
        eprintln!("{f}");
    }
    let t = std::time::Instant::now();
    let vmlinux = entry.vmlinux().unwrap();
    let info = super::super::inspect_elf(&fs::read(&vmlinux).unwrap()).unwrap();
    eprintln!("vmlinux in {:?}: {info:x?}", t.elapsed());
    assert!(info.pvh_entry.is_some(), "Debian kernels have CONFIG_PVH=y");
    let t = std::time::Instant::now();
    let mut again = Vec::new();
    fetch(&cache, &mut |e| again.push(e)).unwrap();
    eprintln!("second fetch in {:?}: {again:?}", t.elapsed());
    assert!(again.iter().any(|e| matches!(e, FetchEvent::AlreadyCached { .. })));
}
