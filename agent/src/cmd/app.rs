//! `gravity app start|stop|status`: the application's start, stop and status hooks, run now.

use std::process::ExitCode;

use anyhow::bail;

use crate::cli::GlobalArgs;
use crate::effects::Effects;
use crate::hooks::{self, Ran};
use crate::state_dir::StateDir;

#[derive(Debug, clap::Subcommand)]
pub enum AppCommand {
    /// Start the application (its start hook)
    Start,
    /// Stop the application (its stop hook)
    Stop,
    /// Ask the application how it is (its status hook; `gravity status` shows the last answer)
    Status,
}

pub fn run(global: &GlobalArgs, command: AppCommand) -> anyhow::Result<ExitCode> {
    let layout = StateDir::new(&global.state_dir);
    let effects = Effects::host();
    if let AppCommand::Status = command {
        let Some(status) = hooks::status::run(&effects, &layout)? else {
            bail!("the application has no status hook (hooks.status in its manifest)");
        };
        eprintln!("{}", status.render());
        return Ok(if status.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(crate::exit::ERROR)
        });
    }
    let hook = match command {
        AppCommand::Start => "start",
        _ => "stop",
    };
    match hooks::run_now(
        &effects,
        &layout,
        hook,
        hooks::TIMEOUT,
        &mut hooks::to_stderr(hook),
    )? {
        Ran::Done => eprintln!("the {hook} hook completed"),
        Ran::NotDefined => {
            bail!("the application has no {hook} hook (hooks.{hook} in its manifest)")
        }
    }
    Ok(ExitCode::SUCCESS)
}
