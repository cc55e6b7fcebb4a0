//! Pushes the container images vendored in the cluster image (`registry/`, an OCI image layout)
//! into planet's registry, where pods pull them as `registry.local:5000/<repository>:<tag>`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use registry::push::{Auth, PushOptions, PushProgress};

use crate::install::Ctx;
use operation::{Phase, Report};

pub struct Images;

/// Planet's registry listens on the host network on this port.
pub const REGISTRY_PORT: u16 = 5000;
/// Uploads in flight at once: enough to overlap round trips, few enough to leave planet's other
/// services room on a small host.
const CONCURRENCY: usize = 4;
/// How often progress goes to the install log.
const LOG_EVERY: Duration = Duration::from_secs(5);

impl Phase<Ctx> for Images {
    fn name(&self) -> &'static str {
        "images"
    }
    fn description(&self) -> &'static str {
        "Push vendored images to the cluster registry"
    }
    fn run(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        let layout = ctx.image.path(cluster_image::layout::REGISTRY_DIR);
        if !layout.join("index.json").exists() {
            tracing::info!("the cluster image vendors no container images");
            return Ok(());
        }
        push(&layout, &registry_address(ctx.params.advertise_ip))
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

/// Pushes every image of the layout. Blobs the registry already has are skipped, so running
/// the phase again (a resumed install) sends only what is missing. The async runtime lives
/// inside this call only: the rest of gravity stays single-threaded.
pub fn push(layout: &Path, registry: &str) -> anyhow::Result<()> {
    let last = std::cell::Cell::new(Instant::now());
    let progress = |p: &PushProgress| {
        if last.get().elapsed() >= LOG_EVERY || p.blobs_done == p.blobs_total {
            last.set(Instant::now());
            tracing::info!(
                blobs = format!("{}/{}", p.blobs_done, p.blobs_total),
                bytes = format!(
                    "{}/{}",
                    cluster_image::units::Size(p.bytes_done),
                    cluster_image::units::Size(p.bytes_total)
                ),
                "pushing vendored images"
            );
        }
    };
    let report = registry::push_layout(
        layout,
        &PushOptions {
            registry: registry.to_string(),
            plain_http: true,
            auth: Auth::Anonymous,
            concurrency: CONCURRENCY,
            progress: Some(&progress),
        },
    )
    .with_context(|| {
        format!(
            "cannot push the vendored images to planet's registry at {registry}: check it with `gravity planet status`, then `gravity install --resume`"
        )
    })?;
    tracing::info!(
        images = report.images.len(),
        uploaded = report.uploaded,
        already_there = report.existing,
        mounted = report.mounted,
        bytes = %cluster_image::units::Size(report.bytes_uploaded),
        "pushed vendored images"
    );
    for name in &report.images {
        tracing::info!(image = %name, "in the cluster registry");
    }
    Ok(())
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
