//! [`Initramfs`]: the guest's root filesystem as a list of entries, written as one newc
//! archive. Entries are kept sorted by path, so every parent directory is written before
//! its children (the kernel's unpacker creates no missing parents) and the same inputs
//! always give the same bytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::newc::{Header, NewcWriter, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG};
use super::InitramfsError;

/// Where a file's bytes come from: memory, or a host file read when the archive is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileSource {
    Bytes(Vec<u8>),
    Host(PathBuf),
}

impl From<Vec<u8>> for FileSource {
    fn from(b: Vec<u8>) -> Self {
        Self::Bytes(b)
    }
}

impl From<&[u8]> for FileSource {
    fn from(b: &[u8]) -> Self {
        Self::Bytes(b.to_vec())
    }
}

impl From<PathBuf> for FileSource {
    fn from(p: PathBuf) -> Self {
        Self::Host(p)
    }
}

impl From<&std::path::Path> for FileSource {
    fn from(p: &std::path::Path) -> Self {
        Self::Host(p.to_path_buf())
    }
}

#[derive(Clone, Debug)]
enum Node {
    Dir,
    File(FileSource),
    CharDev { major: u32, minor: u32 },
    Symlink(String),
}

impl Node {
    fn kind(&self) -> &'static str {
        match self {
            Node::Dir => "directory",
            Node::File(_) => "file",
            Node::CharDev { .. } => "character device",
            Node::Symlink(_) => "symlink",
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    node: Node,
    /// Permission bits only; the type bits come from `node`.
    mode: u32,
}

/// The guest's initramfs. [`Initramfs::new`] starts from what every schedbox guest
/// needs: `/init` (the agent), `/dev` with `console` and `null` (the kernel opens
/// `/dev/console` for init before anything is mounted), and the mount points `/proc`,
/// `/sys`, `/tmp`. Missing parent directories are added (mode 0755) as entries are.
#[derive(Clone, Debug)]
pub struct Initramfs {
    /// Keyed by the path without its leading `/`, as the archive names it.
    entries: BTreeMap<String, Entry>,
}

impl Initramfs {
    /// The base image with `agent` as `/init` (mode 0755).
    pub fn new(agent: impl Into<FileSource>) -> Self {
        let mut me = Self { entries: BTreeMap::new() };
        let base = |me: &mut Self| -> Result<(), InitramfsError> {
            me.dir("/dev", 0o755)?
                .char_dev("/dev/console", 5, 1, 0o600)?
                .char_dev("/dev/null", 1, 3, 0o666)?
                .dir("/proc", 0o555)?
                .dir("/sys", 0o555)?
                .dir("/tmp", 0o1777)?
                .file("/init", agent, 0o755)?;
            Ok(())
        };
        base(&mut me).expect("the base entries are valid and distinct");
        me
    }

    /// A directory; adding an existing directory again only changes its mode.
    pub fn dir(&mut self, path: &str, mode: u32) -> Result<&mut Self, InitramfsError> {
        self.add(path, Node::Dir, mode)
    }

    /// A regular file.
    pub fn file(&mut self, path: &str, source: impl Into<FileSource>, mode: u32) -> Result<&mut Self, InitramfsError> {
        self.add(path, Node::File(source.into()), mode)
    }

    /// A character device node.
    pub fn char_dev(&mut self, path: &str, major: u32, minor: u32, mode: u32) -> Result<&mut Self, InitramfsError> {
        self.add(path, Node::CharDev { major, minor }, mode)
    }

    /// A symbolic link to `target` (stored verbatim; relative targets resolve in the guest).
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<&mut Self, InitramfsError> {
        if target.is_empty() || target.contains('\0') {
            return Err(InitramfsError::BadPath {
                path: target.to_owned(),
                why: "a symlink target must be non-empty, without NUL",
            });
        }
        self.add(path, Node::Symlink(target.to_owned()), 0o777)
    }

    /// Every path in the image, in archive order.
    pub fn paths(&self) -> impl Iterator<Item = String> + '_ {
        self.entries.keys().map(|k| format!("/{k}"))
    }

    fn add(&mut self, path: &str, node: Node, mode: u32) -> Result<&mut Self, InitramfsError> {
        let key = normalize(path)?;
        if mode > 0o7777 {
            return Err(InitramfsError::BadMode { path: path.to_owned(), mode });
        }
        // Check everything before changing anything: a refused entry leaves no parents behind.
        let conflict = |path: &str, e: &Entry, adding| InitramfsError::Conflict {
            path: format!("/{path}"),
            existing: e.node.kind(),
            adding,
        };
        let mut missing = Vec::new();
        for (slash, _) in key.match_indices('/') {
            let parent = &key[..slash];
            match self.entries.get(parent) {
                Some(Entry { node: Node::Dir, .. }) => {}
                Some(e) => return Err(conflict(parent, e, "directory")),
                None => missing.push(parent.to_owned()),
            }
        }
        match self.entries.get(&key) {
            Some(Entry { node: Node::Dir, .. }) if matches!(node, Node::Dir) => {}
            Some(e) => return Err(conflict(&key, e, node.kind())),
            None => {}
        }
        for parent in missing {
            self.entries.insert(parent, Entry { node: Node::Dir, mode: 0o755 });
        }
        self.entries.insert(key, Entry { node, mode });
        Ok(self)
    }

    /// Writes the newc archive to `out`; returns its length in bytes.
    pub fn write_to<W: Write>(&self, out: W) -> Result<u64, InitramfsError> {
        let mut w = NewcWriter::new(out);
        for (ino, (name, e)) in (1u32..).zip(&self.entries) {
            let mut h = Header { ino, mode: e.mode, nlink: 1, ..Header::default() };
            match &e.node {
                Node::Dir => {
                    h.mode |= S_IFDIR;
                    h.nlink = 2;
                    w.header(name, &h)?;
                }
                Node::CharDev { major, minor } => {
                    (h.mode, h.rdev_major, h.rdev_minor) = (h.mode | S_IFCHR, *major, *minor);
                    w.header(name, &h)?;
                }
                Node::Symlink(target) => {
                    (h.mode, h.filesize) = (h.mode | S_IFLNK, target.len() as u32);
                    w.header(name, &h)?;
                    w.data(target.as_bytes())?;
                    w.pad()?;
                }
                Node::File(FileSource::Bytes(bytes)) => {
                    (h.mode, h.filesize) = (h.mode | S_IFREG, file_size(name, bytes.len() as u64)?);
                    w.header(name, &h)?;
                    w.data(bytes)?;
                    w.pad()?;
                }
                Node::File(FileSource::Host(host)) => {
                    let read_err =
                        |source| InitramfsError::Read { host: host.clone(), guest: format!("/{name}"), source };
                    let mut f = File::open(host).map_err(read_err)?;
                    let len = f.metadata().map_err(read_err)?.len();
                    (h.mode, h.filesize) = (h.mode | S_IFREG, file_size(name, len)?);
                    w.header(name, &h)?;
                    copy_exact(&mut f, &mut w, len).map_err(read_err)?;
                    w.pad()?;
                }
            }
        }
        Ok(w.finish()?.1)
    }

    /// SHA-256 (hex) of the archive this image writes: it covers every path, mode, device
    /// number and content byte, so equal digests mean equal archives.
    pub fn digest(&self) -> Result<String, InitramfsError> {
        let mut h = HashWriter(Sha256::new());
        self.write_to(&mut h)?;
        Ok(hex::encode(h.0.finalize()))
    }
}

/// `/a/b` → `a/b`; refuses relative paths, `.`/`..`, empty components and NUL.
fn normalize(path: &str) -> Result<String, InitramfsError> {
    let bad = |why| Err(InitramfsError::BadPath { path: path.to_owned(), why });
    let Some(rel) = path.strip_prefix('/') else { return bad("must be absolute") };
    if rel.is_empty() {
        return bad("the root itself is implicit");
    }
    if rel.contains('\0') {
        return bad("contains NUL");
    }
    if rel.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return bad("empty, `.` or `..` components");
    }
    Ok(rel.to_owned())
}

fn file_size(name: &str, len: u64) -> Result<u32, InitramfsError> {
    u32::try_from(len).map_err(|_| InitramfsError::TooLarge { path: format!("/{name}"), size: len })
}

/// Copies exactly `len` bytes; a file that shrank since its size was read is an error.
fn copy_exact<W: Write>(from: &mut File, to: &mut NewcWriter<W>, len: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 256 << 10];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = from.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while being archived"));
        }
        to.data(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

pub(crate) struct HashWriter(pub Sha256);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
