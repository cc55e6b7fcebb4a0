//! `gravity gc`: removes what finished upgrades left on this node (see [`crate::upgrade::gc`]).

use std::process::ExitCode;

use crate::cli::GlobalArgs;
use crate::state_dir::StateDir;
use crate::upgrade::gc;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only say what would be removed
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<ExitCode> {
    let layout = StateDir::new(&global.state_dir);
    let garbage = gc::find(&layout)?;
    if garbage.is_empty() {
        println!("nothing to remove: this node keeps only what its running version needs");
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    if !args.dry_run {
        gc::remove(&layout, &garbage)?;
    }
    for g in &garbage {
        println!(
            "{verb} {} ({} MiB): {}",
            g.what,
            g.bytes >> 20,
            g.path.display()
        );
    }
    let total: u64 = garbage.iter().map(|g| g.bytes).sum();
    println!("{verb} {} MiB in all", total >> 20);
    Ok(ExitCode::SUCCESS)
}
