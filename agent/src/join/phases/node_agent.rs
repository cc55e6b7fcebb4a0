//! The joined node's agent: a host service that follows the cluster's upgrades (see
//! [`crate::upgrade::node`]), as the first node's join agent does on that node.

use operation::{Phase, Report};
use systemd::units::AgentUnit;

use crate::join::plan::Ctx;

pub struct NodeAgent;

impl Phase<Ctx> for NodeAgent {
    fn name(&self) -> &'static str {
        "node-agent"
    }
    fn description(&self) -> &'static str {
        "Start the agent that follows the cluster's upgrades"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let layout = ctx.layout.clone();
        let node = ctx.node()?;
        let unit = AgentUnit {
            gravity: layout.gravity(),
            state_dir: layout.root().to_path_buf(),
            cluster: node.manifest().metadata.name.clone(),
            cluster_version: node.manifest().metadata.resource_version.clone(),
        };
        node.effects.agent.start(&layout, &unit)?;
        out.say("the node's agent follows the cluster's upgrades");
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        let layout = ctx.layout.clone();
        ctx.effects().agent.remove(&layout)
    }
}
