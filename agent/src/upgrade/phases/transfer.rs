//! The new version's cluster image reaches every joined node before the first node changes
//! anything: the first node's agent serves it staged beside the installed one, and each node
//! fetches it at once ([`super::nodes::transfer`]), checked against its index. A node's own
//! step later finds it in place. The rollback stops serving it; what the nodes fetched stays
//! for a retry, until `gravity gc` there.

use operation::{Phase, Report};
use rpc::agent::rollout::Rollout;

use crate::upgrade::Ctx;

pub struct Transfer;

impl Phase<Ctx> for Transfer {
    fn name(&self) -> &'static str {
        "transfer"
    }
    fn description(&self) -> &'static str {
        "Transfer the new version's image to the other nodes"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        super::nodes::transfer(ctx, out)
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        unstage(ctx)
    }
}

/// The first node's agent no longer serves the new version beside the installed one.
pub(super) fn unstage(ctx: &Ctx) -> anyhow::Result<()> {
    Ok(Rollout::of(&ctx.node.layout.joined_nodes()).unstage()?)
}
