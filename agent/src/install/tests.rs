//! The whole install plan, then its rollback, over the host effects' recording fakes: what the
//! install does to a host, in order, is pinned by `tests/golden/install-plan.log`. Needs no
//! root and touches nothing outside a temporary directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cluster_image::archive::{ImageIndex, IndexEntry, Kind};
use sha2::Digest;

use super::*;
use crate::effects::fake::{FakeHost, Log};

/// Phase boundaries and the lines phases say, in the same log as the effects.
pub(crate) struct Phases(pub(crate) Log);

impl Observer for Phases {
    fn phase_started(&mut self, name: &str, _description: &str) {
        self.0.lock().unwrap().push(format!("== {name}"));
    }
    fn phase_message(&mut self, name: &str, text: &str) {
        self.0.lock().unwrap().push(format!("   {name}: {text}"));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dst = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dst);
        } else {
            std::fs::copy(entry.path(), dst).unwrap();
        }
    }
}

fn files(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, base, out);
        } else {
            out.push(path.strip_prefix(base).unwrap().to_path_buf());
        }
    }
}

/// The quick start's example as an unpacked, indexed cluster image with a small planet image.
fn cluster_image(dir: &Path) {
    cluster_image_version(dir, "0.1.0", "test-1", "");
}

/// [`cluster_image`] as version `version` with planet `planet_version`; `hooks` is added to
/// the manifest's `hooks:`.
pub(crate) fn cluster_image_version(dir: &Path, version: &str, planet_version: &str, hooks: &str) {
    cluster_image_edited(dir, version, planet_version, &|m| m + hooks);
}

/// [`cluster_image_version`], its manifest changed by `edit` first.
pub(crate) fn cluster_image_edited(
    dir: &Path,
    version: &str,
    planet_version: &str,
    edit: &dyn Fn(String) -> String,
) {
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/single-node"),
        dir,
    );
    let manifest = std::fs::read_to_string(dir.join("app.yaml"))
        .unwrap()
        .replace(
            "resourceVersion: 0.1.0",
            &format!("resourceVersion: {version}"),
        );
    std::fs::write(dir.join("app.yaml"), edit(manifest)).unwrap();
    std::fs::write(dir.join("gravity"), b"#!/bin/sh\n").unwrap();
    let planet = b"a planet image";
    std::fs::create_dir_all(dir.join("planet")).unwrap();
    std::fs::write(dir.join("planet/planet.erofs"), planet).unwrap();
    let meta = serde_json::json!({
        "version": planet_version,
        "format": "erofs",
        "file": "planet.erofs",
        "sha256": hex::encode(sha2::Sha256::digest(planet)),
        "size": planet.len(),
        "kube": {"kubernetes": "v1.36.3", "etcd": "v3.6.16"},
    });
    std::fs::write(dir.join("planet/planet.json"), meta.to_string()).unwrap();
    std::fs::create_dir_all(dir.join("registry")).unwrap();
    std::fs::write(dir.join("registry/index.json"), b"{\"manifests\": []}").unwrap();

    let mut paths = Vec::new();
    files(dir, dir, &mut paths);
    let mut entries: Vec<IndexEntry> = paths
        .iter()
        .map(|rel| {
            let full = dir.join(rel);
            let bytes = std::fs::read(&full).unwrap();
            IndexEntry {
                path: rel.to_string_lossy().into_owned(),
                kind: Kind::File,
                mode: std::fs::metadata(&full).unwrap().permissions().mode() & 0o777,
                size: bytes.len() as u64,
                sha256: hex::encode(sha2::Sha256::digest(&bytes)),
                target: None,
            }
        })
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let index = ImageIndex {
        format: 1,
        name: "example".into(),
        version: version.into(),
        files: entries,
    };
    std::fs::write(dir.join("index.json"), index.to_json()).unwrap();
}

pub(crate) fn params(image_dir: &Path, state_dir: &Path) -> InstallParams {
    InstallParams {
        image_dir: image_dir.to_path_buf(),
        state_dir: state_dir.to_path_buf(),
        service_uid: 1001,
        service_gid: 1001,
        node: crate::node::NodeIdentity {
            node_name: "node-1".into(),
            advertise_ip: "10.0.0.5".parse().unwrap(),
            role: "node".into(),
            joined: None,
        },
        flavor: String::new(),
        mounts: Vec::new(),
        ignore_preflight_errors: Vec::new(),
        values: Vec::new(),
        set: Vec::new(),
    }
}

pub(crate) fn install(tmp: &Path, host: &FakeHost) -> (Ctx, Plan) {
    let (image_dir, state_dir) = (tmp.join("image"), tmp.join("state"));
    cluster_image(&image_dir);
    let image = crate::source::open(Some(&image_dir), &state_dir).unwrap();
    let start = Start::New(Box::new(params(&image_dir, &state_dir)), Box::new(image));
    run(
        start,
        &state_dir,
        host.effects(),
        &mut Phases(host.log.clone()),
    )
    .unwrap()
}

#[test]
fn the_install_plan_and_its_rollback_do_what_the_golden_log_says() {
    let tmp = tempfile::tempdir().unwrap();
    let host = FakeHost::new(&tmp.path().join("root"), true);
    let (ctx, plan) = install(tmp.path(), &host);
    assert!(plan.is_complete());
    host.log.lock().unwrap().push("== rollback".into());
    // The same fakes: the rollback finds the host the install left.
    rollback(
        &tmp.path().join("state"),
        ctx.effects,
        &mut Phases(host.log.clone()),
    )
    .unwrap();

    let log = host.lines().join("\n") + "\n";
    let log = log.replace(&tmp.path().to_string_lossy().into_owned(), "$TMP");
    golden::check_in(env!("CARGO_MANIFEST_DIR"), "install-plan.log", &log);
}

#[test]
fn without_systemd_as_pid_1_no_unit_is_installed_and_gravity_supervises() {
    let tmp = tempfile::tempdir().unwrap();
    let host = FakeHost::new(&tmp.path().join("root"), false);
    let (ctx, _) = install(tmp.path(), &host);
    let lines = host.lines();
    assert!(!lines.iter().any(|l| l.contains("unit")), "{lines:#?}");
    let record: state::ClusterRecord = state::read_versioned(&ctx.layout.cluster_record())
        .unwrap()
        .unwrap();
    assert_eq!(record.supervisor, state::Supervisor::Gravity);
}
