//! One module per subcommand.

pub mod agent;
pub mod app;
pub mod backup;
pub mod check;
pub mod completions;
pub mod gc;
pub mod image;
pub mod install;
pub mod join;
pub mod kubectl;
pub mod leave;
pub mod plan;
pub mod planet;
pub mod remove;
pub mod report;
pub mod status;
pub mod token;
pub mod uninstall;
pub mod upgrade;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Image(c) => image::run(&cli.global, c),
        Command::Completions(a) => completions::run(a),
        Command::Planet(c) => planet::run(&cli.global, c),
        Command::Check(a) => check::run(&cli.global, a),
        Command::Install(a) => install::run(&cli.global, *a),
        Command::Upgrade(a) => upgrade::run(&cli.global, *a),
        Command::Gc(a) => gc::run(&cli.global, a),
        Command::Plan(a) => plan::run(&cli.global, a),
        Command::Status(a) => status::run(&cli.global, a),
        Command::Uninstall(a) => uninstall::run(&cli.global, a),
        Command::Leave(a) => leave::run(&cli.global, a),
        Command::Remove(a) => remove::run(&cli.global, a),
        Command::Kubectl(a) => kubectl::run(&cli.global, a),
        Command::App(c) => app::run(&cli.global, c),
        Command::Backup(a) => backup::backup(&cli.global, a),
        Command::Restore(a) => backup::restore(&cli.global, a),
        Command::Report(a) => report::run(&cli.global, a),
        Command::Agent(c) => agent::run(&cli.global, c),
        Command::Join(a) => join::run(&cli.global, a),
        Command::Token(c) => token::run(&cli.global, c),
    }
}
