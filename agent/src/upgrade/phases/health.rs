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
        if ctx.cluster.is_some() {
            joined_node(ctx, TIMEOUT)?;
            out.say(format!("node {} is Ready", ctx.node.params.node.node_name));
        } else if ctx.node.runs_kubernetes() {
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

/// A joined node's gate: planet's units (its etcd member among them on a control plane
/// node), its own apiserver where it runs one, and the node Ready.
pub(super) fn joined_node(ctx: &Ctx, timeout: Duration) -> anyhow::Result<()> {
    let state_dir = &ctx.node.params.state_dir;
    let planet = &ctx.node.effects.planet;
    let joined = ctx.node.params.node.joined.as_ref();
    if joined.is_some_and(|j| j.control_plane_node()) {
        planet.wait_apiserver(state_dir, timeout)?;
    }
    if ctx.node.runs_kubernetes() {
        planet.wait_node_ready(state_dir, timeout)?;
    }
    planet.wait_healthy(state_dir, timeout)
}
