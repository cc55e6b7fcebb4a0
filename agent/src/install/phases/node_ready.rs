//! Waits until kubelet has registered this node and it is Ready (its runtime and pod network
//! are up).

use std::time::Duration;

use crate::install::Ctx;
use operation::{Phase, Report};

pub struct NodeReady;

const TIMEOUT: Duration = Duration::from_secs(300);

impl Phase<Ctx> for NodeReady {
    fn name(&self) -> &'static str {
        "node-ready"
    }
    fn description(&self) -> &'static str {
        "Wait for the node to be Ready"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        if !ctx.runs_kubernetes() {
            out.say("this node runs no Kubernetes");
            return Ok(());
        }
        ctx.effects
            .planet
            .wait_node_ready(&ctx.params.state_dir, TIMEOUT)?;
        out.say(format!("node {} is Ready", ctx.params.node.node_name));
        Ok(())
    }
    fn rollback(&self, _ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        Ok(())
    }
}
