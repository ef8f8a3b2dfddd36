//! The guest's serial console: kept as a ring of recent lines for error
//! messages, scanned for kernel panics, and logged at debug level.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const KEEP: usize = 400;

/// Shared view of a console being read by a background thread.
#[derive(Clone, Default)]
pub struct Console {
    lines: Arc<Mutex<VecDeque<String>>>,
    panicked: Arc<AtomicBool>,
    /// The first "Kernel panic" line, with the reason.
    panic_line: Arc<Mutex<Option<String>>>,
}

impl Console {
    /// Starts a thread reading `source` line by line until it closes.
    pub fn spawn_reader<R: Read + Send + 'static>(source: R) -> Self {
        let console = Console::default();
        let c = console.clone();
        std::thread::Builder::new()
            .name("guest-console".into())
            .spawn(move || {
                for line in BufReader::new(source).split(b'\n').map_while(Result::ok) {
                    c.push(String::from_utf8_lossy(&line).trim_end_matches('\r').to_owned());
                }
            })
            .ok();
        console
    }

    fn push(&self, line: String) {
        tracing::debug!(target: "schedbox::guest_console", "{line}");
        if line.contains("Kernel panic - not syncing") {
            if let Ok(mut p) = self.panic_line.lock() {
                p.get_or_insert_with(|| line.clone());
            }
            self.panicked.store(true, Ordering::SeqCst);
        }
        if let Ok(mut l) = self.lines.lock() {
            if l.len() == KEEP {
                l.pop_front();
            }
            l.push_back(line);
        }
    }

    /// Whether the kernel printed a panic.
    pub fn panicked(&self) -> bool {
        self.panicked.load(Ordering::SeqCst)
    }

    /// The kernel's panic line (`Kernel panic - not syncing: <reason>`), once seen.
    pub fn panic_line(&self) -> Option<String> {
        self.panic_line.lock().ok().and_then(|p| p.clone())
    }

    /// The last `n` lines, joined.
    pub fn tail(&self, n: usize) -> String {
        let l = self.lines.lock().map(|l| l.iter().cloned().collect::<Vec<_>>()).unwrap_or_default();
        l[l.len().saturating_sub(n)..].join("\n")
    }

    /// Every line kept so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.iter().cloned().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_lines_and_sees_panics() {
        let text = b"booting\r\nKernel panic - not syncing: Attempted to kill init!\nend\n".to_vec();
        let c = super::Console::spawn_reader(std::io::Cursor::new(text));
        for _ in 0..100 {
            if c.lines().len() == 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(c.panicked());
        assert!(c.panic_line().unwrap().ends_with("Attempted to kill init!"));
        assert_eq!(c.tail(2), "Kernel panic - not syncing: Attempted to kill init!\nend");
    }
}
