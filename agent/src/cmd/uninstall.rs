//! `gravity uninstall` (and `gravity leave`): removes planet, its service, mounts and the state
//! directory; leaves the host as it was before the install. On a joined node it undoes the join,
//! which also has the cluster forget the node.

use crate::state_dir::StateDir;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::cli::GlobalArgs;
use crate::effects::Effects;
use crate::hooks;
use crate::install::phases_api;
use crate::install::progress::Progress;
use crate::install::state;
use operation::Journal;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also remove the `planet` user and group, if the install created them
    #[arg(long)]
    pub remove_user: bool,
    /// Do not run the application's preUninstall and uninstall hooks
    #[arg(long)]
    pub skip_hooks: bool,
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
    let layout = StateDir::new(dir);
    let join = Journal::new(dir)
        .load()?
        .filter(|p| p.kind == crate::join::plan::KIND);
    if let Some(join) = join {
        // A joined (or joining) node: the join's own undo, which also has the cluster forget
        // the node. The application's hooks are the cluster's, run where it was installed.
        let agent = join.params["addr"].as_str().unwrap_or("?").to_string();
        let mut progress = Progress::new(crate::join::plan::phases().len(), "undone");
        crate::join::plan::rollback(dir, Effects::host(), &mut progress).with_context(|| {
            format!(
                "this node could not leave the cluster at {agent} cleanly; fix what is said above and run the command again"
            )
        })?;
        state::remove_dir(dir)?;
        eprintln!(
            "left the cluster at {agent}: planet, its service and {} are gone",
            dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let journal = Journal::new(dir);
    let lock = journal.lock()?;
    let effects = &mut Effects::host();
    if args.skip_hooks {
        eprintln!("the preUninstall and uninstall hooks are skipped (--skip-hooks)");
    } else {
        uninstall_hooks(effects, &layout)?;
    }
    uninstall(effects, &layout, args.remove_user)?;
    drop(lock);
    state::remove_dir(dir)?;
    eprintln!(
        "uninstalled: planet, its service and {} are gone",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The application's preUninstall then uninstall hooks, while its cluster still runs; a
/// failed hook stops the uninstall before anything is removed.
fn uninstall_hooks(effects: &Effects, layout: &StateDir) -> anyhow::Result<()> {
    let defined: Vec<&str> = ["preUninstall", "uninstall"]
        .into_iter()
        .filter(|h| matches!(hooks::saved(layout, h), Ok(Some(_))))
        .collect();
    if defined.is_empty() {
        return Ok(());
    }
    if planet::status::Status::running_init_pid(layout.root()).is_none() {
        eprintln!(
            "planet is not running: the {} hooks cannot run and are skipped",
            defined.join(" and ")
        );
        return Ok(());
    }
    for hook in defined {
        eprintln!("running the {hook} hook");
        hooks::run_now(effects, layout, hook, hooks::TIMEOUT, &mut hooks::to_stderr(hook))
            .context("the uninstall stopped before removing anything: `gravity uninstall --skip-hooks` removes the cluster without the hooks")?;
    }
    Ok(())
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
    effects.agent.remove(layout)?;
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
