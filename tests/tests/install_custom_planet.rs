//! A node profile with its own planet (`systemOptions.baseImage`): `tele build --planet-image`
//! packs it, and the install runs that image rather than the default one.

use std::path::Path;
use std::process::Output;

use tests::install::{Installation, text};
use tests::planet::SharedServiceUser;
use tests::{bins, planet};

const REFERENCE: &str = "acme/custom-planet:1.0.0";

/// The example with its profile on the custom planet.
fn custom_example(dir: &Path) {
    tests::install::copy_example(dir);
    let manifest = std::fs::read_to_string(dir.join("app.yaml")).unwrap();
    let profile = "  - name: node\n";
    assert!(manifest.contains(profile), "the example's profile moved");
    let manifest = manifest.replace(
        profile,
        &format!("{profile}    systemOptions:\n      baseImage: {REFERENCE}\n"),
    );
    std::fs::write(dir.join("app.yaml"), manifest).unwrap();
}

/// The default planet image under another version: what a vendor's own build would be.
fn custom_planet(dir: &Path) -> String {
    let default = planet::image_dir();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(default.join("planet.json")).unwrap()).unwrap();
    let file = meta["file"].as_str().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(default.join(file), dir.join(file)).unwrap();
    let version = format!("{}-acme", meta["version"].as_str().unwrap());
    let mut custom = meta.clone();
    custom["version"] = version.clone().into();
    std::fs::write(
        dir.join("planet.json"),
        serde_json::to_vec_pretty(&custom).unwrap(),
    )
    .unwrap();
    version
}

/// With the example application's image as an image source (its install hook and chart).
fn tele_build(manifest_dir: &Path, out: &Path, extra: &[&str]) -> Output {
    let web = manifest_dir.with_file_name("web-image");
    if !web.exists() {
        tests::install::example_web_image(&web);
    }
    bins::tele_build(&manifest_dir.join("app.yaml"), out)
        .arg("--image-source")
        .arg(&web)
        .args(extra)
        .output()
        .expect("run tele")
}

#[test]
fn a_profile_runs_the_planet_image_its_base_image_names() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest_dir = tmp.path().join("cluster");
    custom_example(&manifest_dir);
    let planet_dir = tmp.path().join("custom-planet");
    let version = custom_planet(&planet_dir);
    let image = tmp.path().join("custom.tar");

    // Without the planet image, the build says what is missing and how to give it (and then
    // cannot vendor it as a container image either: there is no such registry here).
    let out = tele_build(&manifest_dir, &image, &[]);
    assert!(
        text(&out).contains(&format!(
            "systemOptions.baseImage {REFERENCE} of node profile `node` has no planet image"
        )),
        "{}",
        text(&out)
    );
    // A planet image no profile runs is a mistake worth stopping for.
    let out = tele_build(
        &manifest_dir,
        &image,
        &[
            "--planet-image",
            &format!("other:1.0.0={}", planet_dir.display()),
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--planet-image other:1.0.0: no node profile runs it"),
        "{}",
        text(&out)
    );

    let out = tele_build(
        &manifest_dir,
        &image,
        &[
            "--planet-image",
            &format!("{REFERENCE}={}", planet_dir.display()),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let listing = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&image)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.ends_with("planet/acme/custom-planet/1.0.0/planet.json")),
        "{listing}"
    );
    assert!(
        !listing.lines().any(|l| l.ends_with("planet/planet.json")),
        "no default planet was asked for:\n{listing}"
    );
    // The example's application image is vendored; the base image is not, as a container image.
    let index = std::process::Command::new("tar")
        .arg("-xOf")
        .arg(&image)
        .arg("registry/index.json")
        .output()
        .unwrap();
    let index = String::from_utf8_lossy(&index.stdout);
    assert!(index.contains("example.com/web:1.0"), "{index}");
    assert!(
        !index.contains("custom-planet"),
        "the base image is not vendored as a container image too:\n{index}"
    );

    let _planet = SharedServiceUser::hold();
    let inst = Installation::new();
    let out = inst.install_example_variant(&image);
    assert!(out.status.success(), "install failed:\n{}", text(&out));
    let status = inst.status();
    assert_eq!(status["healthy"], true, "{status:#}");
    assert_eq!(status["planet"]["imageVersion"], version.as_str());
}
