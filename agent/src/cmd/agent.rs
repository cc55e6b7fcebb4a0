//! `gravity agent`: the join agent of the first node (started by install), or a joined node's
//! agent that follows the cluster's upgrades (started by join); kept running by systemd or
//! gravity's daemon.

use std::process::ExitCode;

use crate::cli::GlobalArgs;
use crate::join;
use crate::state_dir::StateDir;

#[derive(Debug, clap::Subcommand)]
pub enum AgentCommand {
    /// Answer joining nodes (on the first node), or follow the cluster's upgrades (on a
    /// joined node), in the foreground: what the host service runs
    Serve,
    /// Keep `gravity agent serve` running, restarting it when it crashes (where systemd is
    /// not PID 1)
    #[command(hide = true)]
    Daemon,
    /// Whether the agent answers (on the first node), or runs (on a joined node)
    Status,
}

pub fn run(global: &GlobalArgs, command: AgentCommand) -> anyhow::Result<ExitCode> {
    let layout = StateDir::new(&global.state_dir);
    match command {
        AgentCommand::Serve if layout.is_joined_node() => {
            crate::upgrade::node::follow::run(&layout)?;
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Serve => {
            join::serve::run(&layout)?;
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Daemon => {
            let args = [
                "agent".into(),
                "serve".into(),
                "--state-dir".into(),
                layout.root().as_os_str().to_owned(),
            ];
            let code = planet::service::keep_running(&layout.agent_pid(), &args, "the join agent")?;
            Ok(ExitCode::from(code))
        }
        AgentCommand::Status if layout.is_joined_node() => {
            anyhow::ensure!(
                join::service::runs(&layout),
                "the node's agent does not run: see {} (or `journalctl -u {}`)",
                layout.agent_log().display(),
                systemd::units::AGENT_UNIT
            );
            println!("the node's agent runs and follows the cluster's upgrades");
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Status => {
            join::service::wait_ready(&layout, std::time::Duration::ZERO)?;
            println!("the join agent answers on port {}", rpc::agent::PORT);
            Ok(ExitCode::SUCCESS)
        }
    }
}
