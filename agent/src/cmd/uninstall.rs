//! `gravity uninstall` (and `gravity leave --force` on a single node): removes planet, its
//! service, mounts and the state directory; leaves the host as it was before the install.

use crate::state_dir::StateDir;
use std::process::ExitCode;

use anyhow::bail;

use crate::cli::GlobalArgs;
use crate::effects::Effects;
use crate::install::phases_api;
use crate::install::state;
use operation::Journal;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also remove the `planet` user and group, if the install created them
    #[arg(long)]
    pub remove_user: bool,
    /// Do not ask for confirmation (required without a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<ExitCode> {
    if !nix::unistd::geteuid().is_root() {
        bail!("gravity uninstall changes the host: run it as root");
    }
    let dir = &global.state_dir;
    if !dir.exists() {
        eprintln!("nothing is installed in {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let interactive = crate::install::prompt::interactive(args.yes);
    if !args.yes {
        if !interactive {
            bail!(
                "uninstalling removes the cluster and all its data in {}: pass --yes to confirm",
                dir.display()
            );
        }
        if !crate::install::prompt::ask(&format!(
            "Remove the cluster and ALL its data in {}? [y/N] ",
            dir.display()
        ))? {
            bail!("nothing was removed");
        }
    }
    let journal = Journal::new(dir);
    let lock = journal.lock()?;
    let layout = StateDir::new(dir);
    uninstall(&mut Effects::host(), &layout, args.remove_user)?;
    drop(lock);
    state::remove_dir(dir)?;
    eprintln!(
        "uninstalled: planet, its service and {} are gone",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Everything but removing the state directory itself (which holds the lock).
pub fn uninstall(
    effects: &mut Effects,
    layout: &StateDir,
    remove_user: bool,
) -> anyhow::Result<()> {
    let dir = layout.root();
    // Teardown first, while planet runs: what its Kubernetes put on the host goes with it.
    effects.planet.teardown(dir)?;
    phases_api::remove_unit(effects)?;
    phases_api::unlink_from_path(effects, layout);
    for kept in phases_api::remove_volumes(effects, layout)? {
        eprintln!(
            "kept {}: it holds data; remove it yourself when no longer needed",
            kept.display()
        );
    }
    phases_api::restore_kernel(effects, layout)?;
    if remove_user {
        phases_api::remove_user(effects, layout)?;
    }
    Ok(())
}
