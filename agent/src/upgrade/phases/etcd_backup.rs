//! A snapshot of etcd before anything changes: the cluster's whole state, kept on the host
//! (in etcd's data volume) after the upgrade, whatever its outcome.

use operation::{Phase, Report};

use crate::upgrade::Ctx;

pub struct EtcdBackup;

/// etcd's data volume inside planet (`<state>/planet/data/etcd` on the host).
const SNAPSHOTS_INSIDE: &str = "/var/lib/etcd/snapshots";

impl Phase<Ctx> for EtcdBackup {
    fn name(&self) -> &'static str {
        "etcd-backup"
    }
    fn description(&self) -> &'static str {
        "Snapshot etcd"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        if !ctx.node.runs_kubernetes() {
            out.say("this node runs no Kubernetes: its etcd has no TLS client to snapshot it");
            return Ok(());
        }
        let name = format!("{}.db", super::operation_id(ctx)?);
        let host_dir = ctx.node.layout.planet().data().join("etcd/snapshots");
        std::fs::create_dir_all(&host_dir)?;
        ctx.node.effects.planet.etcd_snapshot(
            &ctx.node.params.state_dir,
            &format!("{SNAPSHOTS_INSIDE}/{name}"),
        )?;
        out.say(format!(
            "etcd's snapshot: {} (kept)",
            host_dir.join(name).display()
        ));
        Ok(())
    }
    fn rollback(&self, _ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        // The snapshot is kept: it is the state before the upgrade.
        Ok(())
    }
}
