//! The spec's full example must parse and validate unchanged.

use std::path::{Path, PathBuf};

use cluster_image::manifest::{Offline, load_file};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sample-cluster/app.yaml")
}

#[test]
fn sample_manifest_validates() {
    let loaded = load_file(&sample(), &Offline).unwrap_or_else(|e| panic!("{e}"));
    let m = loaded.manifest;
    assert_eq!(m.metadata.name, "MyCluster");
    assert_eq!(m.metadata.resource_version, "1.2.3-alpha.1");
    assert_eq!(m.node_profiles.len(), 2);
    let db = &m.node_profiles[0];
    let r = db.requirements();
    assert_eq!(r.cpu.as_ref().unwrap().min, Some(8));
    assert_eq!(
        r.ram.as_ref().unwrap().min.as_ref().unwrap().value.0,
        32_000_000_000
    );
    assert_eq!(r.volumes.len(), 4);
    assert_eq!(r.volumes[3].mode.unwrap().0, 0o755);
    assert_eq!(r.devices[0].permissions().to_string(), "rw");
    assert_eq!(
        r.network.as_ref().unwrap().ports[0].ranges[1].to_string(),
        "10000-10005"
    );
    // file:// fields are inlined from the files next to the manifest.
    let eula = &m.installer.as_ref().unwrap().eula.as_ref().unwrap().source;
    assert!(!eula.starts_with("file://"), "{eula}");
    assert!(r.custom_checks[1].script.contains("/etc/hostname"));
    let post = &m.hooks.as_ref().unwrap().post_install.as_ref().unwrap().job;
    assert!(post.contains("kind: Job"));
    // the remote logo stays a URL.
    assert_eq!(m.logo.as_deref(), Some("http://example.com/logo.png"));
    let sources: Vec<&str> = loaded.sources.iter().map(|s| s.field.as_str()).collect();
    assert!(sources.contains(&"hooks.postInstall.job"), "{sources:?}");
    assert!(sources.contains(&"releaseNotes"));
}

#[test]
fn fixture_copy_matches_the_shared_fixture() {
    // The repository carries its own copy so CI needs nothing outside the checkout.
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/sample-cluster");
    if !shared.exists() {
        return;
    }
    let ours = sample().parent().unwrap().to_path_buf();
    for entry in std::fs::read_dir(&shared).unwrap() {
        let entry = entry.unwrap();
        let theirs = std::fs::read(entry.path()).unwrap();
        let mine = std::fs::read(ours.join(entry.file_name())).unwrap();
        assert_eq!(
            theirs,
            mine,
            "{:?} differs from the shared fixture",
            entry.file_name()
        );
    }
}

#[test]
fn resolved_manifest_round_trips() {
    let m = load_file(&sample(), &Offline).unwrap().manifest;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.yaml");
    std::fs::write(&path, m.to_yaml()).unwrap();
    let again = cluster_image::manifest::load_resolved(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m, again);
}
