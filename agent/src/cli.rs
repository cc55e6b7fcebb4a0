//! The command line. Each subcommand's arguments live with the subcommand in `cmd/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cmd;

#[derive(Debug, Parser)]
#[command(
    name = "gravity",
    version,
    about = "Installs a Kubernetes cluster image on this host and runs its planet system container",
    long_about = "Installs a Kubernetes cluster image on this host and runs its planet system container.\n\n\
Run it from an unpacked cluster image (`tar xf cluster.tar && ./gravity install`), or give the\n\
tarball with --image. Every file of the image is verified against its index before use.",
    propagate_version = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// Where gravity keeps its state, logs and planet's data
    #[arg(
        long,
        global = true,
        env = "GRAVITY_STATE_DIR",
        default_value = "/var/lib/gravity"
    )]
    pub state_dir: PathBuf,
    /// Show debug output on the terminal (the log file always has it)
    #[arg(long, short = 'd', global = true)]
    pub debug: bool,
    /// Format of log lines on the terminal
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install the cluster image on this host, or resume an interrupted install
    Install(Box<cmd::install::Args>),
    /// Upgrade this node to a newer version of its cluster image, or resume an interrupted upgrade
    Upgrade(Box<cmd::upgrade::Args>),
    /// Remove what finished upgrades kept for a rollback: older planet images, other versions'
    /// cluster images, the configuration from before the last upgrade
    Gc(cmd::gc::Args),
    /// Show the node, planet and its services, and the last operation
    Status(cmd::status::Args),
    /// Show the current operation's phases; resume or roll it back
    Plan(cmd::plan::Args),
    /// Verify or unpack a cluster image
    #[command(subcommand)]
    Image(cmd::image::ImageCommand),
    /// Print shell completions
    Completions(cmd::completions::Args),
    /// Run, start, stop, inspect or enter the planet system container
    #[command(subcommand)]
    Planet(cmd::planet::PlanetCommand),
    /// Check that this host can run a node profile (preflight), or serve peer checks
    Check(cmd::check::Args),
    /// Remove the cluster from this host: planet, its service, mounts and all state
    Uninstall(cmd::uninstall::Args),
    /// Remove this node from its cluster (on the node that installed it, only with `--force`:
    /// uninstall)
    Leave(cmd::leave::Args),
    /// Remove a joined node that is gone for good (run on the node that installed the cluster)
    Remove(cmd::remove::Args),
    /// Run kubectl against this cluster, as its administrator
    Kubectl(cmd::kubectl::Args),
    /// Start, stop or ask the application (its start, stop and status hooks)
    #[command(subcommand)]
    App(cmd::app::AppCommand),
    /// Back the application up into FILE (its backup hook)
    Backup(cmd::backup::Args),
    /// Restore the application from a backup FILE (its restore hook)
    Restore(cmd::backup::Args),
    /// Write a debug report (logs, plans, status, the dump hook's output) into FILE
    Report(cmd::report::Args),
    /// Join this host to a cluster: a control plane node or a worker, by its profile and what
    /// the cluster has
    Join(cmd::join::Args),
    /// The node's agent: answers joining hosts (on the first node), follows the cluster's
    /// upgrades (on a joined node)
    #[command(subcommand)]
    Agent(cmd::agent::AgentCommand),
    /// Create, list or revoke the tokens hosts join this cluster with
    #[command(subcommand)]
    Token(cmd::token::TokenCommand),
}

impl Command {
    /// A short name for log file names.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Image(_) => "image",
            Command::Completions(_) => "completions",
            Command::Planet(_) => "planet",
            Command::Check(_) => "check",
            Command::Install(_) => "install",
            Command::Upgrade(_) => "upgrade",
            Command::Gc(_) => "gc",
            Command::Status(_) => "status",
            Command::Plan(_) => "plan",
            Command::Uninstall(_) => "uninstall",
            Command::Leave(_) => "leave",
            Command::Remove(_) => "remove",
            Command::Kubectl(_) => "kubectl",
            Command::App(_) => "app",
            Command::Backup(_) => "backup",
            Command::Restore(_) => "restore",
            Command::Report(_) => "report",
            Command::Agent(_) => "agent",
            Command::Join(_) => "join",
            Command::Token(_) => "token",
        }
    }

    /// Commands whose output is for machines, or which run before a state directory exists,
    /// do not write a log file.
    pub fn logs_to_file(&self) -> bool {
        !matches!(
            self,
            Command::Completions(_)
                | Command::Image(_)
                | Command::Planet(_)
                | Command::Kubectl(_)
                | Command::Status(_)
                | Command::Plan(_)
                // The agent logs to the journal or its daemon's file; tokens are secrets.
                | Command::Agent(_)
                | Command::Token(_)
                // Asked once a minute by planet's supervisor.
                | Command::App(cmd::app::AppCommand::Status)
        )
    }
}
