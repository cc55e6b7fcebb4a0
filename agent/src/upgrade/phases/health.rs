//! The health gate after the restart: the apiserver and the node Ready where planet runs
//! Kubernetes (its drained node cannot run CoreDNS yet: the system-workloads phase checks the
//! rest of planet's health once it is uncordoned), planet's units otherwise. A failure here
//! rolls the upgrade back.

use std::time::Duration;

use operation::{Phase, Report};

use crate::upgrade::Ctx;

pub struct Health;

/// A restart on a new image is a first start for its overlay: as long as the install allows.
const TIMEOUT: Duration = Duration::from_secs(900);

impl Phase<Ctx> for Health {
    fn name(&self) -> &'static str {
        "health"
    }
    fn description(&self) -> &'static str {
        "Wait for the node to be healthy on the new version"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let state_dir = &ctx.node.params.state_dir;
        let planet = &ctx.node.effects.planet;
        if ctx.node.runs_kubernetes() {
            planet.wait_apiserver(state_dir, TIMEOUT)?;
            planet.wait_node_ready(state_dir, TIMEOUT)?;
            out.say(format!("node {} is Ready", ctx.node.params.node.node_name));
        } else {
            planet.wait_healthy(state_dir, TIMEOUT)?;
            out.say("planet's services are healthy");
        }
        Ok(())
    }
    fn rollback(&self, _ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        Ok(())
    }
}
