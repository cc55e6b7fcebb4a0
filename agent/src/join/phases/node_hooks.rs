//! The application's node hooks, run by the first node's agent as Jobs in the cluster for this
//! node: preNodeAdd before the node is set up, postNodeAdd once it is Ready. Undoing the join
//! runs preNodeRemove first, while the node still runs; the cluster runs postNodeRemove when it
//! forgets the node (the authenticate phase's undo).

use operation::{Phase, Report};
use rpc::agent::NodeHook;

use crate::join::plan::Ctx;

pub struct PreNodeAdd;
pub struct PostNodeAdd;

fn run(ctx: &Ctx, hook: NodeHook, out: &mut Report<'_>) -> anyhow::Result<()> {
    said(hook, ctx.client()?.node_hook(hook)?, out);
    Ok(())
}

fn said(hook: NodeHook, ran: bool, out: &mut Report<'_>) {
    if ran {
        out.say(format!("the application's {} hook ran", hook.name()));
    } else {
        out.say(format!("the application has no {} hook", hook.name()));
    }
}

impl Phase<Ctx> for PreNodeAdd {
    fn name(&self) -> &'static str {
        "pre-node-add"
    }
    fn description(&self) -> &'static str {
        "Run the application's preNodeAdd hook"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        run(ctx, NodeHook::PreNodeAdd, out)
    }
    fn rollback(&self, _ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        Ok(())
    }
}

impl Phase<Ctx> for PostNodeAdd {
    fn name(&self) -> &'static str {
        "post-node-add"
    }
    fn description(&self) -> &'static str {
        "Run the application's postNodeAdd hook"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        run(ctx, NodeHook::PostNodeAdd, out)
    }
    /// The node leaves: the application's preNodeRemove first (while the node still runs its
    /// pods), then the cluster drains it (cordoned, its pods evicted: their controllers start
    /// them elsewhere before it goes).
    fn rollback(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let client = ctx.client()?;
        let hook = NodeHook::PreNodeRemove;
        let Some(ran) = ctx.unless_forgotten(client.node_hook(hook), out)? else {
            return Ok(());
        };
        said(hook, ran, out);
        if ctx.unless_forgotten(client.drain(), out)? == Some(true) {
            out.say(format!("the cluster drained node {}", ctx.params.node_name));
        }
        Ok(())
    }
}
