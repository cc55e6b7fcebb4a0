//! Vendored images end to end: `tele build` pulls the images the resources reference from a
//! real registry, `gravity install` pushes them into planet's registry, and dockerd inside
//! planet pulls each by its registry-local name.

use tests::docker_registry::{Registry, skopeo_copy};
use tests::install::{Installation, text};
use tests::oci_fixture::{Image, layer, write_layout};
use tests::planet::SharedServiceUser;
use tests::{bins, planet};

#[test]
fn vendored_images_are_pullable_inside_planet_after_install() {
    let _planet = SharedServiceUser::hold();
    let src = Registry::start();
    let host = src.host();
    let scratch = tempfile::tempdir().unwrap();

    // Two images sharing a base layer, pushed to the source registry with skopeo.
    let base = layer(&[("etc/base-release", &b"shared base\n".repeat(2048))]);
    let images = [
        ("acme/web:1.0", "web"),
        ("acme/migrate:1", "migrate"),
        ("acme/extra:2", "extra"),
    ];
    let layout = scratch.path().join("fixtures");
    write_layout(
        &layout,
        &images
            .iter()
            .map(|(_, own)| Image {
                name: own.to_string(),
                layers: vec![
                    base.clone(),
                    layer(&[(&format!("usr/bin/{own}") as &str, own.as_bytes())]),
                ],
            })
            .collect::<Vec<_>>(),
    );
    for (name, own) in images {
        skopeo_copy(
            &format!("oci:{}:{own}", layout.display()),
            &format!("docker://{host}/{name}"),
        );
    }

    // A cluster image whose resources use them: a container, an initContainer, an ImageSet.
    let dir = scratch.path().join("cluster");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("app.yaml"),
        "apiVersion: cluster.gravitational.io/v2\nkind: Cluster\nmetadata:\n  name: vendored\n  resourceVersion: 1.0.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("web.yaml"),
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  template:\n    spec:\n      initContainers:\n      - name: migrate\n        image: {host}/acme/migrate:1\n      containers:\n      - name: web\n        image: {host}/acme/web:1.0\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("extra.yaml"),
        format!("apiVersion: cluster.gravitational.io/v1beta1\nkind: ImageSet\nmetadata: {{name: extra}}\nspec:\n  images:\n  - image: {host}/acme/extra:2\n"),
    )
    .unwrap();
    let tarball = scratch.path().join("vendored.tar");
    let out = bins::tele_build(&dir.join("app.yaml"), &tarball)
        .args(["--insecure-registry", &host, "--planet"])
        .arg(planet::image_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "tele build failed: {}", text(&out));

    let inst = Installation::new();
    let out = inst.install_image(&tarball);
    assert!(out.status.success(), "install failed:\n{}", text(&out));

    for (name, _) in images {
        let local = format!("registry.local:5000/{name}");
        let pulled = inst.exec(&["docker", "pull", &local]);
        assert!(
            pulled.contains("Downloaded newer image") || pulled.contains("up to date"),
            "{pulled}"
        );
        let listed = inst.exec(&[
            "docker",
            "image",
            "inspect",
            "--format",
            "{{.RepoTags}}",
            &local,
        ]);
        assert!(listed.contains(&local), "{listed}");
    }
    // The files of both layers are in the pulled image.
    let id = inst.exec(&[
        "docker",
        "create",
        "registry.local:5000/acme/web:1.0",
        "/usr/bin/web",
    ]);
    let exported = inst.exec(&["sh", "-c", &format!("docker export {} | tar -t", id.trim())]);
    assert!(
        exported.contains("etc/base-release") && exported.contains("usr/bin/web"),
        "{exported}"
    );

    let out = inst.uninstall();
    assert!(out.status.success(), "uninstall failed:\n{}", text(&out));
}
