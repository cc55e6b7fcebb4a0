//! Pushing the vendored container images into planet's registry.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use registry::push::{Auth, PushOptions, PushProgress};

/// Uploads in flight at once: enough to overlap round trips, few enough to leave planet's other
/// services room on a small host.
const CONCURRENCY: usize = 4;
/// How often progress goes to the install log.
const LOG_EVERY: Duration = Duration::from_secs(5);

pub trait ImagePush {
    /// Pushes every image of the OCI layout at `layout` to `registry` (`host:port`); progress
    /// and the result go to `say`.
    fn push(
        &self,
        layout: &Path,
        registry: &str,
        say: &mut dyn FnMut(String),
    ) -> anyhow::Result<()>;
}

/// Over the network, to the registry in planet.
pub struct RegistryPush;

impl ImagePush for RegistryPush {
    fn push(
        &self,
        layout: &Path,
        registry: &str,
        say: &mut dyn FnMut(String),
    ) -> anyhow::Result<()> {
        push(layout, registry, say)
    }
}

/// Pushes every image of the layout. Blobs the registry already has are skipped, so running
/// the phase again (a resumed install) sends only what is missing. The async runtime lives
/// inside this call only: the rest of gravity stays single-threaded.
fn push(layout: &Path, registry: &str, say: &mut dyn FnMut(String)) -> anyhow::Result<()> {
    let last = std::cell::Cell::new(Instant::now());
    let say = std::cell::RefCell::new(say);
    let progress = |p: &PushProgress| {
        if last.get().elapsed() >= LOG_EVERY || p.blobs_done == p.blobs_total {
            last.set(Instant::now());
            (say.borrow_mut())(format!(
                "pushing vendored images: {}/{} blobs, {}/{}",
                p.blobs_done,
                p.blobs_total,
                cluster_image::units::Size(p.bytes_done),
                cluster_image::units::Size(p.bytes_total)
            ));
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
    let say = say.into_inner();
    say(format!(
        "pushed {} images: {} blobs uploaded ({}), {} already there, {} mounted",
        report.images.len(),
        report.uploaded,
        cluster_image::units::Size(report.bytes_uploaded),
        report.existing,
        report.mounted
    ));
    for name in &report.images {
        say(format!("in the cluster registry: {name}"));
    }
    Ok(())
}
