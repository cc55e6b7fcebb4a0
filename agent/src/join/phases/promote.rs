//! On a control plane node, once its planet runs: the cluster promotes its etcd learner to a
//! voting member when it has caught up (and removes it if it never does). Undone while planet
//! still runs: the member leaves first, since with two members one stopped first would leave
//! the other without the quorum to remove it.

use operation::{Phase, Report};

use crate::install::state::{ClusterRecord, read_versioned};
use crate::join::plan::Ctx;

pub struct Promote;

/// Whether this node's record says it runs the control plane.
pub fn control_plane_node(ctx: &Ctx) -> bool {
    read_versioned::<ClusterRecord>(&ctx.layout.join_record())
        .ok()
        .flatten()
        .and_then(|r| r.node.joined)
        .is_some_and(|j| j.control_plane_node())
}

impl Phase<Ctx> for Promote {
    fn name(&self) -> &'static str {
        "promote"
    }
    fn description(&self) -> &'static str {
        "Make this node's etcd member a voting one"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        if !control_plane_node(ctx) {
            out.say("a worker: no etcd member");
            return Ok(());
        }
        ctx.client()?.promote()?;
        out.say("this node's etcd member caught up and votes");
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        if control_plane_node(ctx)
            && ctx.unless_forgotten(ctx.client()?.remove_member(), out)? == Some(true)
        {
            out.say("removed this node's etcd member from the cluster");
        }
        Ok(())
    }
}
