//! What sits where in a cluster image (the tarball, and the directory it unpacks to).

/// The index of every file with its size and SHA-256; the first entry of the tarball.
pub const INDEX: &str = "index.json";
/// The agent binary, static, run by the person installing.
pub const GRAVITY_BIN: &str = "gravity";
/// The resolved Image Manifest.
pub const MANIFEST: &str = "app.yaml";
/// A README for the person installing.
pub const README: &str = "README";
/// Everything that was in the manifest's directory at build time.
pub const RESOURCES_DIR: &str = "resources";
/// The planet system container image (`planet.erofs` + `planet.json`).
pub const PLANET_DIR: &str = "planet";
/// Vendored container images as an OCI image layout.
pub const REGISTRY_DIR: &str = "registry";

/// The executable scripts at the top level and the `gravity` subcommand each runs.
pub const SCRIPTS: &[(&str, &str)] = &[
    ("install", "install"),
    ("upgrade", "upgrade"),
    ("uninstall", "uninstall"),
    ("run_preflight_checks", "check"),
];

/// The text of a top-level script: it runs `gravity <subcommand>` from the image directory. It
/// does not `cd` there, so relative paths in arguments (`--values=../custom.yaml`) keep working.
pub fn script(subcommand: &str) -> String {
    format!(
        "#!/bin/sh\n# Runs `gravity {subcommand}` from this cluster image; arguments are passed through.\nexec \"$(dirname \"$0\")/gravity\" {subcommand} \"$@\"\n"
    )
}
