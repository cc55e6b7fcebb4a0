//! Restarts planet on the new image and configuration, run by the new gravity; the rollback
//! restarts it on the previous ones and waits until the node is healthy again.

use std::time::{Duration, Instant};

use operation::{Phase, Report, failpoint};
use systemd::units::{PLANET_UNIT, PlanetUnit};

use crate::install;
use crate::upgrade::{Ctx, previous};

pub struct Restart;

/// Stopping includes the pods' containers; starting, planet's systemd reaching `running`.
const STOP_TIMEOUT: Duration = Duration::from_secs(300);
const START_TIMEOUT: Duration = Duration::from_secs(300);
/// A stop this long waited for something that ignored SIGTERM: the journal says what.
const SLOW_STOP: Duration = Duration::from_secs(10);
/// The previous version comes back as a first start would: allow as long.
const HEALTHY_AGAIN: Duration = Duration::from_secs(900);

impl Phase<Ctx> for Restart {
    fn name(&self) -> &'static str {
        "restart"
    }
    fn description(&self) -> &'static str {
        "Restart planet on the new version"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let state_dir = ctx.node.params.state_dir.clone();
        release_leases(ctx, out);
        let (stopping, since) = (Instant::now(), std::time::SystemTime::now());
        ctx.node.effects.planet.stop(&state_dir, STOP_TIMEOUT)?;
        let stopped = stopping.elapsed();
        if stopped > SLOW_STOP {
            for line in ctx.node.effects.planet.stop_timeouts(&state_dir, since) {
                out.say(format!("planet's stop waited for: {line}"));
            }
        }
        failpoint(self.name(), "during");
        // The new gravity runs planet from now on (the previous one is in the saved copy).
        install::phases::agent::Agent.run(&mut ctx.node, out)?;
        let version = ctx.node.manifest().metadata.resource_version.clone();
        write_unit(ctx, &version)?;
        let starting = Instant::now();
        ctx.node.effects.planet.start(&state_dir, START_TIMEOUT)?;
        // Where a restart's time goes (a unit that ignores SIGTERM costs its stop timeout).
        out.say(format!(
            "planet runs the new version (stopped in {:.1}s, started in {:.1}s)",
            stopped.as_secs_f64(),
            starting.elapsed().as_secs_f64()
        ));
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let state_dir = ctx.node.params.state_dir.clone();
        let operation = super::operation_id(ctx)?;
        // Drained as before the upgrade's own restart: pods stopped by the restart would count
        // as ready until kubelet finds them dead, and the gate below would pass on that.
        if ctx.node.runs_kubernetes()
            && let Err(e) = super::drain::drain(ctx)
        {
            out.say(format!(
                "node {} is not drained ({e:#}): the restart stops its pods",
                ctx.node.params.node.node_name
            ));
        }
        release_leases(ctx, out);
        let planet = &ctx.node.effects.planet;
        planet.stop(&state_dir, STOP_TIMEOUT)?;
        previous::restore(&ctx.node.layout, &operation, previous::PLANET)?;
        let version = ctx.from.version.clone();
        write_unit(ctx, &version)?;
        let planet = &ctx.node.effects.planet;
        planet.start(&state_dir, START_TIMEOUT)?;
        if ctx.cluster.is_some() {
            super::health::joined_node(ctx, HEALTHY_AGAIN)?;
            super::drain::uncordon(ctx)?;
            out.say(format!("planet runs {} again", ctx.from.version));
            return Ok(());
        }
        if ctx.node.runs_kubernetes() {
            planet.wait_apiserver(&state_dir, HEALTHY_AGAIN)?;
            planet.wait_node_ready(&state_dir, HEALTHY_AGAIN)?;
            // The previous version's CoreDNS, which needs the node schedulable.
            planet.uncordon(&state_dir, &ctx.node.params.node.node_name)?;
            planet.start_system_workloads(&state_dir, HEALTHY_AGAIN)?;
        }
        planet.wait_healthy(&state_dir, HEALTHY_AGAIN)?;
        // The agent runs the previous gravity again too (the serve phase's rollback restarted
        // it on the new one).
        let (version, image_dir) = (ctx.from.version.clone(), ctx.from.params.image_dir.clone());
        super::serve::restart_agent(ctx, &version, &image_dir)?;
        out.say(format!("planet runs {} again", ctx.from.version));
        Ok(())
    }
}

/// Alone in its cluster, the node's next scheduler and controller-manager would wait a lease
/// (a minute) before scheduling anything; releasing them only saves time, so a failure is said
/// and the restart goes on.
fn release_leases(ctx: &Ctx, out: &mut Report<'_>) {
    if !ctx.node.runs_kubernetes() {
        return;
    }
    let (planet, state_dir) = (&ctx.node.effects.planet, &ctx.node.params.state_dir);
    let alone = planet.node_count(state_dir).is_ok_and(|n| n == 1);
    if alone && let Err(e) = planet.release_leader_leases(state_dir) {
        out.say(format!(
            "the controllers' leader leases stay ({e:#}): their next start waits for them"
        ));
    }
}

/// The host unit names the cluster's version: rewritten with it where systemd runs planet.
fn write_unit(ctx: &Ctx, version: &str) -> anyhow::Result<()> {
    let Some(services) = &ctx.node.effects.services else {
        return Ok(());
    };
    let unit = PlanetUnit {
        gravity: ctx.node.layout.gravity(),
        state_dir: ctx.node.params.state_dir.clone(),
        cluster: ctx.node.manifest().metadata.name.clone(),
        cluster_version: version.to_string(),
    };
    services.install_unit(PLANET_UNIT, &unit.render())?;
    services.daemon_reload()?;
    Ok(())
}
