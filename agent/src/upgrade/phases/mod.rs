//! The upgrade phases, one file each, in the order they run; some are the install's own.

mod checks;
mod configure;
mod drain;
mod etcd_backup;
mod finish;
mod health;
mod nodes;
mod planet_image;
mod restart;
mod serve;
mod transfer;
mod volumes;
mod workloads;

use super::Ctx;
use crate::install;
use crate::install::phases::{hooks, images, values};
use operation::{Phase, Report};

pub fn all() -> Vec<Box<dyn Phase<Ctx>>> {
    vec![
        Box::new(checks::Checks),
        Box::new(etcd_backup::EtcdBackup),
        Box::new(transfer::Transfer),
        Box::new(planet_image::PlanetImage),
        Box::new(configure::Configure),
        Box::new(volumes::Volumes),
        Box::new(Reuse(images::Images)),
        Box::new(drain::Drain),
        Box::new(restart::Restart),
        Box::new(health::Health),
        Box::new(drain::Uncordon),
        Box::new(workloads::SystemWorkloads),
        Box::new(serve::Serve),
        Box::new(nodes::Nodes),
        Box::new(Reuse(values::Values)),
        Box::new(Reuse(UPDATE)),
        Box::new(Reuse(POST_UPDATE)),
        Box::new(finish::Finish),
    ]
}

/// A joined node's own steps in a rolling upgrade ([`crate::upgrade::node`]), its own preflight
/// checks first; what the cluster does once (etcd's snapshot, images, hooks) is the first
/// node's.
pub fn node() -> Vec<Box<dyn Phase<Ctx>>> {
    vec![
        Box::new(checks::Checks),
        Box::new(planet_image::PlanetImage),
        Box::new(configure::Configure),
        Box::new(volumes::Volumes),
        Box::new(drain::Drain),
        Box::new(restart::Restart),
        Box::new(health::Health),
        Box::new(drain::Uncordon),
        Box::new(finish::Finish),
    ]
}

const UPDATE: hooks::Hook = hooks::Hook {
    phase: "update-hook",
    hook: "update",
    description: "Update the application (update hook)",
};
const POST_UPDATE: hooks::Hook = hooks::Hook {
    phase: "post-update-hook",
    hook: "postUpdate",
    description: "Run the postUpdate hook",
};

/// An install phase that does the same in an upgrade, over the new image. Its rollback is the
/// install's too: the configure phase's rollback puts back what they change.
struct Reuse<P>(P);

impl<P: Phase<install::Ctx>> Phase<Ctx> for Reuse<P> {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn description(&self) -> &'static str {
        self.0.description()
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        self.0.run(&mut ctx.node, out)
    }
    fn rollback(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        self.0.rollback(&mut ctx.node, out)
    }
}

/// The id of the running operation (the upgrade's plan), for hooks and the saved copy.
fn operation_id(ctx: &Ctx) -> anyhow::Result<String> {
    use anyhow::Context;
    ctx.journal
        .load()?
        .map(|plan| plan.id)
        .context("the upgrade's plan is gone")
}
