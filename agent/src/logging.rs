//! Terminal output for people, a full log file under the state directory for later.

use std::fs::File;
use std::path::PathBuf;

use anyhow::Context;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::prelude::*;

use crate::cli::{GlobalArgs, LogFormat};

/// Keeps the log file's path for messages like "see the log in ...".
pub struct LogGuard {
    pub file: Option<PathBuf>,
}

/// The terminal shows warnings (debug with `--debug`, or as `RUST_LOG` says); the log file,
/// when the command writes one, gets everything at debug level.
pub fn init(global: &GlobalArgs, command: &'static str, to_file: bool) -> anyhow::Result<LogGuard> {
    let terminal_filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(terminal_default(global.debug)));
    let terminal = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time();
    let terminal = match global.log_format {
        LogFormat::Text => terminal.compact().with_filter(terminal_filter).boxed(),
        LogFormat::Json => terminal.json().with_filter(terminal_filter).boxed(),
    };

    let mut path = None;
    let file_layer = if to_file {
        match open_log_file(global, command) {
            Ok((p, file)) => {
                path = Some(p);
                Some(
                    tracing_subscriber::fmt::layer()
                        .with_writer(BoxMakeWriter::new(std::sync::Mutex::new(file)))
                        .with_ansi(false)
                        .with_filter(EnvFilter::new("debug")),
                )
            }
            // No state directory yet, or not root: the terminal is enough.
            Err(_) => None,
        }
    } else {
        None
    };
    tracing_subscriber::registry()
        .with(terminal)
        .with(file_layer)
        .try_init()
        .context("cannot set up logging")?;
    if let Some(p) = &path {
        tracing::debug!(log = %p.display(), args = ?redacted(std::env::args()), "gravity {}", env!("CARGO_PKG_VERSION"));
    }
    Ok(LogGuard { file: path })
}

/// libcontainer warns about every cgroup controller this host lacks on each exec; those are not
/// the user's business unless they ask for debug output.
fn terminal_default(debug: bool) -> &'static str {
    if debug {
        "debug"
    } else {
        "warn,libcontainer=error,libcgroups=error"
    }
}

fn open_log_file(global: &GlobalArgs, command: &str) -> std::io::Result<(PathBuf, File)> {
    let dir = crate::state_dir::StateDir::new(&global.state_dir).logs();
    std::fs::create_dir_all(&dir)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let path = dir.join(format!("{command}-{stamp}-{}.log", std::process::id()));
    let file = File::options().create(true).append(true).open(&path)?;
    Ok((path, file))
}

/// The command line without secrets: the value of `--token` never reaches a log.
fn redacted(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut hide_next = false;
    args.map(|a| {
        if std::mem::take(&mut hide_next) {
            "<redacted>".to_string()
        } else if a == "--token" {
            hide_next = true;
            a
        } else if a.starts_with("--token=") {
            "--token=<redacted>".to_string()
        } else {
            a
        }
    })
    .collect()
}

#[cfg(test)]
mod redaction_tests {
    #[test]
    fn tokens_never_reach_the_log() {
        let args = [
            "gravity",
            "join",
            "10.0.0.1",
            "--token=abc.def",
            "--token",
            "ghi.jkl",
            "--ca-hash=x",
        ];
        let out = super::redacted(args.iter().map(|s| s.to_string()));
        assert_eq!(
            out,
            [
                "gravity",
                "join",
                "10.0.0.1",
                "--token=<redacted>",
                "--token",
                "<redacted>",
                "--ca-hash=x"
            ]
        );
    }
}
