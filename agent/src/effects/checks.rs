//! Running a node's preflight checks (custom check scripts included).

use std::path::Path;

use cluster_image::manifest::{Manifest, NodeProfile};

pub trait NodeChecks {
    /// The checks of `profile`; custom check scripts run in `image_dir`.
    fn run(
        &self,
        manifest: &Manifest,
        profile: &NodeProfile,
        opts: &preflight::Options,
        image_dir: &Path,
    ) -> preflight::Report;
}

/// The checks measured on this host.
pub struct HostChecks;

impl NodeChecks for HostChecks {
    fn run(
        &self,
        manifest: &Manifest,
        profile: &NodeProfile,
        opts: &preflight::Options,
        image_dir: &Path,
    ) -> preflight::Report {
        crate::node::run_checks(manifest, profile, opts, image_dir)
    }
}
