//! The preflight checks of a node, as every command runs them.

use std::path::Path;

use cluster_image::manifest::{Manifest, NodeProfile};

/// Runs the checks on the real host, custom check scripts in `image_dir` (where their
/// `file://` scripts were when the image was built): `gravity check` and the install's checks
/// phase alike.
pub fn run_checks(
    manifest: &Manifest,
    profile: &NodeProfile,
    opts: &preflight::Options,
    image_dir: &Path,
) -> preflight::Report {
    let runner = preflight::BashRunner {
        workdir: Some(image_dir.to_path_buf()),
        ..preflight::BashRunner::default()
    };
    let mut changer = preflight::RealChanger::new(preflight::Host::real());
    preflight::run_with(manifest, profile, opts, &runner, &mut changer)
}
