//! One module per subcommand.

pub mod check;
pub mod completions;
pub mod image;
pub mod planet;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Image(c) => image::run(&cli.global, c),
        Command::Completions(a) => completions::run(a),
        Command::Planet(c) => planet::run(&cli.global, c),
        Command::Check(a) => check::run(&cli.global, a),
    }
}
