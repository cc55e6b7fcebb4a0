//! The host service that keeps planet running: a systemd unit where systemd is PID 1.

use systemd::manager::ServiceManager;
use systemd::units::{PLANET_UNIT, PlanetUnit};

use crate::install::Ctx;
use operation::{Phase, Report};

pub struct Service;

impl Phase<Ctx> for Service {
    fn name(&self) -> &'static str {
        "service"
    }
    fn description(&self) -> &'static str {
        "Install the planet host service"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let Some(services) = &ctx.effects.services else {
            out.say("systemd is not PID 1 here: gravity supervises planet itself");
            return Ok(());
        };
        let unit = PlanetUnit {
            gravity: ctx.layout.gravity(),
            state_dir: ctx.params.state_dir.clone(),
            cluster: ctx.manifest().metadata.name.clone(),
            cluster_version: ctx.manifest().metadata.resource_version.clone(),
        };
        services.install_unit(PLANET_UNIT, &unit.render())?;
        services.daemon_reload()?;
        services.enable(PLANET_UNIT)?;
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        remove_unit(ctx.effects.services.as_deref())
    }
}

/// Stops, disables and removes the planet unit, if there is one.
pub fn remove_unit(services: Option<&dyn ServiceManager>) -> anyhow::Result<()> {
    let Some(services) = services else {
        return Ok(());
    };
    if services.has_unit(PLANET_UNIT) {
        let _ = services.stop(PLANET_UNIT);
        let _ = services.disable(PLANET_UNIT);
        services.remove_unit(PLANET_UNIT)?;
        services.daemon_reload()?;
    }
    Ok(())
}
