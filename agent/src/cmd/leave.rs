//! `gravity leave`: remove this node from its cluster.

use std::process::ExitCode;

use anyhow::bail;

use crate::cli::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Leave even though this node installed the cluster (its control plane): the same as
    /// `gravity uninstall`
    #[arg(long)]
    pub force: bool,
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
    let joined = operation::Journal::new(&global.state_dir)
        .load()?
        .is_some_and(|p| p.kind == crate::join::plan::KIND);
    if !joined && !args.force {
        bail!(
            "this node installed the cluster and runs its control plane: without it the cluster ends. To remove it anyway, run `gravity leave --force` (the same as `gravity uninstall`)"
        );
    }
    super::uninstall::run(
        global,
        super::uninstall::Args {
            remove_user: args.remove_user,
            skip_hooks: args.skip_hooks,
            yes: args.yes,
        },
    )
}
