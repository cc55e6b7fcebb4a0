//! `tele build`: turns an Image Manifest and its directory into one cluster image tarball.

pub mod build;
pub mod cli;
pub mod fetch;

use std::process::ExitCode;

use clap::Parser;

pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if cli.debug { "debug" } else { "warn" })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
    let result = match cli.command {
        cli::Command::Build(args) => build::run(&args),
        cli::Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut cli::Cli::command(),
                "tele",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let manifest = e.chain().any(|c| {
                c.downcast_ref::<cluster_image::manifest::ManifestError>()
                    .is_some()
            });
            ExitCode::from(if manifest { 2 } else { 1 })
        }
    }
}
