//! Progress of a long walk on stderr: one line redrawn in place on a
//! terminal, a plain line now and then otherwise (a log collector gets no
//! control characters).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often progress is shown: redrawn on a terminal, printed otherwise.
const TERMINAL_EVERY: Duration = Duration::from_millis(200);
const LINE_EVERY: Duration = Duration::from_secs(10);

pub struct Progress {
    command: &'static str,
    terminal: bool,
    shown: Option<Instant>,
    drawn: bool,
}

impl Progress {
    /// Progress of `command`, which starts its lines when not on a terminal.
    pub fn new(command: &'static str) -> Progress {
        Progress {
            command,
            terminal: std::io::stderr().is_terminal(),
            shown: None,
            drawn: false,
        }
    }

    /// Shows `text()` unless progress was shown a moment ago.
    pub fn show(&mut self, text: impl FnOnce() -> String) {
        let every = if self.terminal { TERMINAL_EVERY } else { LINE_EVERY };
        if self.shown.is_some_and(|at| at.elapsed() < every) {
            return;
        }
        self.shown = Some(Instant::now());
        if self.terminal {
            eprint!("\r\x1b[2K{}", text());
            let _ = std::io::stderr().flush();
            self.drawn = true;
        } else {
            eprintln!("{}: {}", self.command, text());
        }
    }

    /// Removes the progress line before other output.
    pub fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[2K");
            self.drawn = false;
        }
    }
}
