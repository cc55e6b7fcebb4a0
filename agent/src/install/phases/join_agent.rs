//! The join agent: its serving certificate from the cluster CA, the install's join token,
//! and the host service that keeps it answering, so that `gravity status` can print the
//! command other hosts join with.

use std::time::Duration;

use anyhow::Context;
use systemd::units::AgentUnit;

use crate::install::{Ctx, state};
use crate::join::command;
use operation::{Phase, Report};

pub struct JoinAgent;

/// The install's token: valid for a day, like kubeadm's; `gravity token create` makes more.
const INSTALL_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

impl Phase<Ctx> for JoinAgent {
    fn name(&self) -> &'static str {
        "join-agent"
    }
    fn description(&self) -> &'static str {
        "Start the agent other hosts join with"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        if !ctx.runs_kubernetes() {
            out.say("this planet image runs no Kubernetes and has no cluster CA: no join agent");
            return Ok(());
        }
        let layout = ctx.layout.clone();
        let pki = layout.pki();
        let read = |name: &str| {
            let path = pki.join(name);
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))
        };
        durable::create_private_dir(&layout.agent())
            .with_context(|| format!("cannot make {}", layout.agent().display()))?;
        // A resumed install keeps the certificate it made.
        if !layout.agent_cert().exists() || !layout.agent_key().exists() {
            let ca = pki::issue::Ca::from_pem(&read("ca.crt")?, &read("ca.key")?)?;
            let ips = [ctx.params.node.advertise_ip, [127, 0, 0, 1].into()];
            let (cert, key) = ca.agent_server(&ips, time::OffsetDateTime::now_utc())?;
            durable::write_atomic_mode(&layout.agent_key(), key.as_bytes(), 0o600)?;
            durable::write_atomic_mode(&layout.agent_cert(), cert.as_bytes(), 0o644)?;
        }
        if command::install_token(&layout).is_none() {
            let (token, _) = command::tokens(&layout).create(
                Some(INSTALL_TOKEN_TTL),
                false,
                "made by install",
            )?;
            durable::write_atomic_mode(&layout.join_token(), token.as_bytes(), 0o600)?;
        }
        let unit = AgentUnit {
            gravity: layout.gravity(),
            state_dir: ctx.params.state_dir.clone(),
            cluster: ctx.manifest().metadata.name.clone(),
            cluster_version: ctx.manifest().metadata.resource_version.clone(),
        };
        ctx.effects.agent.start(&layout, &unit)?;
        out.say(format!(
            "the join agent answers on {}:{}",
            ctx.params.node.advertise_ip,
            rpc::agent::PORT
        ));
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        ctx.effects.agent.remove(&ctx.layout)?;
        state::remove_dir(&ctx.layout.agent())?;
        Ok(())
    }
}
