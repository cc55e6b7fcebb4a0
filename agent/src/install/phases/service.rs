//! The host service that keeps planet running: a systemd unit where systemd is PID 1.

use systemd::manager::{ServiceManager, Systemctl};
use systemd::units::{self, PLANET_UNIT, PlanetUnit};

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
    fn run(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        if !systemd::is_pid1() {
            tracing::info!("systemd is not PID 1 here: gravity supervises planet itself");
            return Ok(());
        }
        let unit = PlanetUnit {
            gravity: ctx.layout.gravity(),
            state_dir: ctx.params.state_dir.clone(),
            cluster: ctx.manifest().metadata.name.clone(),
            cluster_version: ctx.manifest().metadata.resource_version.clone(),
        };
        units::install(std::path::Path::new("/"), PLANET_UNIT, &unit.render())?;
        Systemctl.daemon_reload()?;
        Systemctl.enable(PLANET_UNIT)?;
        Ok(())
    }
    fn rollback(&self, _ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        remove_unit(&Systemctl)
    }
}

/// Stops, disables and removes the planet unit, if there is one.
pub fn remove_unit(manager: &dyn ServiceManager) -> anyhow::Result<()> {
    if !systemd::is_pid1() {
        return Ok(());
    }
    let path = std::path::Path::new("/")
        .join(units::UNIT_DIR)
        .join(PLANET_UNIT);
    if path.exists() {
        let _ = manager.stop(PLANET_UNIT);
        let _ = manager.disable(PLANET_UNIT);
        units::remove(std::path::Path::new("/"), PLANET_UNIT)?;
        manager.daemon_reload()?;
    }
    Ok(())
}
