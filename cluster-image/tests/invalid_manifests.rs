//! Every manifest under fixtures/invalid fails with the message and position its last line expects:
//! `# expect: LINE:COLUMN PATH: MESSAGE`.

use std::path::Path;

use cluster_image::manifest::{ManifestError, Offline, load_file};

#[test]
fn each_invalid_manifest_fails_where_and_how_expected() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut cases = 0;
    let mut failures = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    {
        let text = std::fs::read_to_string(path).unwrap();
        let expected = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no '# expect:' line", path.display()));
        cases += 1;
        let got = match load_file(path, &Offline) {
            Ok(_) => "valid".to_string(),
            Err(e @ ManifestError::Read { .. }) => panic!("{e}"),
            Err(ManifestError::Invalid { diagnostics, .. }) => {
                assert_eq!(diagnostics.len(), 1, "{}: {diagnostics:#?}", path.display());
                let d = &diagnostics[0];
                assert_eq!(d.file, *path);
                let path_part = if d.path.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", d.path)
                };
                format!("{}:{} {path_part}{}", d.line, d.column, d.message)
                    .replace(&format!("{}/", dir.display()), "")
            }
        };
        if got != expected {
            failures.push(format!(
                "{}\n  expected: {expected}\n       got: {got}",
                path.display()
            ));
        }
    }
    assert!(cases >= 30, "only {cases} invalid manifests");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn all_problems_are_reported_at_once_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.yaml");
    std::fs::write(
        &path,
        "apiVersion: cluster.gravitational.io/v2\nkind: Cluster\nmetadata:\n  name: bad name\n  resourceVersion: one\nsystemOptions:\n  docker:\n    storageDriver: aufs\n",
    )
    .unwrap();
    let err = load_file(&path, &Offline).unwrap_err();
    let lines: Vec<_> = err
        .diagnostics()
        .iter()
        .map(|d| (d.line, d.path.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            (4, "metadata.name"),
            (5, "metadata.resourceVersion"),
            (8, "systemOptions.docker.storageDriver")
        ]
    );
    let shown = err.to_string();
    assert!(
        shown.contains("is not a valid Image Manifest (3 problems):"),
        "{shown}"
    );
}

#[test]
fn a_manifest_without_profiles_gets_one_profile_and_one_flavor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.yaml");
    std::fs::write(
        &path,
        "apiVersion: cluster.gravitational.io/v2\nkind: Cluster\nmetadata:\n  name: tiny\n  resourceVersion: 0.1.0\n",
    )
    .unwrap();
    let m = load_file(&path, &Offline).unwrap().manifest;
    let profiles = m.profiles();
    assert_eq!(profiles.len(), 1);
    assert_eq!(profiles[0].name, "node");
    let flavor = m.default_flavor();
    assert_eq!(flavor.nodes.len(), 1);
    assert_eq!(
        (flavor.nodes[0].profile.as_str(), flavor.nodes[0].count),
        ("node", 1)
    );
    assert_eq!(m.image_stem(), "tiny-0.1.0");
}
