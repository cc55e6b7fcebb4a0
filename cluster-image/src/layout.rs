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

/// Where a custom planet image (`systemOptions.baseImage: NAME:VERSION`) sits under
/// [`PLANET_DIR`]: `NAME/VERSION`, a registry-style name keeping its `/`s (and a registry's
/// `:port`). `None` for a reference without a version or with a component that is not a plain
/// name (`..`, empty), which could not name a path inside the image safely.
pub fn custom_planet_dir(reference: &str) -> Option<String> {
    let (name, version) = reference.rsplit_once(':')?;
    let plain = |s: &str, extra: &[char]| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c) || extra.contains(&c))
    };
    (plain(version, &[]) && name.split('/').all(|c| plain(c, &[':'])))
        .then(|| format!("{name}/{version}"))
}

#[cfg(test)]
mod tests {
    use super::custom_planet_dir;

    #[test]
    fn custom_planet_paths() {
        assert_eq!(
            custom_planet_dir("custom-planet:1.0.0").as_deref(),
            Some("custom-planet/1.0.0")
        );
        assert_eq!(
            custom_planet_dir("registry.example.com:5000/acme/planet:2.0.0").as_deref(),
            Some("registry.example.com:5000/acme/planet/2.0.0")
        );
        for bad in [
            "noversion",
            "../x:1",
            "a//b:1",
            "a:",
            ":1",
            "a:../1",
            "host:5000/planet",
        ] {
            assert_eq!(custom_planet_dir(bad), None, "{bad}");
        }
    }
}
