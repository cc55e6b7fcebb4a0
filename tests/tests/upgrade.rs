//! `gravity upgrade` on a real single-node cluster: 1.0.0 installed, data written into etcd,
//! a ConfigMap and a volume; 1.1.0 (another planet image, whose etcd is a newer patch, other
//! etcd and kubelet arguments, a volume more, a new application image deployed by its update
//! hook) upgrades it, and everything written is
//! still there, though the upgrade was killed (-9) while planet was stopped and resumed. Then
//! 1.2.0, whose postUpdate hook fails, rolls back by itself: the node runs
//! 1.1.0 again with its arguments, the rollback hook put the application back, the data stays.

use std::process::Command;

use tests::install::{Installation, text};
use tests::planet::SharedServiceUser;
use tests::upgrade::{self, cmdline};

fn ok(inst: &Installation, args: &[&str]) -> String {
    let out = inst.gravity(args);
    assert!(out.status.success(), "gravity {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn web_image(inst: &Installation) -> String {
    ok(
        inst,
        &[
            "kubectl",
            "get",
            "deployment",
            "web",
            "-n",
            "default",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    )
}

/// The version of the etcd binary planet runs ("v3.6.16"), as it says itself.
fn etcd_running(inst: &Installation) -> String {
    let out = inst.exec(&["etcd", "--version"]);
    let version = out
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version: "))
        .unwrap_or_else(|| panic!("etcd --version: {out}"));
    format!("v{}", version.trim())
}

fn cluster_version(inst: &Installation) -> String {
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(inst.state.join("cluster.json")).unwrap()).unwrap();
    record["version"].as_str().unwrap().to_string()
}

/// The data the upgrades must keep, as the test reads it back.
fn data(inst: &Installation) -> (String, String, String) {
    (
        inst.exec(&["etcdctl", "get", "/upgrade-test", "--print-value-only"])
            .trim()
            .to_string(),
        ok(
            inst,
            &[
                "kubectl",
                "get",
                "configmap",
                "upgrade-test",
                "-n",
                "default",
                "-o",
                "jsonpath={.data.kept}",
            ],
        ),
        std::fs::read_to_string(inst.app_data.join("kept.txt")).unwrap_or_default(),
    )
}

#[test]
fn upgrade_keeps_the_data_and_a_failed_one_rolls_back() {
    let _planet = SharedServiceUser::hold();
    let inst = Installation::new();
    let tmp = tempfile::tempdir().unwrap();
    let web = upgrade::web_images(tmp.path(), &["1.1", "1.2"]);
    // From 1.1.0 on, the profile has a volume more: the upgrade creates it.
    let cache = tmp.path().join("app-cache");
    let images = upgrade::images_with(tmp.path(), &web, &upgrade::VERSIONS, |version, dir| {
        if version != "1.0.0" {
            upgrade::add_volume(dir, "app-cache", &cache, "/var/lib/example-cache");
        }
    });

    let out = inst.install_example_variant(&images[0]);
    assert!(
        out.status.success(),
        "install of 1.0.0 failed: {}",
        text(&out)
    );
    inst.exec(&["etcdctl", "put", "/upgrade-test", "etcd-value"]);
    ok(
        &inst,
        &[
            "kubectl",
            "create",
            "configmap",
            "upgrade-test",
            "-n",
            "default",
            "--from-literal=kept=configmap-value",
        ],
    );
    std::fs::write(inst.app_data.join("kept.txt"), "volume-value").unwrap();
    let written = data(&inst);
    let (old_etcd, new_etcd) = (
        upgrade::etcd_version(&tests::planet::previous_etcd_image_dir()),
        upgrade::etcd_version(&tests::planet::image_dir()),
    );
    assert_ne!(old_etcd, new_etcd, "1.0.0's planet has the same etcd");
    assert_eq!(etcd_running(&inst), old_etcd);
    assert_eq!(
        written,
        (
            "etcd-value".into(),
            "configmap-value".into(),
            "volume-value".into()
        )
    );

    // An older or equal image is refused before anything changes.
    let same = inst.gravity(&["upgrade", "--image", images[0].to_str().unwrap(), "--yes"]);
    assert!(!same.status.success());
    assert!(
        text(&same).contains("newer version only"),
        "{}",
        text(&same)
    );

    // 1.1.0: a new planet image, new daemon arguments, the application's new image. The
    // upgrade is killed (-9) right after it stopped planet; `--resume` goes on from there.
    let crashed = inst
        .command()
        .arg("--state-dir")
        .arg(&inst.state)
        .args(["upgrade", "--image", images[1].to_str().unwrap(), "--yes"])
        .env("GRAVITY_CRASH_AT", "restart:during")
        .output()
        .unwrap();
    assert!(!crashed.status.success(), "the crash point did not fire");
    let said = text(&crashed);
    assert!(said.contains("upgrade example 1.0.0 -> 1.1.0"), "{said}");
    assert!(
        said.contains("example.com/web:1.1"),
        "the images to push: {said}"
    );
    assert!(said.contains("etcd's snapshot: "), "{said}");
    assert!(
        said.contains(&format!("etcd: {old_etcd} -> {new_etcd}")),
        "what will change: {said}"
    );
    let out = inst.gravity(&["upgrade", "--resume"]);
    assert!(
        out.status.success(),
        "the resumed upgrade to 1.1.0 failed: {}",
        text(&out)
    );
    // The time the resumed part took, for the log: "... (upgraded from 1.0.0 in 60.1s) ...".
    eprintln!(
        "{}",
        text(&out)
            .lines()
            .rfind(|l| l.contains("upgraded from"))
            .unwrap_or("?")
    );
    assert_eq!(cluster_version(&inst), "1.1.0");
    // The newer patch runs, on the data the older one wrote.
    assert_eq!(etcd_running(&inst), new_etcd);
    // The new volume is there, mounted into planet.
    inst.exec(&["sh", "-c", "echo cached > /var/lib/example-cache/file"]);
    assert_eq!(
        std::fs::read_to_string(cache.join("file")).unwrap_or_default(),
        "cached\n"
    );
    let etcd = cmdline(&inst, "etcd");
    assert!(etcd.contains("--max-request-bytes=2097152"), "{etcd}");
    let kubelet = cmdline(&inst, "kubelet");
    assert!(
        kubelet.contains("--max-pods=100") && !kubelet.contains("--max-pods=110"),
        "{kubelet}"
    );
    assert!(
        web_image(&inst).ends_with("web:1.1"),
        "{}",
        web_image(&inst)
    );
    ok(
        &inst,
        &[
            "kubectl",
            "rollout",
            "status",
            "deployment/web",
            "-n",
            "default",
            "--timeout=300s",
        ],
    );
    assert_eq!(data(&inst), written, "the upgrade lost data");
    let planet_config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(inst.state.join("planet/config.json")).unwrap())
            .unwrap();
    assert!(
        planet_config["image"]["version"]
            .as_str()
            .unwrap()
            .ends_with("-1.1.0"),
        "{planet_config:#}"
    );

    // 1.2.0, by the unpacked image's own `upgrade` script: its postUpdate hook fails, and the
    // upgrade rolls back by itself.
    let unpacked = tmp.path().join("unpacked-1.2.0");
    std::fs::create_dir_all(&unpacked).unwrap();
    let untar = Command::new("tar")
        .arg("xf")
        .arg(&images[2])
        .arg("-C")
        .arg(&unpacked)
        .output()
        .unwrap();
    assert!(untar.status.success(), "tar: {}", text(&untar));
    let mut script = Command::new(unpacked.join("upgrade"));
    inst.ns.enter(&mut script);
    let out = script
        .arg("--state-dir")
        .arg(&inst.state)
        .arg("--yes")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the upgrade to 1.2.0 should fail");
    let said = text(&out);
    assert!(
        said.contains("the post-update check failed"),
        "the hook's log: {said}"
    );
    assert!(
        said.contains("rolled back: the node runs example 1.1.0 again"),
        "{said}"
    );
    assert_eq!(cluster_version(&inst), "1.1.0");
    let etcd = cmdline(&inst, "etcd");
    assert!(etcd.contains("--max-request-bytes=2097152"), "{etcd}");
    let kubelet = cmdline(&inst, "kubelet");
    assert!(kubelet.contains("--max-pods=100"), "{kubelet}");
    assert!(
        web_image(&inst).ends_with("web:1.1"),
        "the rollback hook: {}",
        web_image(&inst)
    );
    assert_eq!(data(&inst), written, "the rollback lost data");
    let status = inst.status();
    assert_eq!(status["healthy"], true, "{status:#}");

    let out = inst.uninstall();
    assert!(out.status.success(), "uninstall: {}", text(&out));
}
