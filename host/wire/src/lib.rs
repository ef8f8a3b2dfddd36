//! The host ↔ agent protocol: one crate, used by both ends.
//!
//! A frame is a 16-byte header — magic `SBXW`, protocol version (u16 LE),
//! reserved (u16), payload length (u32 LE), CRC-32 of the payload (u32 LE) —
//! followed by the payload: one message as JSON. Decoding never panics; every
//! malformed frame is a [`WireError`] that says what was wrong.

mod message;
pub mod nested;

use std::io::{Read, Write};

pub use message::*;

/// Frame magic.
pub const MAGIC: [u8; 4] = *b"SBXW";
/// Protocol version; a peer speaking another version is refused.
pub const VERSION: u16 = 1;
/// Largest payload accepted.
pub const MAX_PAYLOAD: usize = 16 << 20;

/// How long the agent lets a sched_ext scheduler take to attach (its process started →
/// `/sys/kernel/sched_ext/state` reads `enabled`), seconds.
pub const SCHEDULER_ATTACH_BOUND_S: u64 = 60;

/// How long the host waits for an answer to a request that may start a scheduler (an
/// attach, replace or restart, and the begin and end of a scenario, which restore a
/// boot scheduler): the attach bound plus a detach and a margin.
pub const SCHEDULER_START_WAIT: std::time::Duration = std::time::Duration::from_secs(SCHEDULER_ATTACH_BOUND_S + 30);
const HEADER: usize = 16;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("channel closed")]
    Closed,
    #[error("channel I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame magic {0:02x?} (expected \"SBXW\"): the channel is out of sync or carries something else")]
    BadMagic([u8; 4]),
    #[error("peer speaks protocol version {0}, this side speaks {VERSION}: rebuild the agent and host together")]
    Version(u16),
    #[error("frame payload of {0} bytes exceeds the {MAX_PAYLOAD}-byte limit")]
    TooLarge(usize),
    #[error("frame checksum mismatch (header {expected:#010x}, payload {actual:#010x}): corrupted in transit")]
    Checksum { expected: u32, actual: u32 },
    #[error("frame payload is not a valid message: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Encodes `msg` as one frame.
pub fn encode<T: serde::Serialize>(msg: &T) -> Result<Vec<u8>, WireError> {
    let payload = serde_json::to_vec(msg)?;
    if payload.len() > MAX_PAYLOAD {
        return Err(WireError::TooLarge(payload.len()));
    }
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes one complete frame (header and payload) from `bytes`.
/// Returns the message and the number of bytes consumed.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), WireError> {
    let header: &[u8; HEADER] = bytes.get(..HEADER).and_then(|h| h.try_into().ok()).ok_or(WireError::Closed)?;
    let len = check_header(header)?;
    let payload = bytes.get(HEADER..HEADER + len).ok_or(WireError::Closed)?;
    Ok((decode_payload(header, payload)?, HEADER + len))
}

fn check_header(h: &[u8; HEADER]) -> Result<usize, WireError> {
    let magic = [h[0], h[1], h[2], h[3]];
    if magic != MAGIC {
        return Err(WireError::BadMagic(magic));
    }
    let version = u16::from_le_bytes([h[4], h[5]]);
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let len = u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(WireError::TooLarge(len));
    }
    Ok(len)
}

fn decode_payload<T: serde::de::DeserializeOwned>(h: &[u8; HEADER], payload: &[u8]) -> Result<T, WireError> {
    let expected = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
    let actual = crc32fast::hash(payload);
    if expected != actual {
        return Err(WireError::Checksum { expected, actual });
    }
    Ok(serde_json::from_slice(payload)?)
}

/// Writes one frame and flushes.
pub fn write_msg<W: Write, T: serde::Serialize>(w: &mut W, msg: &T) -> Result<(), WireError> {
    w.write_all(&encode(msg)?)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame. `Closed` on a clean end of stream before a header.
pub fn read_msg<R: Read, T: serde::de::DeserializeOwned>(r: &mut R) -> Result<T, WireError> {
    let mut header = [0u8; HEADER];
    read_exact_or_closed(r, &mut header)?;
    let len = check_header(&header)?;
    let mut payload = vec![0u8; len];
    read_exact_or_closed(r, &mut payload)?;
    decode_payload(&header, &payload)
}

fn read_exact_or_closed<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<(), WireError> {
    match r.read_exact(buf) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(WireError::Closed),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests;
