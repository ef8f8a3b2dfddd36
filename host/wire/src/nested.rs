//! Nested runs: what the outer guest's init (`nested-init`) is asked to run,
//! and how its results come back to the host.
//!
//! The host writes a [`NestedPlan`] as JSON to [`PLAN_PATH`] in the outer
//! initramfs. The init loads the plan's modules, runs `argv` with `env` in
//! `cwd`, then writes the result stream to the virtio-serial port named
//! [`PORT_NAME`]: the line [`RESULT_MAGIC`], then for each output either
//! `file <len> <path>\n` followed by `len` bytes or `missing <path>\n`, and
//! last `exit <code>\n` (the program's status; 128 + signal when killed) or
//! `error <message>\n` (the program could not run).

use serde::{Deserialize, Serialize};

/// Where the plan lives in the outer guest.
pub const PLAN_PATH: &str = "/nested/plan.json";
/// The virtio-serial port the results are written to.
pub const PORT_NAME: &str = "schedbox.nested";
/// First line of the result stream.
pub const RESULT_MAGIC: &str = "schedbox-nested 1";

/// What the outer guest runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NestedPlan {
    /// Kernel modules to load first, in order (compressed ones too).
    pub modules: Vec<String>,
    /// The whole environment of the program.
    pub env: Vec<(String, String)>,
    /// Its working directory (created when missing).
    pub cwd: String,
    /// The program (an absolute path) and its arguments.
    pub argv: Vec<String>,
    /// Files sent back once the program ends.
    pub outputs: Vec<String>,
}

/// How a nested program ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NestedExit {
    /// Exit status (128 + signal number when a signal killed it).
    Code(i32),
    /// It could not be started, or the init failed before it; the message says why.
    Error(String),
}

/// What came back from a nested run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NestedResult {
    /// Each requested output, `None` when the program did not write it.
    pub outputs: Vec<(String, Option<Vec<u8>>)>,
    pub exit: NestedExit,
}

/// Writes one output file (or its absence) to the result stream.
pub fn write_output(out: &mut impl std::io::Write, path: &str, bytes: Option<&[u8]>) -> std::io::Result<()> {
    match bytes {
        Some(b) => {
            writeln!(out, "file {} {path}", b.len())?;
            out.write_all(b)
        }
        None => writeln!(out, "missing {path}"),
    }
}

/// Parses a whole result stream.
pub fn parse_result(bytes: &[u8]) -> Result<NestedResult, String> {
    let mut rest = bytes;
    if next_line(&mut rest)? != RESULT_MAGIC {
        return Err(format!("the result stream does not start with {RESULT_MAGIC:?}"));
    }
    let mut outputs = Vec::new();
    loop {
        let l = next_line(&mut rest)?;
        if let Some(code) = l.strip_prefix("exit ") {
            let code = code.parse().map_err(|_| format!("bad exit line {l:?}"))?;
            return Ok(NestedResult { outputs, exit: NestedExit::Code(code) });
        }
        if let Some(msg) = l.strip_prefix("error ") {
            return Ok(NestedResult { outputs, exit: NestedExit::Error(msg.to_owned()) });
        }
        if let Some(path) = l.strip_prefix("missing ") {
            outputs.push((path.to_owned(), None));
            continue;
        }
        let (len, path) = l
            .strip_prefix("file ")
            .and_then(|r| r.split_once(' '))
            .and_then(|(n, p)| Some((n.parse::<usize>().ok()?, p)))
            .ok_or_else(|| format!("bad result line {l:?}"))?;
        if rest.len() < len {
            return Err(format!("{path}: {len} bytes announced, {} arrived", rest.len()));
        }
        outputs.push((path.to_owned(), Some(rest[..len].to_vec())));
        rest = &rest[len..];
    }
}

fn next_line(rest: &mut &[u8]) -> Result<String, String> {
    let end = rest.iter().position(|b| *b == b'\n').ok_or("the result stream ended early (the outer guest died?)")?;
    let line = String::from_utf8_lossy(&rest[..end]).into_owned();
    *rest = &rest[end + 1..];
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_stream_round_trips() {
        let mut s = format!("{RESULT_MAGIC}\n").into_bytes();
        write_output(&mut s, "/r/report.json", Some(b"{\n}")).unwrap();
        write_output(&mut s, "/r/gone", None).unwrap();
        s.extend_from_slice(b"exit 1\n");
        let r = parse_result(&s).unwrap();
        assert_eq!(r.exit, NestedExit::Code(1));
        assert_eq!(r.outputs, vec![("/r/report.json".into(), Some(b"{\n}".to_vec())), ("/r/gone".into(), None)]);
    }

    #[test]
    fn a_cut_stream_is_an_error_not_a_result() {
        let mut s = format!("{RESULT_MAGIC}\n").into_bytes();
        write_output(&mut s, "/r/report.json", Some(b"0123456789")).unwrap();
        s.truncate(s.len() - 4);
        assert!(parse_result(&s).unwrap_err().contains("10 bytes announced, 6 arrived"));
        assert!(parse_result(b"").unwrap_err().contains("ended early"));
        assert!(parse_result(b"hello\n").unwrap_err().contains("does not start"));
    }
}
