//! The new planet's system images (pause, CoreDNS) into the registry, its cluster workloads
//! (CoreDNS) applied and ready, and every one of planet's services healthy: the last part of
//! the health gate.

use std::time::Duration;

use operation::{Phase, Report};

use crate::install::phases::images::registry_address;
use crate::upgrade::Ctx;

pub struct SystemWorkloads;

const TIMEOUT: Duration = Duration::from_secs(600);

impl Phase<Ctx> for SystemWorkloads {
    fn name(&self) -> &'static str {
        "system-workloads"
    }
    fn description(&self) -> &'static str {
        "Update the cluster's DNS (CoreDNS)"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        if !ctx.node.runs_kubernetes() {
            return Ok(());
        }
        let state_dir = &ctx.node.params.state_dir;
        let effects = &ctx.node.effects;
        if let Some(system) = effects.planet.system_images(state_dir) {
            let registry = registry_address(ctx.node.params.node.advertise_ip);
            effects
                .images
                .push(&system, &registry, &mut |line| out.say(line))?;
        }
        effects.planet.start_system_workloads(state_dir, TIMEOUT)?;
        out.say("CoreDNS is ready");
        effects.planet.wait_healthy(state_dir, TIMEOUT)?;
        out.say("planet's services are healthy");
        Ok(())
    }
    fn rollback(&self, _ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        // The restart's rollback applies the previous version's.
        Ok(())
    }
}
