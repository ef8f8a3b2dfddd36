//! Finding the system's Debian mirror in its apt sources (deb822 `.sources` files
//! and one-line `sources.list` files), to point a private apt state at `sid`.
//! The system files are only read.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// A Debian archive the system already uses, and the key it is checked with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebianSource {
    pub uri: String,
    /// `Signed-By` as the system wrote it: a keyring path, or an inline key block.
    pub signed_by: Option<String>,
    /// The file it came from, for messages.
    pub file: PathBuf,
}

impl DebianSource {
    /// A deb822 stanza for `suite` (component `main`) on this mirror.
    pub fn to_deb822(&self, suite: &str) -> String {
        let mut s = format!("Types: deb\nURIs: {}\nSuites: {suite}\nComponents: main\n", self.uri);
        match self.signed_by.as_deref() {
            Some(key) if key.contains('\n') => {
                // An inline key block: deb822 continuation lines, an empty line as " ."
                s.push_str("Signed-By:\n");
                for line in key.lines() {
                    s.push_str(if line.trim().is_empty() { " ." } else { " " });
                    s.push_str(line.trim());
                    s.push('\n');
                }
            }
            Some(path) => s.push_str(&format!("Signed-By: {path}\n")),
            None => {}
        }
        s
    }
}

/// The first Debian archive in `etc_apt`'s sources, in apt's own reading order:
/// `sources.list`, then `sources.list.d/*.list` and `*.sources` by name.
pub fn find_debian_source(etc_apt: &Path) -> Result<DebianSource> {
    let mut files = vec![etc_apt.join("sources.list")];
    if let Ok(dir) = fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut parts: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("list" | "sources")))
            .collect();
        parts.sort();
        files.extend(parts);
    }
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else { continue };
        let found =
            if file.extension().is_some_and(|e| e == "sources") { parse_deb822(&text) } else { parse_one_line(&text) };
        if let Some((uri, signed_by)) = found.into_iter().next() {
            return Ok(DebianSource { uri, signed_by, file: file.clone() });
        }
    }
    bail!(
        "no Debian archive found in {}/sources.list or sources.list.d/ (looked at {} files); \
         add your Debian mirror to apt's sources, or fetch a kernel by hand and point schedbox at its bzImage",
        etc_apt.display(),
        files.len()
    )
}

const CODENAMES: &[&str] =
    &["sid", "unstable", "testing", "stable", "bullseye", "bookworm", "trixie", "forky", "duke", "experimental"];

/// Is this entry a Debian main archive? Its suite must be a Debian codename (Ubuntu's
/// and vendors' suites are not), it must carry `main`, and it must not be the
/// security, ports or snapshot archive (none of them has an up-to-date sid).
fn is_debian_archive(uri: &str, suites: &[&str], components: &[&str]) -> bool {
    if uri.contains("debian-security") || uri.contains("debian-ports") || uri.contains("/archive/debian/") {
        return false;
    }
    let debian_suite = suites
        .iter()
        .any(|s| !s.ends_with("-security") && CODENAMES.contains(&s.split(['-', '/']).next().unwrap_or_default()));
    debian_suite && components.contains(&"main")
}

/// deb822 stanzas → Debian (uri, signed-by) pairs, in file order.
fn parse_deb822(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n").map(str::trim).filter(|s| !s.is_empty()) {
        let fields = fields(stanza);
        let get = |k: &str| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str());
        if get("Enabled").is_some_and(|v| v.trim().eq_ignore_ascii_case("no")) {
            continue;
        }
        if !get("Types").unwrap_or_default().split_whitespace().any(|t| t == "deb") {
            continue;
        }
        let suites: Vec<&str> = get("Suites").unwrap_or_default().split_whitespace().collect();
        let components: Vec<&str> = get("Components").unwrap_or_default().split_whitespace().collect();
        for uri in get("URIs").unwrap_or_default().split_whitespace() {
            if is_debian_archive(uri, &suites, &components) {
                out.push((uri.to_owned(), get("Signed-By").map(|s| s.trim().to_owned())));
            }
        }
    }
    out
}

/// `Name: value` fields of one stanza; continuation lines (leading space) are joined
/// with `\n`; `#` comment lines are dropped.
fn fields(stanza: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in stanza.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                let cont = line.trim();
                v.push('\n');
                v.push_str(if cont == "." { "" } else { cont });
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    out
}

/// One-line `deb [opts] uri suite components...` entries → Debian (uri, signed-by).
fn parse_one_line(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let Some(rest) = line.strip_prefix("deb ").map(str::trim_start) else { continue };
        let (opts, rest) = match rest.strip_prefix('[') {
            Some(r) => match r.split_once(']') {
                Some((o, r)) => (o, r.trim_start()),
                None => continue,
            },
            None => ("", rest),
        };
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else { continue };
        let components: Vec<&str> = words.collect();
        if !is_debian_archive(uri, &[suite], &components) {
            continue;
        }
        let signed_by = opts
            .split_whitespace()
            .find_map(|o| o.strip_prefix("signed-by=").or_else(|| o.strip_prefix("Signed-By=")))
            .map(str::to_owned);
        out.push((uri.to_owned(), signed_by));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "\
Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
";

    #[test]
    fn deb822_takes_the_main_archive_not_security() {
        let got = parse_deb822(DEB822);
        assert_eq!(
            got,
            vec![(
                "http://mirror.example/debian".to_owned(),
                Some("/usr/share/keyrings/debian-archive-keyring.gpg".to_owned())
            )]
        );
    }

    #[test]
    fn deb822_skips_disabled_and_deb_src_and_third_parties() {
        let text = "Types: deb\nURIs: http://a.example/debian\nSuites: sid\nComponents: main\nEnabled: no\n\n\
                    Types: deb-src\nURIs: http://b.example/debian\nSuites: sid\nComponents: main\n\n\
                    Types: deb\nURIs: https://vendor.example/apt\nSuites: nodistro\nComponents: main\n\n\
                    Types: deb\nURIs: https://vendor.example/linux/debian\nSuites: bookworm\nComponents: stable\n\n\
                    Types: deb\nURIs: http://c.example/debian/\nSuites: trixie\nComponents: main contrib\n";
        assert_eq!(parse_deb822(text)[0].0, "http://c.example/debian/");
        assert_eq!(parse_deb822(text).len(), 1);
    }

    #[test]
    fn deb822_inline_key_round_trips() {
        let text = "Types: deb\nURIs: http://m.example/debian\nSuites: sid\nComponents: main\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n -----END PGP PUBLIC KEY BLOCK-----\n";
        let (uri, key) = parse_deb822(text).remove(0);
        let key = key.unwrap();
        assert!(key.starts_with("-----BEGIN"), "{key:?}");
        let src = DebianSource { uri, signed_by: Some(key), file: PathBuf::new() };
        let stanza = src.to_deb822("sid");
        assert!(stanza.contains("Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n -----END"), "{stanza}");
        assert!(stanza.contains("Suites: sid\n"));
    }

    #[test]
    fn one_line_with_options_and_comments() {
        let text = "# deb http://old.example/debian buster main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main contrib\n\
                    deb http://security.example/debian-security bookworm-security main\n";
        assert_eq!(parse_one_line(text), vec![("http://m.example/debian".to_owned(), Some("/k.gpg".to_owned()))]);
    }

    #[test]
    fn finds_in_apt_reading_order_and_ignores_disabled_files() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("sources.list.d");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("a.list.disabled"), "deb http://x.example/debian sid main\n").unwrap();
        fs::write(d.join("z.sources"), DEB822).unwrap();
        fs::write(d.join("b.list"), "deb http://b.example/debian bookworm main\n").unwrap();
        let src = find_debian_source(tmp.path()).unwrap();
        assert_eq!(src.uri, "http://b.example/debian");
        assert!(src.file.ends_with("b.list"));
        fs::remove_file(d.join("b.list")).unwrap();
        assert_eq!(find_debian_source(tmp.path()).unwrap().uri, "http://mirror.example/debian");
        fs::remove_file(d.join("z.sources")).unwrap();
        let err = find_debian_source(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("no Debian archive"), "{err}");
    }
}
