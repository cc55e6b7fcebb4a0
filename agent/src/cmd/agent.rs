//! `gravity agent`: the join agent of the first node (started by install, kept running by
//! systemd or gravity's daemon).

use std::process::ExitCode;

use crate::cli::GlobalArgs;
use crate::join;
use crate::state_dir::StateDir;

#[derive(Debug, clap::Subcommand)]
pub enum AgentCommand {
    /// Answer joining nodes in the foreground (what the host service runs)
    Serve,
    /// Keep `gravity agent serve` running, restarting it when it crashes (where systemd is
    /// not PID 1)
    #[command(hide = true)]
    Daemon,
    /// Whether the agent answers on this node
    Status,
}

pub fn run(global: &GlobalArgs, command: AgentCommand) -> anyhow::Result<ExitCode> {
    let layout = StateDir::new(&global.state_dir);
    match command {
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
        AgentCommand::Status => {
            join::service::wait_ready(&layout, std::time::Duration::ZERO)?;
            println!("the join agent answers on port {}", rpc::agent::PORT);
            Ok(ExitCode::SUCCESS)
        }
    }
}
