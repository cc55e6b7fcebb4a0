//! Pushes the container images into planet's registry, where pods pull them as
//! `registry.local:5000/<repository>:<tag>` or by their original names (containerd's mirror):
//! first planet's own system images (pause, CoreDNS; an OCI layout inside the running planet
//! image), then those vendored in the cluster image (`registry/`, an OCI image layout).

use std::net::{IpAddr, SocketAddr};

use crate::install::Ctx;
use operation::{Phase, Report};

pub struct Images;

/// Planet's registry listens on the host network on this port.
pub const REGISTRY_PORT: u16 = 5000;

impl Phase<Ctx> for Images {
    fn name(&self) -> &'static str {
        "images"
    }
    fn description(&self) -> &'static str {
        "Push vendored images to the cluster registry"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let registry = registry_address(ctx.params.node.advertise_ip);
        if let Some(system) = ctx.effects.planet.system_images(&ctx.params.state_dir) {
            out.say("pushing planet's system images (pause, CoreDNS)");
            ctx.effects
                .images
                .push(&system, &registry, &mut |line| out.say(line))?;
        }
        let layout = ctx.image.path(cluster_image::layout::REGISTRY_DIR);
        if !layout.join("index.json").exists() {
            out.say("the cluster image vendors no container images");
            return Ok(());
        }
        ctx.effects
            .images
            .push(&layout, &registry, &mut |line| out.say(line))
    }
    fn rollback(&self, _ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        // Pushed images live in the registry's data volume, removed with the state directory.
        Ok(())
    }
}

/// `host:port` of planet's registry as seen from this host (IPv6 in brackets).
pub fn registry_address(ip: IpAddr) -> String {
    SocketAddr::new(ip, REGISTRY_PORT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_address_brackets_ipv6() {
        assert_eq!(
            registry_address("10.0.0.5".parse().unwrap()),
            "10.0.0.5:5000"
        );
        assert_eq!(
            registry_address("fd00::5".parse().unwrap()),
            "[fd00::5]:5000"
        );
    }
}
