//! The whole upgrade plan over the host effects' recording fakes, after an install over them:
//! what an upgrade does to a host, in order, is pinned by `tests/golden/upgrade-plan.log`; a
//! failing postUpdate hook rolls it back by itself, to the previous configuration.

use std::path::Path;

use super::*;
use crate::effects::fake::FakeHost;
use crate::install::tests::{Phases, cluster_image_edited, install};

const HOOKS: &str = "  update:\n    job: file://install.yaml\n  postUpdate:\n    job: file://install.yaml\n  rollback:\n    job: file://install.yaml\n";

fn upgrade(tmp: &Path, host: &FakeHost) -> anyhow::Result<(Ctx, Plan)> {
    upgrade_to(tmp, host, &|m| m + HOOKS)
}

/// The upgrade to 0.2.0, whose manifest is the example's changed by `edit`.
fn upgrade_to(
    tmp: &Path,
    host: &FakeHost,
    edit: &dyn Fn(String) -> String,
) -> anyhow::Result<(Ctx, Plan)> {
    let (image_dir, state_dir) = (tmp.join("image-0.2.0"), tmp.join("state"));
    cluster_image_edited(&image_dir, "0.2.0", "test-2", edit);
    let layout = StateDir::new(&state_dir);
    let from = installed(&layout).unwrap();
    let image = crate::source::open(Some(&image_dir), &state_dir).unwrap();
    let node = InstallParams {
        image_dir: image_dir.clone(),
        ..from.params.clone()
    };
    let params = UpgradeParams {
        from,
        node,
        version: "0.2.0".into(),
    };
    run(
        Start::New(Box::new(params), Box::new(image)),
        &state_dir,
        host.effects(),
        &mut Phases(host.log.clone()),
    )
}

fn log_of(host: &FakeHost, tmp: &Path) -> String {
    let log = host.lines().join("\n") + "\n";
    log.replace(&tmp.to_string_lossy().into_owned(), "$TMP")
}

#[test]
fn the_upgrade_plan_does_what_the_golden_log_says() {
    let tmp = tempfile::tempdir().unwrap();
    let host = FakeHost::new(&tmp.path().join("root"), true);
    let (ctx, _) = install(tmp.path(), &host);
    host.log.lock().unwrap().clear();
    let (ctx2, plan) = upgrade(tmp.path(), &host).unwrap();
    assert!(plan.is_complete());
    let log = log_of(&host, tmp.path()).replace(&plan.id, "$OPERATION");
    // The restart says how long planet took to stop and start: not the same twice.
    let log = match timings(&log) {
        Some(t) => log.replace(&t, "(stopped in $Ss, started in $Ss)"),
        None => log,
    };
    golden::check_in(env!("CARGO_MANIFEST_DIR"), "upgrade-plan.log", &log);
    let record = ClusterRecord::load(&ctx.layout).unwrap().unwrap();
    assert_eq!(record.version, "0.2.0");
    let config = planet::config::PlanetConfig::load(ctx.layout.root()).unwrap();
    assert_eq!(config.image.version, "test-2");
    assert!(
        ctx.layout.planet().images().join("test-1").exists(),
        "the previous planet image stays"
    );
    // The next upgrade starts from this one.
    let from = installed(&ctx2.node.layout).unwrap();
    assert_eq!(
        (from.version.as_str(), from.planet_version.as_str()),
        ("0.2.0", "test-2")
    );
}

/// The restart's "(stopped in 0.0s, started in 0.0s)".
fn timings(log: &str) -> Option<String> {
    let start = log.find("(stopped in ")?;
    let end = start + log[start..].find(')')? + 1;
    Some(log[start..end].to_string())
}

#[test]
fn a_failing_post_update_hook_rolls_the_node_back() {
    let tmp = tempfile::tempdir().unwrap();
    let mut host = FakeHost::new(&tmp.path().join("root"), true);
    let (ctx, _) = install(tmp.path(), &host);
    let layout = ctx.layout.clone();
    let config_before = std::fs::read(layout.planet().config()).unwrap();
    host.failing_hook = Some("postUpdate".into());
    host.log.lock().unwrap().clear();
    let err = upgrade(tmp.path(), &host).err().expect("the upgrade fails");
    let err = format!("{err:#}");
    assert!(
        err.contains("rolled back: the node runs example 0.1.0 again")
            && err.contains("postUpdate hook's Job failed"),
        "{err}"
    );
    let log = log_of(&host, tmp.path());
    // The rollback hooks ran once planet ran the previous version again.
    let restart = log.find("== restart").unwrap();
    let rollback_hook = log.rfind("hook rollback").expect(&log);
    assert!(rollback_hook > log.rfind("planet start").unwrap() && rollback_hook > restart);
    assert_eq!(
        std::fs::read(layout.planet().config()).unwrap(),
        config_before
    );
    assert_eq!(
        ClusterRecord::load(&layout).unwrap().unwrap().version,
        "0.1.0"
    );
    assert!(
        !layout.hooks().join("update.yaml").exists(),
        "the previous hooks"
    );
    assert!(!layout.planet().images().join("test-2").exists());
    let plan = layout.journal().load().unwrap().unwrap();
    assert_eq!(plan.state, OpState::RolledBack);
    // What is installed is what was before: a new upgrade starts from it.
    let from = installed(&layout).unwrap();
    assert_eq!(
        (from.version.as_str(), from.planet_version.as_str()),
        ("0.1.0", "test-1")
    );
}

#[test]
fn a_new_volume_is_created_and_its_rollback_removes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut host = FakeHost::new(&tmp.path().join("root"), true);
    let (ctx, _) = install(tmp.path(), &host);
    let record_before = std::fs::read(ctx.layout.volumes_record()).unwrap();
    host.failing_hook = Some("postUpdate".into());
    host.log.lock().unwrap().clear();
    let cache = "        - name: app-cache\n          path: /srv/example/cache\n          targetPath: /var/lib/example-cache\n          createIfMissing: true\n          mode: \"0750\"\n";
    let add = |m: String| {
        m.replacen(
            "          mode: \"0750\"\n",
            &format!("          mode: \"0750\"\n{cache}"),
            1,
        ) + HOOKS
    };
    assert!(
        upgrade_to(tmp.path(), &host, &add).is_err(),
        "the postUpdate hook fails"
    );
    let log = log_of(&host, tmp.path());
    // Created before planet restarts on the configuration that mounts it, the topmost
    // missing directory recorded; removed by the rollback, the record as it was.
    let created = log.find("mkdir /srv/example/cache").expect(&log);
    assert!(created < log.find("== restart").unwrap(), "{log}");
    let removed = log.find("remove-empty-tree /srv").expect(&log);
    assert!(removed > log.rfind("planet start").unwrap(), "{log}");
    assert_eq!(
        std::fs::read(ctx.layout.volumes_record()).unwrap(),
        record_before
    );
}

#[test]
fn only_a_new_requirement_that_fails_fails_the_upgrade() {
    let attempt = |checks: &[(&str, &str, &str, bool)]| {
        let tmp = tempfile::tempdir().unwrap();
        let mut host = FakeHost::new(&tmp.path().join("root"), true);
        install(tmp.path(), &host);
        host.checks = checks
            .iter()
            .map(|(v, id, req, passes)| (v.to_string(), id.to_string(), req.to_string(), *passes))
            .collect();
        let result = upgrade(tmp.path(), &host).map(drop);
        (result, log_of(&host, tmp.path()))
    };
    // The disk's latency passed for the installed version and fails now (a busy host): the
    // same requirement, no difference. A new requirement that fails is one.
    let disk = [
        ("0.1.0", "disk", "p99 below 10 ms", true),
        ("0.2.0", "disk", "p99 below 10 ms", false),
    ];
    let (result, log) = attempt(&disk);
    result.expect("only an unchanged requirement fails");
    // Said, but not as a failure.
    assert!(
        log.contains("disk: disk (p99 below 10 ms) is not met here, as the installed version asks the same: it does not fail the upgrade"),
        "{log}"
    );
    let ram = ("0.2.0", "ram", "at least 64GB", false);
    let err = format!("{:#}", attempt(&[disk[0], disk[1], ram]).0.unwrap_err());
    assert!(
        err.contains("differ from the installed ones fail on this host (ram)"),
        "{err}"
    );
}

/// A joined node's agent as the rollout sees it: it does what its target says, failing the
/// action `fail`; every target it got, in order.
fn fake_node(
    nodes_dir: &Path,
    node: &'static str,
    fail: Option<rpc::agent::rollout::Action>,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<Vec<rpc::agent::rollout::Target>>,
) {
    use rpc::agent::rollout::{Report, Rollout, Step, StepState};
    std::fs::create_dir_all(nodes_dir).unwrap();
    std::fs::write(nodes_dir.join(format!("{node}.json")), "{}").unwrap();
    let rollout = Rollout::of(nodes_dir);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
            if let Some(target) = rollout.target(node).unwrap()
                && seen.last() != Some(&target)
            {
                // A transfer needs the new version staged, with its image.
                let unstaged = target.action == rpc::agent::rollout::Action::Fetch
                    && !rollout.staged().unwrap().is_some_and(|s| {
                        s.version == target.version
                            && s.image_dir.join(cluster_image::layout::INDEX).is_file()
                    });
                let failed = fail == Some(target.action) || unstaged;
                let step = Step {
                    operation: target.operation.clone(),
                    action: target.action,
                    state: if failed {
                        StepState::Failed
                    } else {
                        StepState::Done
                    },
                    message: if failed {
                        format!("its {:?} failed", target.action)
                    } else {
                        "done".into()
                    },
                };
                let at_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64;
                let report = Report {
                    runs: target.version.clone(),
                    step: Some(step),
                    at_ms,
                };
                rollout.set_report(node, &report).unwrap();
                seen.push(target);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        seen
    });
    (stop, thread)
}

#[test]
fn joined_nodes_are_upgraded_after_the_first_and_rolled_back_before_it() {
    use rpc::agent::rollout::Action;
    let tmp = tempfile::tempdir().unwrap();
    let mut host = FakeHost::new(&tmp.path().join("root"), true);
    let (ctx, _) = install(tmp.path(), &host);
    let (stop, node) = fake_node(&ctx.layout.joined_nodes(), "second", None);
    host.failing_hook = Some("postUpdate".into());
    host.log.lock().unwrap().clear();
    let err = upgrade(tmp.path(), &host).err().expect("the upgrade fails");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let asked: Vec<(Action, String)> = node
        .join()
        .unwrap()
        .into_iter()
        .map(|t| (t.action, t.version))
        .collect();
    assert_eq!(
        asked,
        [
            (Action::Check, "0.2.0".to_string()),
            (Action::Fetch, "0.2.0".to_string()),
            (Action::Upgrade, "0.2.0".to_string()),
            (Action::Rollback, "0.1.0".to_string())
        ]
    );
    assert!(
        format!("{err:#}").contains("runs example 0.1.0 again"),
        "{err:#}"
    );
    let log = log_of(&host, tmp.path());
    // On the node before the first node stops planet; no longer staged once rolled back.
    let transferred = log.find("transfer: node second: done").expect(&log);
    assert!(transferred < log.find("planet stop").unwrap(), "{log}");
    let rollout = rpc::agent::rollout::Rollout::of(&ctx.layout.joined_nodes());
    assert_eq!(rollout.staged().unwrap(), None);
    let (upgraded, returned) = (
        log.find("nodes: node second runs 0.2.0").expect(&log),
        log.find("nodes: node second runs 0.1.0 again").expect(&log),
    );
    // After the first node's health gate; back before the first node's restart is undone.
    assert!(log.find("== health").unwrap() < upgraded);
    assert!(returned < log.rfind("planet start").unwrap(), "{log}");
}

/// An upgrade from the installed 0.1.0 with a joined node that fails `action`: the first
/// node's host (its log cleared at the upgrade's start), the error, and every target the node
/// got.
fn upgrade_failing_on_a_node(
    action: rpc::agent::rollout::Action,
) -> (
    tempfile::TempDir,
    FakeHost,
    crate::install::Ctx,
    String,
    Vec<rpc::agent::rollout::Target>,
) {
    let tmp = tempfile::tempdir().unwrap();
    let host = FakeHost::new(&tmp.path().join("root"), true);
    let (ctx, _) = install(tmp.path(), &host);
    let (stop, node) = fake_node(&ctx.layout.joined_nodes(), "second", Some(action));
    host.log.lock().unwrap().clear();
    let err = upgrade(tmp.path(), &host).err().expect("the upgrade fails");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let targets = node.join().unwrap();
    (tmp, host, ctx, format!("{err:#}"), targets)
}

#[test]
fn a_joined_nodes_failure_fails_the_upgrade_with_its_reason() {
    use rpc::agent::rollout::Action;
    let (_tmp, _host, _ctx, err, targets) = upgrade_failing_on_a_node(Action::Upgrade);
    assert!(
        err.contains("node second: its Upgrade failed") && err.contains("runs example 0.1.0 again"),
        "{err}"
    );
    let actions: Vec<Action> = targets.iter().map(|t| t.action).collect();
    assert_eq!(
        actions,
        [
            Action::Check,
            Action::Fetch,
            Action::Upgrade,
            Action::Rollback
        ]
    );
}

#[test]
fn a_joined_nodes_failed_transfer_stops_the_upgrade_before_planet_changes() {
    use rpc::agent::rollout::Action;
    let (tmp, host, ctx, err, targets) = upgrade_failing_on_a_node(Action::Fetch);
    assert!(
        err.contains("did not reach 1 of the other nodes, and nothing was changed")
            && err.contains("node second: its Fetch failed")
            && err.contains("runs example 0.1.0 again"),
        "{err}"
    );
    let actions: Vec<Action> = targets.iter().map(|t| t.action).collect();
    assert_eq!(actions, [Action::Check, Action::Fetch]);
    let log = log_of(&host, tmp.path());
    assert!(
        !log.contains("planet stop") && !log.contains("== planet-image"),
        "{log}"
    );
    let rollout = rpc::agent::rollout::Rollout::of(&ctx.layout.joined_nodes());
    assert_eq!(rollout.staged().unwrap(), None);
}

#[test]
fn a_joined_nodes_failed_checks_stop_the_upgrade_before_anything_changes() {
    use rpc::agent::rollout::Action;
    let (tmp, host, ctx, err, targets) = upgrade_failing_on_a_node(Action::Check);
    assert!(
        err.contains("node second: its Check failed") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(targets.len(), 1, "{targets:?}");
    // The node got what it checks against: the new manifest, and the upgrade's ignores.
    let manifest = targets[0].manifest.as_deref().unwrap_or_default();
    assert!(manifest.contains("resourceVersion: 0.2.0"), "{manifest}");
    let log = log_of(&host, tmp.path());
    assert!(
        !log.contains("== etcd-backup") && !log.contains("planet stop"),
        "{log}"
    );
    assert_eq!(
        ClusterRecord::load(&ctx.layout).unwrap().unwrap().version,
        "0.1.0"
    );
}
