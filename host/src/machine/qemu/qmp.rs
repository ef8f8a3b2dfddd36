//! A minimal QMP client: capabilities negotiation, then one command at a time.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::{json, Value};

use crate::machine::MachineError;

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to a QMP socket and leaves negotiation mode.
    pub fn connect(stream: UnixStream) -> Result<Self, MachineError> {
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let writer = stream.try_clone()?;
        let mut qmp = Self { reader: BufReader::new(stream), writer };
        let greeting = qmp.read_value()?;
        if greeting.get("QMP").is_none() {
            return Err(MachineError::Qmp(format!("unexpected greeting {greeting}")));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    fn read_value(&mut self) -> Result<Value, MachineError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(MachineError::Qmp("QEMU closed the QMP socket".into()));
        }
        serde_json::from_str(&line).map_err(|e| MachineError::Qmp(format!("bad QMP line {line:?}: {e}")))
    }

    /// Runs `command` and returns its `return` value; events in between are skipped.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, MachineError> {
        let mut req = json!({ "execute": command });
        if let Some(a) = arguments {
            req["arguments"] = a;
        }
        writeln!(self.writer, "{req}")?;
        loop {
            let v = self.read_value()?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(MachineError::Qmp(format!("{command}: {e}")));
            }
        }
    }

    /// `query-status`'s `status` (`running`, `paused`, ...).
    pub fn status(&mut self) -> Result<String, MachineError> {
        let r = self.execute("query-status", None)?;
        Ok(r.get("status").and_then(Value::as_str).unwrap_or("unknown").to_owned())
    }
}
