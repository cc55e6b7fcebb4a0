//! The new version's volumes that do not exist on the host yet, created as the install creates
//! them and recorded with the install's (so that the uninstall removes them too). planet starts
//! on the new configuration with every mount's source there. The rollback removes what this
//! upgrade created, where it is empty: data is never deleted.

use std::path::PathBuf;

use operation::{Phase, Report};

use crate::install::phases::volumes::Created;
use crate::install::{self, state};
use crate::upgrade::Ctx;

pub struct Volumes;

impl Phase<Ctx> for Volumes {
    fn name(&self) -> &'static str {
        "volumes"
    }
    fn description(&self) -> &'static str {
        "Create the new version's volumes"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let before: Created = state::read_record(&ctx.node.layout.volumes_record())?;
        install::phases::volumes::Volumes.run(&mut ctx.node, out)?;
        for dir in created_since(ctx, &before.dirs)? {
            out.say(format!("created {}", dir.display()));
        }
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        // The record as it was before the upgrade (the configure phase's rollback, next, puts
        // it back); none where there was none.
        let previous = ctx
            .node
            .layout
            .upgrade_previous()
            .join(crate::upgrade::previous::VOLUMES);
        let before: Created = state::read_record(&previous)?;
        for dir in created_since(ctx, &before.dirs)? {
            if ctx.node.effects.fs.remove_empty_tree(&dir) {
                out.say(format!("removed {}", dir.display()));
            } else {
                out.say(format!("kept {}: it holds data", dir.display()));
            }
        }
        Ok(())
    }
}

/// The directories the volumes record names now and `before` did not.
fn created_since(ctx: &Ctx, before: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let now: Created = state::read_record(&ctx.node.layout.volumes_record())?;
    Ok(now
        .dirs
        .into_iter()
        .filter(|d| !before.contains(d))
        .collect())
}
