//! Waits until planet is healthy: its units, etcd, the registry and (where the image has it)
//! Kubernetes.

use std::time::Duration;

use crate::install::Ctx;
use operation::{Phase, Report};

pub struct Health;

/// Includes Kubernetes' first start (apiserver ready, node Ready): minutes on a slow machine
/// (six in a QEMU guest without KVM, whose controllers restart until RBAC is bootstrapped).
const HEALTH_TIMEOUT: Duration = Duration::from_secs(900);

impl Phase<Ctx> for Health {
    fn name(&self) -> &'static str {
        "health"
    }
    fn description(&self) -> &'static str {
        "Wait for planet's services to be healthy"
    }
    fn run(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        ctx.effects
            .planet
            .wait_healthy(&ctx.params.state_dir, HEALTH_TIMEOUT)
    }
    fn rollback(&self, _ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        Ok(())
    }
}
