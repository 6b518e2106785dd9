//! A progress bar on stderr for long work, shown only to a person at a terminal (never with
//! `--json`, never in a pipe or a CI log).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Progress of one command: a bar when someone watches, nothing otherwise.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar unless `quiet` (JSON output) or stderr is not a terminal.
    pub fn new(quiet: bool) -> Self {
        let shown = !quiet && std::io::stderr().is_terminal();
        Progress {
            bar: shown.then(ProgressBar::no_length),
        }
    }

    /// Starts counting `total` units named `unit` (0: unknown total, a spinner).
    pub fn start(&self, total: u64, unit: &str) {
        if let Some(bar) = &self.bar {
            let template = if total == 0 {
                format!("{{spinner}} {{pos}} {unit} {{per_sec}} {{elapsed}}")
            } else {
                bar.set_length(total);
                format!("{{bar:40}} {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}}")
            };
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style);
            }
        }
    }

    pub fn inc(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
