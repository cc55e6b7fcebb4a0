//! Waits until Kubernetes' control plane in planet answers: kube-apiserver ready (`/readyz`).

use std::time::Duration;

use crate::install::Ctx;
use operation::{Phase, Report};

pub struct ControlPlane;

/// The apiserver's first start migrates its storage in etcd: allow for a slow disk.
const TIMEOUT: Duration = Duration::from_secs(300);

impl Phase<Ctx> for ControlPlane {
    fn name(&self) -> &'static str {
        "control-plane"
    }
    fn description(&self) -> &'static str {
        "Wait for the Kubernetes control plane"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        if !ctx.runs_kubernetes() {
            out.say("this node runs no Kubernetes");
            return Ok(());
        }
        ctx.effects
            .planet
            .wait_apiserver(&ctx.params.state_dir, TIMEOUT)?;
        out.say("kube-apiserver is ready");
        Ok(())
    }
    fn rollback(&self, _ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        Ok(())
    }
}
