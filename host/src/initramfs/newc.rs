//! The newc (`070701`, SVR4 "new ASCII") cpio format the kernel unpacks into its rootfs:
//! per entry a 110-byte header of 13 eight-digit hex fields, the NUL-terminated name
//! padded to 4 bytes, the data padded to 4 bytes; a `TRAILER!!!` entry ends the archive.

use std::io::{self, Write};

pub(crate) const MAGIC: &[u8; 6] = b"070701";
pub(crate) const TRAILER: &str = "TRAILER!!!";
pub(crate) const HEADER_LEN: usize = 110;

pub(crate) const S_IFDIR: u32 = 0o040000;
pub(crate) const S_IFREG: u32 = 0o100000;
pub(crate) const S_IFLNK: u32 = 0o120000;
pub(crate) const S_IFCHR: u32 = 0o020000;

/// One header's worth of metadata (uid/gid are root; mtime is 0 for reproducible archives).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Header {
    pub ino: u32,
    /// File type and permission bits (`S_IF*` | 0o7777).
    pub mode: u32,
    pub nlink: u32,
    pub filesize: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
}

/// Writes newc entries to `W`, counting bytes for the padding.
pub(crate) struct NewcWriter<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> NewcWriter<W> {
    pub fn new(out: W) -> Self {
        Self { out, written: 0 }
    }

    /// Writes the header and name of one entry; its `filesize` bytes of data must follow
    /// through [`data`](Self::data), then [`pad`](Self::pad).
    pub fn header(&mut self, name: &str, h: &Header) -> io::Result<()> {
        let namesize = name.len() as u32 + 1;
        let fields = [h.ino, h.mode, 0, 0, h.nlink, 0, h.filesize, 0, 0, h.rdev_major, h.rdev_minor, namesize, 0];
        let mut buf = Vec::with_capacity(HEADER_LEN + name.len() + 4);
        buf.extend_from_slice(MAGIC);
        for f in fields {
            write!(buf, "{f:08X}")?;
        }
        buf.extend_from_slice(name.as_bytes());
        buf.push(0);
        self.raw(&buf)?;
        self.pad()
    }

    pub fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.raw(bytes)
    }

    /// Zero-pads to the next 4-byte boundary.
    pub fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.raw(&[0u8; 3][..n])
    }

    /// Writes the trailer and returns the sink and the archive's length.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.header(TRAILER, &Header { nlink: 1, ..Header::default() })?;
        self.out.flush()?;
        Ok((self.out, self.written))
    }

    fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}
