//! `gravity image verify|unpack`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::cli::{GlobalArgs, Output};

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Check every file of an unpacked cluster image against its index
    Verify {
        /// The unpacked image (default: the directory this gravity runs from)
        dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Unpack a cluster image tarball (plain or zstd), verifying every file
    Unpack {
        /// The tarball
        archive: PathBuf,
        /// Where to unpack; must not exist or be empty
        target: PathBuf,
        /// Skip the final syncfs (faster; a crash may then leave a target with lost data)
        #[arg(long)]
        no_sync: bool,
        /// File-writing threads (default: twice the CPUs, at most 16)
        #[arg(long, default_value_t = 0)]
        workers: usize,
    },
}

pub fn run(_global: &GlobalArgs, command: ImageCommand) -> anyhow::Result<ExitCode> {
    match command {
        ImageCommand::Verify { dir, output } => {
            let dir = match dir {
                Some(d) => d,
                None => crate::source::own_dir()?,
            };
            let report = cluster_image::archive::verify_dir(&dir)?;
            match output {
                Output::Json => println!(
                    "{}",
                    serde_json::json!({
                        "dir": dir, "name": report.index.name, "version": report.index.version,
                        "files": report.files, "bytes": report.bytes, "ok": true,
                    })
                ),
                Output::Text => println!(
                    "{} {}: {} files, {} verified in {:.1?}",
                    report.index.name,
                    report.index.version,
                    report.files,
                    cluster_image::units::Size(report.bytes),
                    report.elapsed
                ),
            }
        }
        ImageCommand::Unpack {
            archive,
            target,
            no_sync,
            workers,
        } => {
            let opts = cluster_image::archive::UnpackOptions {
                sync: !no_sync,
                workers,
                ..Default::default()
            };
            let report = cluster_image::archive::unpack(&archive, &target, &opts)
                .with_context(|| format!("cannot unpack {}", archive.display()))?;
            println!(
                "unpacked {} files ({}) into {} in {:.1?}",
                report.files,
                cluster_image::units::Size(report.bytes),
                target.display(),
                report.elapsed
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
