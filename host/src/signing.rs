//! Signed components: trust that survives rebuilds (design and limits in `docs/TRUST.md`).
//!
//! A signature lives in one top-level custom section named [`SECTION`], so a
//! signed component is still a valid component that any runtime loads (custom
//! sections change nothing it does). The section's payload (format version 1):
//!
//! | bytes | what |
//! |-------|------|
//! | 1     | format version, `1` |
//! | 32    | the signer's ed25519 public key |
//! | 1     | `0`: no source digest; `1`: a source digest follows |
//! | 0/32  | the SHA-256 source digest ([`source_digest`]) the signer attests |
//! | 64    | the ed25519 signature |
//!
//! The signature is a plain (RFC 8032) ed25519 signature over the message
//! `"schedbox-component-signature-v1\0"` ‖ SHA-256(*covered bytes*) ‖ the flag
//! byte ‖ the source digest if present, where the covered bytes are the
//! component's bytes with that one custom section (its id byte, size and
//! contents) cut out; every other byte, including every other custom section,
//! is covered. A component with two such sections is invalid. Nested modules'
//! custom sections are inside a top-level section, so they are covered too.
//!
//! A key is written `ed25519:` and 64 lower-case hex digits (the public key);
//! a private key file holds one line, `ed25519-secret:` and 64 hex digits (the seed).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature as EdSignature, Signer, SigningKey, VerifyingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The name of the custom section that carries the signature.
pub const SECTION: &str = "schedbox:signature";
const FORMAT: u8 = 1;
const DOMAIN: &[u8] = b"schedbox-component-signature-v1\0";
const SECRET_PREFIX: &str = "ed25519-secret:";
const KEY_PREFIX: &str = "ed25519:";
const SOURCE_PREFIX: &str = "sha256:";

/// What a component's embedded signature says, checked against its own bytes
/// (not yet against a policy: that is [`crate::policy::Policy::trusted_by`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Signature {
    /// No `schedbox:signature` section.
    Unsigned,
    /// The signature verifies under `key` over these bytes (and `source`, if any).
    Valid { key: String, source: Option<String> },
    /// A section that does not verify or cannot be read; `key` when one could be read.
    Invalid { key: Option<String>, why: String },
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsigned => f.write_str("unsigned (no schedbox:signature section)"),
            Self::Valid { key, source: None } => write!(f, "signed by {key} (verifies)"),
            Self::Valid { key, source: Some(s) } => write!(f, "signed by {key} for source {s} (verifies)"),
            Self::Invalid { key: Some(key), why } => write!(f, "INVALID signature by {key}: {why}"),
            Self::Invalid { key: None, why } => write!(f, "INVALID signature: {why}"),
        }
    }
}

/// A public key in its written form, `ed25519:<64 hex>`.
pub fn key_text(key: &VerifyingKey) -> String {
    format!("{KEY_PREFIX}{}", hex::encode(key.as_bytes()))
}

/// A source digest in its written form, `sha256:<64 hex>`.
pub fn source_text(digest: &[u8; 32]) -> String {
    format!("{SOURCE_PREFIX}{}", hex::encode(digest))
}

/// Parses `ed25519:<64 hex>` (case-insensitive hex) into a key that can verify.
pub fn parse_key(s: &str) -> Result<VerifyingKey, String> {
    let bytes = s.trim().strip_prefix(KEY_PREFIX).and_then(hex32).ok_or_else(|| {
        format!("{s:?} is not a public key: write `ed25519:` and 64 hex digits (`schedbox key generate` prints one)")
    })?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| format!("{s:?} is not a valid ed25519 public key"))
}

/// Parses `sha256:<64 hex>` (what `schedbox source-digest` prints).
pub fn parse_source(s: &str) -> Result<[u8; 32], String> {
    s.trim().strip_prefix(SOURCE_PREFIX).and_then(hex32).ok_or_else(|| {
        format!("{s:?} is not a source digest: write `sha256:` and 64 hex digits (`schedbox source-digest` prints one)")
    })
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0; 32];
    (s.len() == 64).then_some(())?;
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// A fresh private key from the operating system's random source.
pub fn generate_key() -> std::io::Result<SigningKey> {
    use std::io::Read;
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The text of a private key file.
pub fn secret_text(key: &SigningKey) -> String {
    format!("{SECRET_PREFIX}{}\n", hex::encode(key.to_bytes()))
}

/// Reads a private key file written by [`secret_text`].
pub fn read_secret(path: &Path) -> Result<SigningKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the key {}: {e}", path.display()))?;
    let seed = text.trim().strip_prefix(SECRET_PREFIX).and_then(hex32).ok_or_else(|| {
        format!(
            "{} is not a schedbox private key (one line: `{SECRET_PREFIX}` and 64 hex digits; `schedbox key generate` writes one)",
            path.display()
        )
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// One top-level section: its id, its whole range (id byte to end), its name if custom.
type Section<'a> = (u8, Range<usize>, Option<&'a str>);

/// A component's top-level sections, in order.
fn sections(bytes: &[u8]) -> Result<Vec<Section<'_>>, String> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err("not a WebAssembly binary (no `\\0asm` header)".into());
    }
    let mut out = Vec::new();
    let mut at = 8;
    while at < bytes.len() {
        let start = at;
        let id = bytes[at];
        at += 1;
        let size = leb_u32(bytes, &mut at).ok_or_else(|| format!("a malformed section size at byte {start}"))? as usize;
        let end = at.checked_add(size).filter(|&e| e <= bytes.len()).ok_or_else(|| {
            format!("the section at byte {start} runs past the end of the file ({size} bytes announced)")
        })?;
        let name = if id == 0 {
            let mut p = at;
            let len = leb_u32(bytes, &mut p)
                .ok_or_else(|| format!("a malformed custom-section name at byte {start}"))?
                as usize;
            let name = p
                .checked_add(len)
                .filter(|&e| e <= end)
                .and_then(|e| std::str::from_utf8(&bytes[p..e]).ok())
                .ok_or_else(|| format!("a malformed custom-section name at byte {start}"))?;
            Some(name)
        } else {
            None
        };
        out.push((id, start..end, name));
        at = end;
    }
    Ok(out)
}

fn leb_u32(bytes: &[u8], at: &mut usize) -> Option<u32> {
    let mut v: u64 = 0;
    for shift in (0..35).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return u32::try_from(v).ok();
        }
    }
    None
}

fn push_leb(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// The signature section's whole range and its payload.
type Found<'a> = (Range<usize>, &'a [u8]);

/// The signature section, if there is exactly one.
fn find(bytes: &[u8]) -> Result<Option<Found<'_>>, String> {
    let found: Vec<Range<usize>> =
        sections(bytes)?.into_iter().filter(|(_, _, n)| *n == Some(SECTION)).map(|(_, r, _)| r).collect();
    match found.as_slice() {
        [] => Ok(None),
        [r] => {
            // Skip the id, the size and the name to reach the payload.
            let mut p = r.start + 1;
            leb_u32(bytes, &mut p);
            let len = leb_u32(bytes, &mut p).unwrap_or(0) as usize;
            Ok(Some((r.clone(), &bytes[p + len..r.end])))
        }
        _ => Err(format!("{} `{SECTION}` sections (a signed component has one)", found.len())),
    }
}

/// SHA-256 of `bytes` without `cut`.
fn covered_digest(bytes: &[u8], cut: Range<usize>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(&bytes[..cut.start]);
    h.update(&bytes[cut.end..]);
    h.finalize().into()
}

fn message(covered: &[u8; 32], source: Option<&[u8; 32]>) -> Vec<u8> {
    let mut m = DOMAIN.to_vec();
    m.extend_from_slice(covered);
    match source {
        Some(s) => {
            m.push(1);
            m.extend_from_slice(s);
        }
        None => m.push(0),
    }
    m
}

/// Checks the embedded signature against the component's own bytes. Cheap for
/// an unsigned component (a walk over the top-level section headers).
pub fn check(bytes: &[u8]) -> Signature {
    if !bytes.starts_with(b"\0asm") {
        // WAT text (`.wat` files) has no custom sections to carry one.
        return Signature::Unsigned;
    }
    let (range, payload) = match find(bytes) {
        Ok(Some(found)) => found,
        Ok(None) => return Signature::Unsigned,
        Err(why) => return Signature::Invalid { key: None, why },
    };
    let invalid = |key: Option<String>, why: &str| Signature::Invalid { key, why: why.to_owned() };
    let Some((&FORMAT, rest)) = payload.split_first() else {
        return invalid(None, "an unknown signature format (this schedbox reads format 1)");
    };
    let Some((key, rest)) = rest.split_first_chunk::<32>() else {
        return invalid(None, "the section is truncated");
    };
    let Ok(key) = VerifyingKey::from_bytes(key) else {
        return invalid(None, "the embedded public key is not a valid ed25519 key");
    };
    let text = key_text(&key);
    let shown = Some(text.clone());
    let (source, rest) = match rest.split_first() {
        Some((0, rest)) => (None, rest),
        Some((1, rest)) => match rest.split_first_chunk::<32>() {
            Some((s, rest)) => (Some(*s), rest),
            None => return invalid(shown, "the section is truncated"),
        },
        _ => return invalid(shown, "the section is truncated or has an unknown flag"),
    };
    let Ok(sig) = <[u8; 64]>::try_from(rest) else {
        return invalid(shown, "the signature is not 64 bytes");
    };
    let covered = covered_digest(bytes, range);
    match key.verify_strict(&message(&covered, source.as_ref()), &EdSignature::from_bytes(&sig)) {
        Ok(()) => Signature::Valid { key: text, source: source.as_ref().map(source_text) },
        Err(_) => invalid(
            shown,
            "it does not verify over these bytes (they changed after signing, or the section was copied from another component); sign the component again",
        ),
    }
}

/// Signs a component: removes any signature section and appends a new one.
/// `source`: a source digest the signer attests (see [`source_digest`]).
pub fn sign(bytes: &[u8], key: &SigningKey, source: Option<&[u8; 32]>) -> Result<Vec<u8>, String> {
    let layer = bytes.get(4..8);
    if layer != Some(&[0x0d, 0x00, 0x01, 0x00][..]) {
        sections(bytes)?;
        return Err("not a WebAssembly component (a core module or another binary format)".into());
    }
    let mut out = match find(bytes)? {
        Some((r, _)) => [&bytes[..r.start], &bytes[r.end..]].concat(),
        None => {
            sections(bytes)?;
            bytes.to_vec()
        }
    };
    let covered: [u8; 32] = Sha256::digest(&out).into();
    let sig = key.sign(&message(&covered, source));
    let mut payload = vec![FORMAT];
    payload.extend_from_slice(key.verifying_key().as_bytes());
    match source {
        Some(s) => {
            payload.push(1);
            payload.extend_from_slice(s);
        }
        None => payload.push(0),
    }
    payload.extend_from_slice(&sig.to_bytes());
    let mut content = Vec::new();
    push_leb(&mut content, SECTION.len() as u32);
    content.extend_from_slice(SECTION.as_bytes());
    content.extend_from_slice(&payload);
    out.push(0);
    push_leb(&mut out, content.len() as u32);
    out.extend_from_slice(&content);
    Ok(out)
}

/// The digest of a source tree (`schedbox source-digest`), and its manifest.
///
/// `paths` are files or directories, relative to `root` and written the same way
/// by whoever reviews and whoever builds (absolute paths and `..` are refused).
/// Directories are walked; entries whose name starts with `.` and directories
/// named `target`, `node_modules` or `__pycache__` (build outputs) are skipped;
/// symbolic links are refused. The manifest has one line per file,
/// `<sha256 hex>  <path>` (the `sha256sum` format, `/`-separated), sorted by
/// path; the digest is the SHA-256 of the manifest.
pub fn source_digest(root: &Path, paths: &[PathBuf]) -> Result<([u8; 32], String), String> {
    let mut files = Vec::new();
    for p in paths {
        let shown = p.display().to_string();
        if p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(format!(
                "{shown}: give source paths relative to the project root (the same for reviewer and builder), without `..`"
            ));
        }
        let rel: Vec<String> = p
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        if rel.is_empty() {
            return Err(format!("{shown}: name a directory or file below the project root, not the root itself"));
        }
        walk(&root.join(p), &rel.join("/"), &mut files)?;
    }
    files.sort();
    files.dedup();
    let manifest: String = files.iter().map(|(path, sha)| format!("{sha}  {path}\n")).collect();
    Ok((Sha256::digest(manifest.as_bytes()).into(), manifest))
}

fn walk(path: &Path, rel: &str, out: &mut Vec<(String, String)>) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{rel}: {e}"))?;
    if meta.file_type().is_symlink() {
        return Err(format!("{rel} is a symbolic link: a source digest covers plain files only"));
    }
    if meta.is_file() {
        let bytes = std::fs::read(path).map_err(|e| format!("{rel}: {e}"))?;
        out.push((rel.to_owned(), hex::encode(Sha256::digest(&bytes))));
        return Ok(());
    }
    if !meta.is_dir() {
        return Err(format!("{rel} is neither a file nor a directory"));
    }
    let entries = std::fs::read_dir(path).map_err(|e| format!("{rel}: {e}"))?;
    for e in entries {
        let e = e.map_err(|e| format!("{rel}: {e}"))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if name.starts_with('.') || (is_dir && matches!(name.as_str(), "target" | "node_modules" | "__pycache__")) {
            continue;
        }
        walk(&e.path(), &format!("{rel}/{name}"), out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
