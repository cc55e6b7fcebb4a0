//! Keeps a copy of the node's configuration, then writes the new version's: planet's
//! configuration, hooks, resources and Helm values, as the install's configure phase does. An
//! upgrade given no --values/--set keeps the install's values.

use operation::{Phase, Report};

use crate::install;
use crate::upgrade::{Ctx, previous};

pub struct Configure;

impl Phase<Ctx> for Configure {
    fn name(&self) -> &'static str {
        "configure"
    }
    fn description(&self) -> &'static str {
        "Keep the configuration, write the new version's"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let operation = super::operation_id(ctx)?;
        previous::save(&ctx.node.layout, &operation)?;
        out.say(format!(
            "the configuration before the upgrade: {}",
            ctx.node.layout.upgrade_previous().display()
        ));
        if crate::upgrade::params::keeps_installed_values(&ctx.node.params, &ctx.from.params) {
            ctx.node.params.values = previous::values_files(&ctx.node.layout)?;
        }
        install::phases::configure::Configure.run(&mut ctx.node, out)
    }
    fn rollback(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let operation = super::operation_id(ctx)?;
        // The new version's rollback hooks undo what its update hook did, once planet runs the
        // previous version again (the restart's rollback, before this one).
        let updated = ctx
            .journal
            .load()?
            .and_then(|plan| plan.phase("update-hook").map(|p| p.state))
            .is_some_and(|s| s != operation::PhaseState::Unstarted);
        if updated {
            for hook in ["rollback", "postRollback"] {
                crate::hooks::run(
                    &ctx.node.effects,
                    &ctx.node.layout,
                    hook,
                    &operation,
                    ctx.node.params.service_uid,
                    crate::hooks::TIMEOUT,
                    &mut |line| out.say(format!("{hook}: {line}")),
                )?;
            }
        }
        previous::restore(&ctx.node.layout, &operation, previous::PLANET)?;
        previous::restore(&ctx.node.layout, &operation, previous::APPLICATION)
    }
}
