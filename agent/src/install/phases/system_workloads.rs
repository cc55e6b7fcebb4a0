//! Starts the cluster's own workloads (CoreDNS, and the pod network's right to list nodes) once
//! their images are in the registry, and waits until they are ready.

use std::time::Duration;

use crate::install::Ctx;
use operation::{Phase, Report};

pub struct SystemWorkloads;

/// The first pull and start of CoreDNS; minutes only on an emulated CPU.
const TIMEOUT: Duration = Duration::from_secs(600);

impl Phase<Ctx> for SystemWorkloads {
    fn name(&self) -> &'static str {
        "system-workloads"
    }
    fn description(&self) -> &'static str {
        "Start the cluster's DNS (CoreDNS)"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        if !ctx.runs_kubernetes() {
            out.say("this node runs no Kubernetes");
            return Ok(());
        }
        ctx.effects
            .planet
            .start_system_workloads(&ctx.params.state_dir, TIMEOUT)?;
        out.say(format!(
            "CoreDNS is ready, serving the cluster's DNS at {}",
            crate::node::kubernetes::CLUSTER_DNS
        ));
        Ok(())
    }
    fn rollback(&self, _ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        // The workloads live in etcd and planet; planet's teardown stops them.
        Ok(())
    }
}
