//! Crash tests of the upgrade on a real node: 1.0.0 installed, data written; the upgrade to
//! 1.2.0 (whose postUpdate hook fails) is killed (-9) after every phase, each `--resume` after
//! the next; the resume that reaches the failing hook rolls back by itself and is killed after
//! the first phase's rollback, each `gravity plan rollback` after the next; the last one ends
//! with the node on 1.0.0 as it was, healthy, its data there.

use std::os::unix::process::ExitStatusExt;

use tests::install::{Installation, text};
use tests::planet::SharedServiceUser;
use tests::upgrade::{self, cmdline};

/// The upgrade's phases, in order. A new phase must be added here, and so gets crash-tested
/// (the test fails when the plan has a phase this list lacks).
const PHASES: [&str; 18] = [
    "checks",
    "etcd-backup",
    "transfer",
    "planet-image",
    "configure",
    "volumes",
    "images",
    "drain",
    "restart",
    "health",
    "uncordon",
    "system-workloads",
    "serve",
    "nodes",
    "values",
    "update-hook",
    "post-update-hook",
    "finish",
];

/// The journaled plan: its state, and each phase's.
fn plan(inst: &Installation) -> (String, Vec<(String, String)>) {
    let bytes = std::fs::read(inst.state.join("operation/current.json")).unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let phases = plan["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (plan["state"].as_str().unwrap().to_string(), phases)
}

fn phase_state(inst: &Installation, phase: &str) -> String {
    plan(inst)
        .1
        .into_iter()
        .find(|(name, _)| name == phase)
        .map(|(_, state)| state)
        .unwrap_or_default()
}

/// Runs gravity `args` with `GRAVITY_CRASH_AT=point` and asserts that it was killed there.
fn killed(inst: &Installation, args: &[&str], point: &str) {
    let out = inst
        .command()
        .arg("--state-dir")
        .arg(&inst.state)
        .args(args)
        .env("GRAVITY_CRASH_AT", point)
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(9),
        "gravity {args:?} was not killed at {point}:\n{}",
        text(&out)
    );
}

#[test]
fn an_upgrade_killed_at_every_phase_and_in_its_rollback_ends_as_it_began() {
    let _planet = SharedServiceUser::hold();
    let inst = Installation::new();
    let tmp = tempfile::tempdir().unwrap();
    let web = upgrade::web_images(tmp.path(), &["1.2"]);
    let versions = [upgrade::VERSIONS[0], upgrade::VERSIONS[2]];
    let images = upgrade::images_with(tmp.path(), &web, &versions, |_, _| {});
    let out = inst.install_example_variant(&images[0]);
    assert!(out.status.success(), "install of 1.0.0: {}", text(&out));
    inst.exec(&["etcdctl", "put", "/crash-test", "kept"]);
    let config_before = std::fs::read(inst.state.join("planet/config.json")).unwrap();
    let kubelet_before = cmdline(&inst, "kubelet");

    // Forward: killed before the first phase, then after each phase up to the update hook.
    let image = images[1].to_str().unwrap();
    killed(
        &inst,
        &["upgrade", "--image", image, "--yes"],
        "checks:before",
    );
    let (_, phases) = plan(&inst);
    let names: Vec<&str> = phases.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, PHASES, "the upgrade's phases changed: update PHASES");
    let forward = PHASES.iter().take_while(|p| **p != "post-update-hook");
    for phase in forward {
        killed(&inst, &["upgrade", "--resume"], &format!("{phase}:after"));
        assert_eq!(phase_state(&inst, phase), "completed", "after {phase}");
    }

    // The postUpdate hook fails: the resume rolls back by itself, and is killed once the
    // failed phase is undone; then each `gravity plan rollback` once the next one is.
    killed(&inst, &["upgrade", "--resume"], "post-update-hook:rollback");
    assert_eq!(plan(&inst).0, "rolling_back");
    let backward: Vec<&str> = PHASES
        .iter()
        .rev()
        .skip_while(|p| **p != "post-update-hook")
        .skip(1)
        .copied()
        .collect();
    for phase in &backward[..backward.len() - 1] {
        killed(&inst, &["plan", "rollback"], &format!("{phase}:rollback"));
        assert_eq!(phase_state(&inst, phase), "rolled_back", "after {phase}");
    }
    let out = inst.gravity(&["plan", "rollback"]);
    assert!(out.status.success(), "the last rollback: {}", text(&out));
    let (state, phases) = plan(&inst);
    assert_eq!(state, "rolled_back", "{phases:?}");
    assert!(
        phases
            .iter()
            .all(|(name, s)| s == "rolled_back" || name == "finish"),
        "{phases:?}"
    );

    // As it began: 1.0.0's configuration and kubelet, healthy, the data there.
    let status = inst.status();
    assert_eq!(status["healthy"], true, "{status:#}");
    assert_eq!(status["cluster"]["version"], "1.0.0", "{status:#}");
    assert_eq!(
        std::fs::read(inst.state.join("planet/config.json")).unwrap(),
        config_before,
        "planet's configuration after the rollback"
    );
    assert_eq!(cmdline(&inst, "kubelet"), kubelet_before);
    assert_eq!(
        inst.exec(&["etcdctl", "get", "/crash-test", "--print-value-only"])
            .trim(),
        "kept"
    );
    let out = inst.uninstall();
    assert!(out.status.success(), "uninstall: {}", text(&out));
}
