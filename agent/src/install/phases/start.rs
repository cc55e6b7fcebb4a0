//! Starts planet under its supervisor (systemd, or gravity's own daemon).

use std::time::Duration;

use crate::install::Ctx;
use operation::{Phase, Report, failpoint};

pub struct Start;

/// Starting includes planet's own systemd reaching `running`.
const START_TIMEOUT: Duration = Duration::from_secs(300);

impl Phase<Ctx> for Start {
    fn name(&self) -> &'static str {
        "start"
    }
    fn description(&self) -> &'static str {
        "Start planet"
    }
    fn run(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        failpoint(self.name(), "during");
        ctx.effects
            .planet
            .start(&ctx.params.state_dir, START_TIMEOUT)?;
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        // Also what planet's Kubernetes put on the host.
        ctx.effects.planet.teardown(&ctx.params.state_dir)?;
        Ok(())
    }
}
