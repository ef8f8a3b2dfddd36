//! The malicious-component corpus through the command line, as a third party's
//! component meets it: `schedbox run`/`plan`/`inspect` on each fixture must
//! exit 1 or 2 (never a panic's 101) with an error naming the bound or the
//! violation, and leave no QEMU process, temporary file or guest RAM behind.
//!
//! Only the `check`-stage fixtures need a guest; they share one `schedbox run`
//! (one boot). Everything else is stopped while planning, before any boot.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ lives below the root").to_owned()
}

fn fixture(name: &str) -> PathBuf {
    let p = repo().join("target/scenarios/fixtures").join(format!("{name}.wasm"));
    assert!(p.is_file(), "{} is missing: run `cargo xtask build-scenarios`", p.display());
    p
}

fn wat(name: &str) -> PathBuf {
    repo().join("tests/fixtures/wat").join(format!("{name}.wat"))
}

/// What one `schedbox` invocation did.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn all(&self) -> String {
        format!("exit {:?}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }

    /// Asserts the exit code and that the output holds every `needle`.
    fn expect(&self, code: i32, needles: &[&str]) {
        assert_eq!(self.code, Some(code), "{}", self.all());
        let both = format!("{}{}", self.stdout, self.stderr);
        for n in needles {
            assert!(both.contains(n), "missing {n:?}:\n{}", self.all());
        }
    }
}

/// Runs `schedbox args…` with a private TMPDIR, then checks that it did not
/// panic, that no process still names that TMPDIR (QEMU's sockets live there)
/// and that the TMPDIR is empty again.
///
/// Invocations are serialised: the leak checks compare `/dev/shm` before and after,
/// which another invocation's guest booting meanwhile would disturb.
fn schedbox(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Ran {
    schedbox_in(None, args)
}

/// [`schedbox`] with the working directory `cwd` (default: this test's).
fn schedbox_in(cwd: Option<&Path>, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Ran {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let tmp = tempfile::tempdir().expect("a private TMPDIR");
    let ram_before = ram_dirs();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_schedbox"));
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    let out = cmd
        .args(args.iter().map(|a| a.as_ref()))
        .env("TMPDIR", tmp.path())
        .env_remove("RUST_LOG")
        .output()
        .expect("schedbox starts");
    let ran = Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_ne!(ran.code, Some(101), "schedbox panicked:\n{}", ran.all());
    assert!(matches!(ran.code, Some(0..=2)), "unexpected exit:\n{}", ran.all());
    assert!(!ran.stderr.contains("panicked at"), "{}", ran.all());
    let marker = tmp.path().to_string_lossy().into_owned();
    let holders = processes_naming(&marker);
    assert!(holders.is_empty(), "processes left behind: {holders:?}\n{}", ran.all());
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}\n{}", ran.all());
    // Guest RAM lives outside TMPDIR (in /dev/shm): a RAM directory that appeared
    // during the run and that no live process names is ours, left behind.
    let live: Vec<String> = processes_naming("schedbox-ram-").into_iter().map(|(_, c)| c).collect();
    let ram_after = ram_dirs();
    let leaked: Vec<&String> =
        ram_after.difference(&ram_before).filter(|d| !live.iter().any(|c| c.contains(d.as_str()))).collect();
    assert!(leaked.is_empty(), "guest RAM directories left behind: {leaked:?}\n{}", ran.all());
    ran
}

/// The QEMU backend's guest-RAM directories (`/dev/shm/schedbox-ram-*`).
fn ram_dirs() -> std::collections::BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().to_string_lossy().into_owned())
                .filter(|p| p.contains("/schedbox-ram-"))
                .collect()
        })
        .unwrap_or_default()
}

/// (pid, command line) of every process whose command line contains `needle`.
fn processes_naming(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// Asserts that no guest was booted (`run` names the guest it runs on).
fn no_boot(r: &Ran) {
    assert!(!r.stderr.contains(" guest\n") && !r.stderr.contains("running "), "a guest was booted:\n{}", r.all());
}

const SMALL_FUEL: &str = "200000000";

#[test]
fn run_stops_every_planning_stage_misbehaviour_before_booting() {
    let cases: Vec<(PathBuf, Vec<&str>, Vec<&str>)> = vec![
        (
            fixture("spin-forever"),
            vec!["--fuel", SMALL_FUEL],
            vec!["scenario \"spin-forever\"", "`run` stopped by the cpu bound", "raise it with --fuel"],
        ),
        (
            fixture("memory-bomb"),
            vec![],
            vec!["scenario \"memory-bomb\"", "stopped by the memory bound", "raise it with --wasm-memory"],
        ),
        (
            fixture("million-ops"),
            vec![],
            vec!["scenario \"million-ops\"", "the op-stream bound", "exceeded 100000 ops", "--max-ops"],
        ),
        (
            fixture("huge-string"),
            vec![],
            vec!["scenario \"huge-string\"", "the argument-size bound", "1048576 bytes", "pass shorter values"],
        ),
        (fixture("deep-recursion"), vec![], vec!["scenario \"deep-recursion\"", "the stack bound", "recursion"]),
        (
            wat("forbidden-import"),
            vec![],
            vec!["refused before instantiation", "wasi:keyvalue/store@0.2.0", "acme:evil/api"],
        ),
        (fixture("reads-host-file"), vec![], vec!["scenario \"reads-host-file\"", "could not read /etc/passwd"]),
    ];
    for (path, extra, needles) in cases {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"run", &path];
        args.extend(extra.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
        let r = schedbox(&args);
        r.expect(1, &needles);
        no_boot(&r);
        assert!(!r.stderr.contains("root:x:0:0"), "host file contents leaked:\n{}", r.all());
    }
}

#[test]
fn an_untrusted_kernel_write_is_refused_with_its_place_and_the_fix() {
    let path = fixture("kernel-write");
    let sha = hex::encode(schedbox::sandbox::digest(&std::fs::read(&path).unwrap()));
    let needles = [
        "scenario \"kernel-write\"",
        "refused by the policy (the default policy)",
        "step 1, op 1 (write-kernel-cold): kernel write to symbol:jiffies_64",
        &format!("add its sha256 \"{sha}\" to `sha256` in [trusted] of the policy, or pass --trusted"),
    ];
    for cmd in ["run", "plan"] {
        let r = schedbox(&[&cmd, &path]);
        r.expect(1, &needles);
        no_boot(&r);
    }
    // Trusted, the same component plans (a run would then write the kernel).
    schedbox(&[&"plan", &"--trusted", &path]).expect(0, &["write-kernel-cold"]);
}

#[test]
fn without_wasi_a_component_that_needs_it_is_refused_before_instantiation() {
    let r = schedbox(&[&"run", &"--no-wasi", &fixture("reads-host-file")]);
    r.expect(1, &["refused before instantiation", "WASI is not linked under this policy"]);
    no_boot(&r);
}

#[test]
fn a_policy_file_sets_bounds_trust_and_allow_lists() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture("kernel-write");
    let sha = hex::encode(schedbox::sandbox::digest(&std::fs::read(&path).unwrap()));
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    // Bounds on the planned stream, all reported at once.
    let strict = write("strict.toml", "[limits]\nmax-steps = 1\nmax-duration-ms = 150\n");
    let r = schedbox(&[&"plan", &"--policy", &strict, &path]);
    r.expect(
        1,
        &[
            "strict.toml",
            "the steps bound: 2 steps, at most 1 allowed",
            "the duration bound: the holds add up to 200 ms, at most 150 ms allowed",
            "step 1, op 1 (write-kernel-cold)",
        ],
    );
    // A flag overrides the file.
    schedbox(&[&"plan", &"--policy", &strict, &"--max-steps", &"2", &"--max-duration-ms", &"200", &"--trusted", &path])
        .expect(0, &[]);
    // Trusted by digest; or the target allowed for everyone.
    let trusted = write("trusted.toml", &format!("[trusted]\nsha256 = [\"{sha}\"]\n"));
    schedbox(&[&"plan", &"--policy", &trusted, &path]).expect(0, &["write-kernel-cold"]);
    let allowed = write("allowed.toml", "[kernel]\nwrites = [\"symbol:jiffies*\"]\n");
    schedbox(&[&"plan", &"--policy", &allowed, &path]).expect(0, &[]);
    // The sandbox's bounds come from the policy too.
    let tiny = write("tiny.toml", "[limits]\nfuel = 100000\n");
    schedbox(&[&"plan", &"--policy", &tiny, &fixture("thousand-ops")]).expect(1, &["stopped by the cpu bound"]);
    let no_wasi = write("no-wasi.toml", "[wasi]\nlink = false\n");
    schedbox(&[&"plan", &"--policy", &no_wasi, &path]).expect(1, &["WASI is not linked under this policy"]);
    // A scheduler outside the allow list, named by a replayed stream.
    let stream = repo().join("tests/golden/rust/sched-swap.json");
    let only_alt = write("sched.toml", "[schedulers]\nallow = [\"fixture-alt\"]\n");
    let r = schedbox(&[&"run", &"--policy", &only_alt, &stream]);
    r.expect(1, &["scenario \"sched-swap\"", "scheduler \"fixture\" is not in `allow` of [schedulers]"]);
    no_boot(&r);
    // A misspelt key is a usage error that names it.
    let typo = write("typo.toml", "[limits]\nfeul = 5\n");
    schedbox(&[&"plan", &"--policy", &typo, &path]).expect(2, &["typo.toml", "feul", "README"]);
}

#[test]
fn inspect_shows_what_a_component_asks_for_against_the_policy() {
    let path = fixture("kernel-write");
    let r = schedbox(&[&"inspect", &path]);
    r.expect(
        1,
        &[
            "policy the default policy — not trusted, WASI linked",
            "steps                    2 of 100000",
            "REFUSED kernel write symbol:jiffies_64 at step 1, op 1 (write-kernel-cold)",
            "verdict: NOT allowed to run",
        ],
    );
    let r = schedbox(&[&"inspect", &"--trusted", &"--json", &path]);
    r.expect(0, &[]);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).expect("inspect --json prints JSON");
    assert_eq!(json["allowed"], true, "{}", r.all());
    assert_eq!(json["policy"]["trusted"], "flag");
    assert_eq!(json["policy"]["requests"][0]["kind"], "kernel-write");
    assert_eq!(json["policy"]["requests"][0]["what"], "symbol:jiffies_64");
    assert_eq!(json["policy"]["violations"], serde_json::json!([]));
    let bounds = json["policy"]["bounds"].as_array().unwrap();
    let steps = bounds.iter().find(|b| b["name"] == "steps").expect("a steps bound");
    assert_eq!((&steps["uses"], &steps["limit"]), (&serde_json::json!(2), &serde_json::json!(100000)));
    // A component refused at load shows why, and no requests.
    let r = schedbox(&[&"inspect", &wat("forbidden-import")]);
    r.expect(1, &["REFUSED wasi:keyvalue/store@0.2.0", "NOT allowed to run"]);
}

/// The `check`-stage misbehaviour needs a guest: both fixtures share one run
/// (one boot, same topology). Each ends its scenario with an error verdict; a
/// check that traps or hits a bound is the scenario's failure: exit 1.
#[test]
fn check_stage_misbehaviour_ends_each_scenario_in_one_guest() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let r = schedbox(&[
        &"run",
        &"--fuel",
        &SMALL_FUEL,
        &fixture("spin-in-check"),
        &fixture("trap-in-check"),
        &"--report",
        &report,
    ]);
    r.expect(
        1,
        &["ERROR   spin-in-check", "ERROR   trap-in-check", "2 scenario(s): 0 passed, 0 failed, 0 skipped, 2 errors"],
    );
    assert_eq!(r.stderr.matches("running ").count(), 2, "{}", r.all());
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let by_name = |n: &str| {
        json["scenarios"].as_array().unwrap().iter().find(|s| s["name"] == n).unwrap_or_else(|| panic!("{n}")).clone()
    };
    let spin = by_name("spin-in-check");
    assert_eq!(spin["verdict"], "error");
    assert_eq!(spin["steps"][0]["status"], "passed", "the stream ran before check: {spin}");
    let m = spin["messages"][0].as_str().unwrap();
    assert!(m.contains("`check` stopped by the cpu bound") && m.contains("--fuel"), "{m}");
    let trap = by_name("trap-in-check");
    assert_eq!(trap["verdict"], "error");
    let m = trap["messages"][0].as_str().unwrap();
    assert!(m.contains("`check` trapped") && m.contains("check panics on purpose"), "{m}");
}

/// A component trusted by its signing key stays trusted when rebuilt and signed
/// again (its SHA-256 pin would not); unsigned, tampered, wrongly keyed and
/// copied signatures are refused, each saying why. Planning only: no boot.
#[test]
fn a_signing_key_trusts_rebuilds_and_refuses_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let original = fixture("kernel-write");
    let original_bytes = std::fs::read(&original).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    // A key: private file 0600 (never overwritten), public key printed and in FILE.pub.
    let key = d.join("author.key");
    let r = schedbox(&[&"key", &"generate", &key]);
    r.expect(0, &["ed25519:"]);
    let public = r.stdout.trim().to_owned();
    assert_eq!(public.len(), "ed25519:".len() + 64, "{}", r.all());
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(d.join("author.key.pub")).unwrap().trim(), public);
    schedbox(&[&"key", &"generate", &key]).expect(2, &["never overwritten"]);
    schedbox(&[&"key", &"public", &key]).expect(0, &[&public]);
    let policy = write("keys.toml", format!("[trusted]\nkeys = [\"{public}\"]\n").as_bytes());

    // Signed: trusted by the key, the kernel write plans.
    let signed = d.join("signed.wasm");
    schedbox(&[&"sign", &"--key", &key, &original, &"-o", &signed]).expect(0, &["signed", &public]);
    let signed_bytes = std::fs::read(&signed).unwrap();
    assert!(signed_bytes.starts_with(&original_bytes), "signing appends a section");
    schedbox(&[&"plan", &"--policy", &policy, &signed]).expect(0, &["write-kernel-cold"]);
    let r = schedbox(&[&"inspect", &"--policy", &policy, &signed]);
    r.expect(
        0,
        &[&format!("signature signed by {public} (verifies)"), &format!("trusted (key {public})"), "verdict: allowed"],
    );
    let r = schedbox(&[&"inspect", &"--policy", &policy, &"--json", &signed]);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).expect("inspect --json prints JSON");
    assert_eq!(json["signature"]["status"], "valid", "{}", r.all());
    assert_eq!(json["policy"]["trusted"]["key"], public.as_str(), "{}", r.all());

    // Unsigned: the same bytes without the section are refused, and told to sign.
    let r = schedbox(&[&"plan", &"--policy", &policy, &original]);
    r.expect(1, &["kernel write to symbol:jiffies_64", "it is not signed", "schedbox sign --key"]);
    schedbox(&[&"inspect", &"--policy", &policy, &original])
        .expect(1, &["signature unsigned", "not trusted", "NOT allowed to run"]);

    // A rebuild (other bytes: another SHA-256) signed with the same key stays
    // trusted by the key, while a pin of the first build's SHA-256 no longer matches.
    let rebuilt_unsigned =
        write("rebuilt-unsigned.wasm", &[&original_bytes[..], &[0, 7, 6, b'b', b'u', b'i', b'l', b'd', 2]].concat());
    let rebuilt = d.join("rebuilt.wasm");
    schedbox(&[&"sign", &"--key", &key, &rebuilt_unsigned, &"-o", &rebuilt]).expect(0, &[]);
    assert_ne!(std::fs::read(&rebuilt).unwrap(), signed_bytes);
    schedbox(&[&"plan", &"--policy", &policy, &rebuilt]).expect(0, &["write-kernel-cold"]);
    let pin = hex::encode(schedbox::sandbox::digest(&signed_bytes));
    let pinned = write("pin.toml", format!("[trusted]\nsha256 = [\"{pin}\"]\n").as_bytes());
    schedbox(&[&"plan", &"--policy", &pinned, &signed]).expect(0, &[]);
    schedbox(&[&"plan", &"--policy", &pinned, &rebuilt]).expect(1, &["kernel write to symbol:jiffies_64"]);

    // Tampered: one byte of the signed component changed (its summary text).
    let at = signed_bytes.windows(15).position(|w| w == b"sandbox fixture").expect("the summary is in the data");
    let mut tampered_bytes = signed_bytes.clone();
    tampered_bytes[at] = b'S';
    let tampered = write("tampered.wasm", &tampered_bytes);
    let why = format!("INVALID signature by {public}: it does not verify over these bytes");
    schedbox(&[&"plan", &"--policy", &policy, &tampered]).expect(1, &["kernel write to symbol:jiffies_64", &why]);
    schedbox(&[&"inspect", &"--policy", &policy, &tampered]).expect(1, &[&why, "not trusted"]);

    // A signature copied from another component (the signed original) onto the rebuild.
    let section = &signed_bytes[original_bytes.len()..];
    let copied = write("copied.wasm", &[&std::fs::read(&rebuilt_unsigned).unwrap()[..], section].concat());
    schedbox(&[&"plan", &"--policy", &policy, &copied]).expect(1, &[&why]);

    // Signed by a key the policy does not list.
    let other_key = d.join("other.key");
    let other = schedbox(&[&"key", &"generate", &other_key]).stdout.trim().to_owned();
    let other_signed = d.join("other.wasm");
    schedbox(&[&"sign", &"--key", &other_key, &original, &"-o", &other_signed]).expect(0, &[]);
    schedbox(&[&"plan", &"--policy", &policy, &other_signed])
        .expect(1, &[&format!("it is signed by {other}, which is not in `keys` of [trusted]")]);

    // Signing in place replaces the signature: the other key's copy, re-signed, is trusted.
    schedbox(&[&"sign", &"--key", &key, &other_signed]).expect(0, &[]);
    assert_eq!(std::fs::read(&other_signed).unwrap(), signed_bytes);
    schedbox(&[&"plan", &"--policy", &policy, &other_signed]).expect(0, &[]);
}

/// A builder's signature over a source digest trusts a component only for a
/// reviewed source digest; a bare digest in a policy is refused.
#[test]
fn a_builder_signed_source_digest_trusts_only_reviewed_sources() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let original = fixture("kernel-write");
    let sources = "tests/fixtures/guests/kernel-write";
    let r = schedbox_in(Some(&repo()), &[&"source-digest", &"--manifest", &sources]);
    r.expect(0, &["  tests/fixtures/guests/kernel-write/src/lib.rs\n", "sha256:"]);
    let digest = r.stdout.lines().last().unwrap().to_owned();
    let (lib_digest, _) = schedbox::signing::source_digest(&repo(), &[PathBuf::from(sources)]).unwrap();
    assert_eq!(digest, schedbox::signing::source_text(&lib_digest));

    let key = d.join("builder.key");
    let builder = schedbox(&[&"key", &"generate", &key]).stdout.trim().to_owned();
    let built = d.join("built.wasm");
    // The builder signs from the project root, naming the sources the same way.
    schedbox_in(Some(&repo()), &[&"sign", &"--key", &key, &"--source", &sources, &original, &"-o", &built])
        .expect(0, &[&format!("for source {digest}")]);
    let write = |name: &str, text: String| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let reviewed = write("reviewed.toml", format!("[trusted]\nbuilders = [\"{builder}\"]\nsources = [\"{digest}\"]\n"));
    schedbox(&[&"plan", &"--policy", &reviewed, &built]).expect(0, &["write-kernel-cold"]);
    schedbox(&[&"inspect", &"--policy", &reviewed, &built])
        .expect(0, &[&format!("trusted (source {digest}, built by {builder})")]);
    // Another reviewed tree: the builder's word covers different sources.
    let elsewhere = format!("sha256:{}", "0".repeat(64));
    let other = write("other.toml", format!("[trusted]\nbuilders = [\"{builder}\"]\nsources = [\"{elsewhere}\"]\n"));
    schedbox(&[&"plan", &"--policy", &other, &built])
        .expect(1, &[&format!("attests source {digest}, which is not in `sources` of [trusted]")]);
    // A builder key is not a `keys` entry: without a source it trusts nothing.
    let plain = d.join("plain.wasm");
    schedbox(&[&"sign", &"--key", &key, &original, &"-o", &plain]).expect(0, &[]);
    schedbox(&[&"plan", &"--policy", &reviewed, &plain]).expect(1, &["attests no source digest"]);
    // A source digest alone proves nothing: a policy listing one without builders is refused.
    let bare = write("bare.toml", format!("[trusted]\nsources = [\"{digest}\"]\n"));
    schedbox(&[&"plan", &"--policy", &bare, &built]).expect(2, &["sources needs `builders`"]);
}
