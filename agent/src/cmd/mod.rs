//! One module per subcommand.

pub mod check;
pub mod completions;
pub mod image;
pub mod install;
pub mod kubectl;
pub mod leave;
pub mod plan;
pub mod planet;
pub mod status;
pub mod uninstall;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Image(c) => image::run(&cli.global, c),
        Command::Completions(a) => completions::run(a),
        Command::Planet(c) => planet::run(&cli.global, c),
        Command::Check(a) => check::run(&cli.global, a),
        Command::Install(a) => install::run(&cli.global, *a),
        Command::Plan(a) => plan::run(&cli.global, a),
        Command::Status(a) => status::run(&cli.global, a),
        Command::Uninstall(a) => uninstall::run(&cli.global, a),
        Command::Leave(a) => leave::run(&cli.global, a),
        Command::Kubectl(a) => kubectl::run(&cli.global, a),
    }
}
