//! The node agent: installs a cluster image on a host and supervises the planet container.

pub mod cli;
pub mod cmd;
pub mod effects;
pub mod hooks;
pub mod host;
pub mod install;
pub mod join;
pub mod logging;
pub mod node;
pub mod source;
pub mod state_dir;
pub mod upgrade;

use std::process::ExitCode;

/// Every kind of operation this gravity can resume or roll back from its journal.
pub fn plan_kinds() -> operation::Registry {
    operation::Registry::new()
        .with(install::InstallKind)
        .with(upgrade::UpgradeKind)
        .with(join::plan::JoinKind)
}

use clap::Parser;

/// Exit codes shared by every subcommand (preflight adds 3 and 4 for failed checks and warnings).
pub mod exit {
    pub const OK: u8 = 0;
    /// Something failed while running.
    pub const ERROR: u8 = 1;
    /// The command line or the manifest is wrong.
    pub const USAGE: u8 = 2;
}

pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let _guard = match logging::init(&cli.global, cli.command.name(), cli.command.logs_to_file()) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match cmd::run(cli) {
        Ok(code) => code,
        Err(e) => {
            tracing::debug!(error = ?e, "command failed");
            eprintln!("error: {e:#}");
            let usage = e.chain().any(|c| {
                c.downcast_ref::<cluster_image::manifest::ManifestError>()
                    .is_some()
            });
            ExitCode::from(if usage { exit::USAGE } else { exit::ERROR })
        }
    }
}
