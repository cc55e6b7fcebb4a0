//! Drain before the restart (the node's pods stop gracefully), uncordon after the health gate.

use operation::{Phase, Report};

use crate::upgrade::Ctx;

pub struct Drain;

impl Phase<Ctx> for Drain {
    fn name(&self) -> &'static str {
        "drain"
    }
    fn description(&self) -> &'static str {
        "Drain the node"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        if !ctx.node.runs_kubernetes() {
            return Ok(());
        }
        drain(ctx)?;
        out.say(format!(
            "node {} is drained",
            ctx.node.params.node.node_name
        ));
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        uncordon(ctx)
    }
}

pub struct Uncordon;

impl Phase<Ctx> for Uncordon {
    fn name(&self) -> &'static str {
        "uncordon"
    }
    fn description(&self) -> &'static str {
        "Let pods run on the node again"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        uncordon(ctx)?;
        out.say(format!(
            "node {} is schedulable",
            ctx.node.params.node.node_name
        ));
        Ok(())
    }
    fn rollback(&self, _ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Drains the node before a restart of planet (the upgrade's, or its rollback's); a joined
/// node asks the first node, which holds the cluster's admin credentials.
pub(super) fn drain(ctx: &Ctx) -> anyhow::Result<()> {
    if let Some(cluster) = &ctx.cluster {
        cluster.drain()?;
        return Ok(());
    }
    let (state_dir, node) = (&ctx.node.params.state_dir, &ctx.node.params.node.node_name);
    // Alone, the node's pods have nowhere to go: they are deleted (a disruption budget would
    // block an eviction for ever), and come back after the restart.
    let evict = ctx.node.effects.planet.node_count(state_dir)? > 1;
    ctx.node.effects.planet.drain(state_dir, node, evict)
}

pub(super) fn uncordon(ctx: &Ctx) -> anyhow::Result<()> {
    if !ctx.node.runs_kubernetes() {
        return Ok(());
    }
    if let Some(cluster) = &ctx.cluster {
        cluster.uncordon()?;
        return Ok(());
    }
    ctx.node
        .effects
        .planet
        .uncordon(&ctx.node.params.state_dir, &ctx.node.params.node.node_name)
}
