//! Joins with the token: the cluster's agent is trusted only if its CA matches the pinned
//! hash, and signs a client certificate for this node's new key, which never leaves it.

use anyhow::Context;
use operation::{Phase, Report, failpoint};

use crate::join::plan::Ctx;

pub struct Authenticate;

impl Phase<Ctx> for Authenticate {
    fn name(&self) -> &'static str {
        "authenticate"
    }
    fn description(&self) -> &'static str {
        "Join the cluster with the token, get this node's certificate"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let layout = &ctx.layout;
        if layout.node_cert().exists() && layout.node_key().exists() {
            out.say("kept this node's certificate from the earlier run");
            return Ok(());
        }
        let token = ctx.token.as_deref().context(
            "the node has no certificate yet: pass the token again (`gravity join --resume --token=...`)",
        )?;
        let client = rpc::agent::Client::new(&ctx.params.addr, &ctx.params.ca_hash, None)?;
        let joined = client.join(token, &ctx.params.node_name)?;
        failpoint(self.name(), "during");
        let dir = layout.agent();
        durable::create_private_dir(&dir)
            .with_context(|| format!("cannot make {}", dir.display()))?;
        durable::write_atomic_mode(&layout.cluster_ca(), joined.ca.as_bytes(), 0o644)?;
        durable::write_atomic_mode(&layout.node_key(), joined.key.as_bytes(), 0o600)?;
        // Last: its presence says the phase is done.
        durable::write_atomic_mode(&layout.node_cert(), joined.certificate.as_bytes(), 0o644)?;
        out.say(format!(
            "joined as node {}: this node's certificate is in {}",
            ctx.params.node_name,
            layout.node_cert().display()
        ));
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        if ctx.layout.node_cert().exists() {
            // The cluster forgets the node (and a single-use token works again).
            ctx.client()?.leave().with_context(|| {
                format!(
                    "the cluster at {} could not be told to forget node {}; on the first node, remove {} by hand",
                    ctx.params.addr,
                    ctx.params.node_name,
                    format_args!("<state>/agent/nodes/{}.json", ctx.params.node_name)
                )
            })?;
            out.say(format!("the cluster forgot node {}", ctx.params.node_name));
        }
        for path in [
            ctx.layout.node_cert(),
            ctx.layout.node_key(),
            ctx.layout.cluster_ca(),
        ] {
            crate::install::state::remove_file(&path)?;
        }
        crate::install::state::remove_dir(&ctx.layout.agent())?;
        Ok(())
    }
}
