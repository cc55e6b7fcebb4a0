//! The first node's join agent serves the new version (its image, by the new gravity) before
//! the other nodes fetch it; the rollback has it serve the previous one again.

use anyhow::Context;
use operation::{Phase, Report};

use crate::install::state::{self, ClusterRecord};
use crate::upgrade::Ctx;

pub struct Serve;

impl Phase<Ctx> for Serve {
    fn name(&self) -> &'static str {
        "serve"
    }
    fn description(&self) -> &'static str {
        "Serve the new version to the other nodes"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let version = ctx.node.manifest().metadata.resource_version.clone();
        let image_dir = ctx.node.params.image_dir.clone();
        if restart_agent(ctx, &version, &image_dir)? {
            out.say(format!("the join agent serves {version}"));
        }
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let (version, image_dir) = (ctx.from.version.clone(), ctx.from.params.image_dir.clone());
        if restart_agent(ctx, &version, &image_dir)? {
            out.say(format!("the join agent serves {version} again"));
        }
        Ok(())
    }
}

/// Records `version` and its image as the installed ones (the agent serves what the record
/// says) and restarts the agent on this node's gravity; false where the node runs none.
pub(super) fn restart_agent(
    ctx: &Ctx,
    version: &str,
    image_dir: &std::path::Path,
) -> anyhow::Result<bool> {
    let layout = &ctx.node.layout;
    if !layout.agent_cert().exists() {
        return Ok(false);
    }
    let record = ClusterRecord::load(layout)?.context("cluster.json is gone")?;
    let record = ClusterRecord {
        version: version.to_string(),
        image_dir: image_dir.to_path_buf(),
        ..record
    };
    state::write_record(&layout.cluster_record(), &record)?;
    let unit = systemd::units::AgentUnit {
        gravity: layout.gravity(),
        state_dir: layout.root().to_path_buf(),
        cluster: record.name.clone(),
        cluster_version: record.version.clone(),
    };
    ctx.node.effects.agent.start(layout, &unit)?;
    Ok(true)
}
