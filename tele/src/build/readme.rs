//! The README for the person installing the cluster image.

use cluster_image::Manifest;

pub fn text(m: &Manifest, installable: bool) -> String {
    let name = &m.metadata.name;
    let version = &m.metadata.resource_version;
    let mut out = format!(
        "{name} {version}\n{}\n\n",
        "=".repeat(name.len() + version.len() + 1)
    );
    if let Some(d) = &m.metadata.description {
        out.push_str(d.trim());
        out.push_str("\n\n");
    }
    out.push_str(
        "This directory is a self-contained Kubernetes cluster image. Nothing needs to be\n\
         installed on the host first, and nothing is downloaded during installation.\n\n\
         Check this host against the image's requirements (changes nothing):\n\n    \
         sudo ./run_preflight_checks\n\n",
    );
    if installable {
        out.push_str(
            "Install on the first host (choose a free uid for the `planet` service user):\n\n    \
             sudo ./install --service-uid=1001\n\n\
             If an install is interrupted, run it again with --resume; it continues where it\n\
             stopped. See what it did with `sudo ./gravity plan`.\n\n\
             Status:     sudo ./gravity status\n\
             Uninstall:  sudo ./uninstall\n\n",
        );
    } else {
        out.push_str(
            "This image carries no planet system container: it can be checked, not installed.\n\n",
        );
    }
    out.push_str(
        "Verify that no file of this image was damaged or changed:\n\n    ./gravity image verify\n\n\
         Every command explains itself with --help.\n",
    );
    out
}
