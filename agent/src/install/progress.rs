//! Install progress on the terminal: one line per phase with its time, a spinner while a phase
//! runs when stderr is a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use operation::{Observer, PhaseOutcome};

pub struct Progress {
    total: usize,
    done: usize,
    spinner: Option<indicatif::ProgressBar>,
    tty: bool,
    verb: &'static str,
}

impl Progress {
    pub fn new(total: usize, verb: &'static str) -> Progress {
        Progress {
            total,
            done: 0,
            spinner: None,
            tty: std::io::stderr().is_terminal(),
            verb,
        }
    }

    fn counter(&self) -> String {
        format!("[{}/{}]", self.done + 1, self.total)
    }
}

impl Observer for Progress {
    fn phase_started(&mut self, _name: &str, description: &str) {
        if self.tty {
            let s = indicatif::ProgressBar::new_spinner();
            s.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .expect("valid template"),
            );
            s.set_message(format!("{} {description}", self.counter()));
            s.enable_steady_tick(Duration::from_millis(120));
            self.spinner = Some(s);
        }
    }

    fn phase_message(&mut self, name: &str, text: &str) {
        // Into the operation's log file too (the terminal shows warnings and up only).
        tracing::info!(phase = name, "{text}");
        match &self.spinner {
            Some(s) => s.suspend(|| eprintln!("  {text}")),
            None => eprintln!("  {text}"),
        }
    }

    fn phase_finished(&mut self, _name: &str, description: &str, outcome: PhaseOutcome<'_>) {
        if let Some(s) = self.spinner.take() {
            s.finish_and_clear();
        }
        let counter = self.counter();
        match outcome {
            PhaseOutcome::Completed(took) => eprintln!(
                "{counter} {description:<48} {} {:>6.1}s",
                self.verb,
                took.as_secs_f64()
            ),
            PhaseOutcome::Skipped => eprintln!("{counter} {description:<48} already done"),
            PhaseOutcome::Failed(_) => eprintln!("{counter} {description:<48} FAILED"),
        }
        self.done += 1;
        // What follows a failed phase is the automatic rollback: the phases that ran, undone.
        if matches!(outcome, PhaseOutcome::Failed(_)) && self.verb == "done" {
            (self.total, self.done, self.verb) = (self.done, 0, "undone");
        }
    }
}
