//! Vendoring end to end against real registries (Debian's `docker-registry` on loopback):
//! `tele build` pulls the images a cluster image's resources reference into `registry/`, and
//! the install's push puts them into a second registry (standing in for planet's), from which
//! `skopeo` then pulls every image whole.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;

use tests::bins;
use tests::docker_registry::{Registry, pullable, skopeo_copy};
use tests::oci_fixture::{Image, Layer, layer, write_layout};

/// The fixture images: four share one base layer; the hook image does not.
struct Fixtures {
    base: Layer,
    /// repository:tag (in the source registry) -> manifest digest.
    manifests: BTreeMap<String, String>,
}

fn push_fixtures(src: &Registry, scratch: &Path) -> Fixtures {
    let base = layer(&[("bin/busybox", &b"a shared base layer\n".repeat(4096))]);
    let own = |name: &str| layer(&[(&format!("bin/{name}") as &str, name.as_bytes())]);
    let images = [
        ("acme/web:1.0", vec![base.clone(), own("web")]),
        ("acme/migrate:1", vec![base.clone(), own("migrate")]),
        ("acme/extra:2", vec![base.clone(), own("extra")]),
        ("acme/chart-app:3.1", vec![base.clone(), own("chart-app")]),
        ("acme/hook:1", vec![own("hook")]),
    ];
    let layout = scratch.join("fixtures");
    let written = write_layout(
        &layout,
        &images
            .iter()
            .map(|(name, layers)| Image {
                name: name.replace([':', '/'], "-"),
                layers: layers.clone(),
            })
            .collect::<Vec<_>>(),
    );
    let mut manifests = BTreeMap::new();
    for (name, _) in &images {
        let local = name.replace([':', '/'], "-");
        skopeo_copy(
            &format!("oci:{}:{local}", layout.display()),
            &format!("docker://{}/{name}", src.host()),
        );
        manifests.insert(name.to_string(), written[&local].manifest_digest.clone());
    }
    Fixtures { base, manifests }
}

/// A cluster image directory whose resources reference the fixtures in every supported way.
fn cluster_dir(dir: &Path, host: &str) {
    std::fs::write(
        dir.join("app.yaml"),
        format!(
            r#"apiVersion: cluster.gravitational.io/v2
kind: Cluster
metadata:
  name: vendored
  resourceVersion: 1.0.0
hooks:
  install:
    job: |
      apiVersion: batch/v1
      kind: Job
      metadata:
        name: install
      spec:
        template:
          spec:
            restartPolicy: OnFailure
            containers:
            - name: install
              image: {host}/acme/hook:1
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("web.yaml"),
        format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  template:
    spec:
      initContainers:
      - name: migrate
        image: {host}/acme/migrate:1
      containers:
      - name: web
        image: {host}/acme/web:1.0
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
---
apiVersion: example.com/v1
kind: Widget
metadata: {{name: w}}
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("images.yaml"),
        format!(
            "apiVersion: cluster.gravitational.io/v1beta1\nkind: ImageSet\nmetadata: {{name: extra}}\nspec:\n  images:\n  - image: {host}/acme/extra:2\n  - image: {host}/acme/web:1.0\n"
        ),
    )
    .unwrap();
    let chart = dir.join("charts/app");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: app\nversion: 0.1.0\nappVersion: \"3.1\"\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("values.yaml"),
        format!("image:\n  registry: {host}\n  repository: acme/chart-app\n  tag: \"\"\n"),
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/deploy.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app}\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: \"{{ .Values.image.registry }}/{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}\"\n",
    )
    .unwrap();
}

fn tele_build(dir: &Path, out: &Path, extra: &[&str]) -> Output {
    bins::tele_build(&dir.join("app.yaml"), out)
        .args(extra)
        .env("DOCKER_CONFIG", dir.join("no-docker-config"))
        .output()
        .expect("tele runs")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The tarball's members: path -> content.
fn members(tarball: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut a = tar::Archive::new(std::fs::File::open(tarball).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(path, data);
    }
    out
}

fn unpack(tarball: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    tar::Archive::new(std::fs::File::open(tarball).unwrap())
        .unpack(into)
        .unwrap();
}

#[test]
fn images_travel_from_a_registry_through_the_tarball_into_the_cluster_registry() {
    let scratch = tempfile::tempdir().unwrap();
    let src = Registry::start();
    let fx = push_fixtures(&src, scratch.path());
    let host = src.host();
    let dir = scratch.path().join("cluster");
    std::fs::create_dir_all(&dir).unwrap();
    cluster_dir(&dir, &host);

    let tarball = scratch.path().join("vendored.tar");
    let o = tele_build(&dir, &tarball, &["--insecure-registry", &host]);
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("vendoring 5 container images"), "{stderr}");
    assert!(
        stderr.contains("kind Widget"),
        "an unknown kind is noted: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{host}/acme/web:1.0 -> registry.local:5000/acme/web:1.0"
        )),
        "{stderr}"
    );

    // The layout: one index entry per image, named by its reference, each blob stored once.
    let m = members(&tarball);
    let index: serde_json::Value = serde_json::from_slice(&m["registry/index.json"]).unwrap();
    let refs: BTreeMap<String, String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                d["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = fx
        .manifests
        .iter()
        .map(|(name, digest)| (format!("{host}/{name}"), digest.clone()))
        .collect();
    assert_eq!(
        refs, expected,
        "vendored manifests are the registry's, byte for byte"
    );
    assert!(m.contains_key("registry/oci-layout"));
    let base_path = format!(
        "registry/blobs/sha256/{}",
        &fx.base.digest()["sha256:".len()..]
    );
    let blob_paths: Vec<&String> = m
        .keys()
        .filter(|k| k.starts_with("registry/blobs/sha256/"))
        .collect();
    assert_eq!(
        blob_paths.iter().filter(|p| ***p == base_path).count(),
        1,
        "the shared base layer is stored once"
    );
    // 5 manifests + 5 configs + 1 base + 5 own layers.
    assert_eq!(blob_paths.len(), 16, "{blob_paths:#?}");
    for p in &blob_paths {
        let digest = format!("sha256:{}", p.rsplit('/').next().unwrap());
        assert_eq!(tests::oci_fixture::digest(&m[*p]), digest, "{p}");
    }

    // Same inputs, same bytes.
    let again = scratch.path().join("again.tar");
    let o = tele_build(&dir, &again, &["--insecure-registry", &host, "-q"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        std::fs::read(&tarball).unwrap() == std::fs::read(&again).unwrap(),
        "two builds of the same inputs differ"
    );

    // The install's push, into a registry standing in for planet's.
    let unpacked = scratch.path().join("unpacked");
    unpack(&tarball, &unpacked);
    let cluster = Registry::start();
    let progress = std::sync::Mutex::new(Vec::new());
    let record = |p: &registry::PushProgress| progress.lock().unwrap().push(p.clone());
    let opts = registry::PushOptions {
        registry: cluster.host(),
        plain_http: true,
        auth: registry::push::Auth::Anonymous,
        concurrency: 4,
        progress: Some(&record),
    };
    let report = registry::push_layout(&unpacked.join("registry"), &opts).expect("push");
    assert_eq!(
        report.images,
        fx.manifests
            .keys()
            .map(|n| format!("{}/{n}", cluster.host()))
            .collect::<Vec<_>>()
    );
    // 11 distinct configs and layers; the base goes over the wire once and is mounted into
    // the three other repositories that share it.
    assert_eq!(report.uploaded, 11, "{report:?}");
    assert_eq!(report.mounted, 3, "{report:?}");
    let last = progress
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("progress reported");
    assert_eq!(last.blobs_done, last.blobs_total);
    assert_eq!(last.bytes_done, last.bytes_total);

    for name in fx.manifests.keys() {
        let scratch_pull = scratch
            .path()
            .join(format!("pull-{}", name.replace([':', '/'], "-")));
        pullable(&format!("{}/{name}", cluster.host()), &scratch_pull).unwrap_or_else(|e| {
            panic!(
                "{name} is not pullable from the cluster registry: {e}\n{}",
                cluster.log()
            )
        });
        let (status, body) = cluster
            .request(
                "GET",
                &format!(
                    "/v2/{}/manifests/{}",
                    name.split(':').next().unwrap(),
                    name.split(':').nth(1).unwrap()
                ),
                "application/vnd.oci.image.manifest.v1+json",
            )
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(
            tests::oci_fixture::digest(&body),
            fx.manifests[name],
            "{name}"
        );
    }
    assert!(cluster.stored_blobs().contains(&fx.base.digest()));

    // Pushing again (a resumed install) sends nothing.
    let report = registry::push_layout(&unpacked.join("registry"), &opts).expect("second push");
    assert_eq!(
        (report.uploaded, report.bytes_uploaded),
        (0, 0),
        "{report:?}"
    );
    assert_eq!(report.existing, 14, "{report:?}");
}

#[test]
fn a_missing_image_names_the_image_and_the_file_that_references_it() {
    let scratch = tempfile::tempdir().unwrap();
    let src = Registry::start();
    let host = src.host();
    let dir = scratch.path().join("cluster");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("app.yaml"),
        "apiVersion: cluster.gravitational.io/v2\nkind: Cluster\nmetadata:\n  name: missing\n  resourceVersion: 1.0.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("pod.yaml"),
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: {host}/acme/nope:1\n"),
    )
    .unwrap();
    let out = scratch.path().join("x.tar");
    let o = tele_build(&dir, &out, &["--insecure-registry", &host]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!("cannot vendor {host}/acme/nope:1"))
            && stderr.contains("pod.yaml: spec.containers[0].image"),
        "{stderr}"
    );
    assert!(!out.exists(), "no tarball is left behind");

    // Without --insecure-registry the plain-HTTP registry is refused, and the advice given.
    let o = tele_build(&dir, &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--insecure-registry"),
        "{}",
        text(&o)
    );
}

#[test]
fn images_come_from_an_oci_layout_and_a_docker_save_archive_without_a_registry() {
    let scratch = tempfile::tempdir().unwrap();
    let base = layer(&[("bin/sh", b"base")]);
    let layout = scratch.path().join("layout");
    let written = write_layout(
        &layout,
        &[
            Image {
                name: "quay.io/acme/from-layout:1".into(),
                layers: vec![base.clone(), layer(&[("a", b"a")])],
            },
            Image {
                name: "archived".into(),
                layers: vec![base.clone(), layer(&[("b", b"b")])],
            },
        ],
    );
    // `docker save` format, made by skopeo from the second image.
    let archive = scratch.path().join("saved.tar");
    skopeo_copy(
        &format!("oci:{}:archived", layout.display()),
        &format!("docker-archive:{}:acme/from-archive:2", archive.display()),
    );
    let dir = scratch.path().join("cluster");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("app.yaml"),
        "apiVersion: cluster.gravitational.io/v2\nkind: Cluster\nmetadata:\n  name: local\n  resourceVersion: 1.0.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("images.yaml"),
        "apiVersion: cluster.gravitational.io/v1beta1\nkind: ImageSet\nmetadata: {name: x}\nspec:\n  images:\n  - image: quay.io/acme/from-layout:1\n  - image: acme/from-archive:2\n",
    )
    .unwrap();
    let out = scratch.path().join("local.tar");
    let o = tele_build(
        &dir,
        &out,
        &[
            "--image-source",
            layout.to_str().unwrap(),
            "--image-source",
            archive.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));

    let unpacked = scratch.path().join("unpacked");
    unpack(&out, &unpacked);
    let stored = registry::OciLayout::open(&unpacked.join("registry"))
        .unwrap()
        .images()
        .unwrap();
    let by_ref: BTreeMap<&str, &registry::StoredImage> =
        stored.iter().map(|s| (s.reference.as_str(), s)).collect();
    assert_eq!(
        by_ref.keys().copied().collect::<Vec<_>>(),
        vec![
            "docker.io/acme/from-archive:2",
            "quay.io/acme/from-layout:1"
        ]
    );
    assert_eq!(
        by_ref["quay.io/acme/from-layout:1"].descriptor.digest,
        written["quay.io/acme/from-layout:1"].manifest_digest,
        "an image from a layout keeps its manifest"
    );
    // The archive's layers are uncompressed tars whose digests are the config's diff_ids.
    let archived = by_ref["docker.io/acme/from-archive:2"];
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&unpacked, &archived.blobs[0].digest)).unwrap())
            .unwrap();
    let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    let layer_digests: Vec<&str> = archived.blobs[1..]
        .iter()
        .map(|b| b.digest.as_str())
        .collect();
    assert_eq!(layer_digests, diff_ids);

    // Both are pushable and then pullable whole.
    let cluster = Registry::start();
    registry::push_layout(
        &unpacked.join("registry"),
        &registry::PushOptions {
            registry: cluster.host(),
            plain_http: true,
            auth: registry::push::Auth::Anonymous,
            concurrency: 2,
            progress: None,
        },
    )
    .expect("push");
    for name in ["acme/from-archive:2", "acme/from-layout:1"] {
        pullable(
            &format!("{}/{name}", cluster.host()),
            &scratch.path().join(name.replace([':', '/'], "-")),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

fn blob(image_dir: &Path, digest: &str) -> PathBuf {
    image_dir
        .join("registry/blobs/sha256")
        .join(&digest["sha256:".len()..])
}

#[test]
fn a_multi_platform_image_is_vendored_for_the_chosen_platform() {
    let scratch = tempfile::tempdir().unwrap();
    let layout = scratch.path().join("layout");
    let written = write_layout(
        &layout,
        &[
            Image {
                name: "amd64".into(),
                layers: vec![layer(&[("arch", b"amd64")])],
            },
            Image {
                name: "arm64".into(),
                layers: vec![layer(&[("arch", b"arm64")])],
            },
        ],
    );
    // An index over both, added to the layout as the image `multi`.
    let entry = |arch: &str| {
        let bytes = std::fs::read(blob_in(&layout, &written[arch].manifest_digest)).unwrap();
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": written[arch].manifest_digest,
            "size": bytes.len(),
            "platform": {"architecture": arch, "os": "linux"},
        })
    };
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry("arm64"), entry("amd64")],
    }))
    .unwrap();
    let index_digest = tests::oci_fixture::digest(&index);
    std::fs::write(blob_in(&layout, &index_digest), &index).unwrap();
    let mut top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    top["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest,
            "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }));
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();

    let src = Registry::start();
    let host = src.host();
    let out = std::process::Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--all",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:multi", layout.display()))
        .arg(format!("docker://{host}/acme/multi:1"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = scratch.path().join("cluster");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("app.yaml"),
        "apiVersion: cluster.gravitational.io/v2\nkind: Cluster\nmetadata:\n  name: multi\n  resourceVersion: 1.0.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("images.yaml"),
        format!("apiVersion: cluster.gravitational.io/v1beta1\nkind: ImageSet\nmetadata: {{name: x}}\nspec:\n  images:\n  - image: {host}/acme/multi:1\n"),
    )
    .unwrap();
    let vendored_digest = |extra: &[&str]| -> Result<String, String> {
        let tarball = scratch.path().join("multi.tar");
        let mut args = vec!["--insecure-registry", host.as_str()];
        args.extend_from_slice(extra);
        let o = tele_build(&dir, &tarball, &args);
        if !o.status.success() {
            return Err(text(&o));
        }
        let m = members(&tarball);
        let index: serde_json::Value = serde_json::from_slice(&m["registry/index.json"]).unwrap();
        Ok(index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string())
    };
    assert_eq!(
        vendored_digest(&[]).unwrap(),
        written["amd64"].manifest_digest,
        "the host's platform by default"
    );
    assert_eq!(
        vendored_digest(&["--platform", "linux/arm64"]).unwrap(),
        written["arm64"].manifest_digest
    );
    let e = vendored_digest(&["--platform", "linux/s390x"]).unwrap_err();
    assert!(
        e.contains("no linux/s390x image") && e.contains("linux/arm64, linux/amd64"),
        "{e}"
    );
}

fn blob_in(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(&digest["sha256:".len()..])
}

#[test]
fn a_corrupted_blob_in_the_state_dir_cache_is_fetched_again() {
    let scratch = tempfile::tempdir().unwrap();
    let src = Registry::start();
    let host = src.host();
    let layout = scratch.path().join("layout");
    let app_layer = layer(&[("bin/app", &b"cached content\n".repeat(1000))]);
    write_layout(
        &layout,
        &[Image {
            name: "app".into(),
            layers: vec![app_layer.clone()],
        }],
    );
    skopeo_copy(
        &format!("oci:{}:app", layout.display()),
        &format!("docker://{host}/acme/app:1"),
    );
    let dir = scratch.path().join("cluster");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("app.yaml"),
        format!("apiVersion: cluster.gravitational.io/v2\nkind: Cluster\nmetadata:\n  name: cached\n  resourceVersion: 1.0.0\nsystemOptions:\n  baseImage: {host}/acme/app:1\n"),
    )
    .unwrap();
    let state = scratch.path().join("state");
    let state_arg = state.to_str().unwrap();
    let first = scratch.path().join("first.tar");
    let o = tele_build(
        &dir,
        &first,
        &["--insecure-registry", &host, "--state-dir", state_arg],
    );
    assert!(o.status.success(), "{}", text(&o));
    let cached = blob_in(&state.join("vendor"), &app_layer.digest());
    assert!(
        cached.is_file(),
        "the layer is cached in the state directory"
    );

    // Same size, different bytes: only hashing can tell.
    let len = std::fs::metadata(&cached).unwrap().len() as usize;
    std::fs::write(&cached, vec![b'x'; len]).unwrap();
    let second = scratch.path().join("second.tar");
    let o = tele_build(
        &dir,
        &second,
        &["--insecure-registry", &host, "--state-dir", state_arg],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        std::fs::read(&first).unwrap() == std::fs::read(&second).unwrap(),
        "the rebuilt image carries the registry's layer, not the corrupted cache"
    );
    assert_eq!(
        tests::oci_fixture::digest(&std::fs::read(&cached).unwrap()),
        app_layer.digest()
    );
}

#[test]
fn a_registry_that_requires_basic_auth_is_pulled_from_with_docker_config_credentials() {
    pull_with_credentials(Registry::start_with_basic_auth("alice", "s3cret"));
}

#[test]
fn a_registry_with_token_auth_is_pulled_from_with_a_bearer_token() {
    pull_with_credentials(Registry::start_with_token_auth("alice", "s3cret"));
}

/// A private image in `src` (alice:s3cret): refused without credentials, with a hint; vendored
/// with them in docker's config.json.
fn pull_with_credentials(src: Registry) {
    let scratch = tempfile::tempdir().unwrap();
    let host = src.host();
    let private = layer(&[("bin/private", &b"behind a password\n".repeat(100))]);
    let layout = scratch.path().join("layout");
    write_layout(
        &layout,
        &[Image {
            name: "private".into(),
            layers: vec![private.clone()],
        }],
    );
    tests::docker_registry::skopeo_copy_with(
        &format!("oci:{}:private", layout.display()),
        &format!("docker://{host}/acme/private:1"),
        &["--dest-creds", "alice:s3cret"],
    );
    let dir = scratch.path().join("cluster");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("app.yaml"),
        "apiVersion: cluster.gravitational.io/v2\nkind: Cluster\nmetadata:\n  name: private\n  resourceVersion: 1.0.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("pod.yaml"),
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: {host}/acme/private:1\n"),
    )
    .unwrap();
    let out = scratch.path().join("private.tar");

    // No credentials: the registry's refusal names the image.
    let o = tele_build(&dir, &out, &["--insecure-registry", &host]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr).to_lowercase();
    assert!(
        stderr.contains(&format!("cannot vendor {host}/acme/private:1"))
            && stderr.contains("not authorized")
            && stderr.contains(&format!("docker login {host}")),
        "{}",
        text(&o)
    );

    // Credentials in the usual docker config.json (what `docker login` writes).
    let docker_config = scratch.path().join("docker");
    std::fs::create_dir_all(&docker_config).unwrap();
    let token = std::process::Command::new("sh")
        .args(["-c", "printf alice:s3cret | base64"])
        .output()
        .unwrap();
    let token = String::from_utf8(token.stdout).unwrap();
    std::fs::write(
        docker_config.join("config.json"),
        format!(
            r#"{{"auths": {{"{host}": {{"auth": "{}"}}}}}}"#,
            token.trim()
        ),
    )
    .unwrap();
    let o = bins::tele_build(&dir.join("app.yaml"), &out)
        .args(["--insecure-registry", &host])
        .env("DOCKER_CONFIG", &docker_config)
        .output()
        .expect("tele runs");
    assert!(o.status.success(), "{}", text(&o));
    let files = members(&out);
    let digest = private.digest();
    let blob = format!("registry/blobs/sha256/{}", &digest["sha256:".len()..]);
    assert!(
        files.keys().any(|k| k.ends_with(&blob)),
        "the private layer {blob} is not in the image: {:?}",
        files.keys().collect::<Vec<_>>()
    );
}

/// The images the tarball vendors, by reference.
fn vendored_refs(tarball: &Path) -> Vec<String> {
    let m = members(tarball);
    let index: serde_json::Value = serde_json::from_slice(&m["registry/index.json"]).unwrap();
    let mut refs: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    refs.sort();
    refs
}

#[test]
fn charts_are_rendered_by_helm_with_the_builds_values_and_a_broken_one_is_named() {
    let scratch = tempfile::tempdir().unwrap();
    let src = Registry::start();
    push_fixtures(&src, scratch.path());
    let host = src.host();
    let dir = scratch.path().join("cluster");
    std::fs::create_dir_all(&dir).unwrap();
    cluster_dir(&dir, &host);
    // Only the manifest (its hook image) and the chart.
    for f in ["web.yaml", "images.yaml"] {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    let insecure = ["--insecure-registry", host.as_str()];

    // As written: the chart's values and its appVersion (a template function helm evaluates).
    let out = scratch.path().join("plain.tar");
    let o = tele_build(&dir, &out, &insecure);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        vendored_refs(&out),
        [
            format!("{host}/acme/chart-app:3.1"),
            format!("{host}/acme/hook:1")
        ]
    );

    // --values then --set, helm's order: the image the chart renders, and so the one vendored,
    // changes with them.
    let values = scratch.path().join("values.yaml");
    std::fs::write(&values, "image:\n  repository: acme/extra\n  tag: \"1\"\n").unwrap();
    let out = scratch.path().join("values.tar");
    let mut args = insecure.to_vec();
    let values_arg = values.display().to_string();
    args.extend(["--values", &values_arg, "--set", "image.tag=2"]);
    let o = tele_build(&dir, &out, &args);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        vendored_refs(&out),
        [
            format!("{host}/acme/extra:2"),
            format!("{host}/acme/hook:1")
        ]
    );

    // A template helm cannot render: the chart, the template and helm's message.
    std::fs::write(
        dir.join("charts/app/templates/broken.yaml"),
        "metadata:\n  name: {{ .Values.nope.deeper }}\n",
    )
    .unwrap();
    let out = scratch.path().join("broken.tar");
    let o = tele_build(&dir, &out, &insecure);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("the Helm chart charts/app does not render")
            && stderr.contains("app/templates/broken.yaml")
            && stderr.contains("nil pointer evaluating interface {}.deeper"),
        "{stderr}"
    );
    assert!(!out.exists(), "no tarball is left behind");
}
