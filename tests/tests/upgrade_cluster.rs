//! A rolling upgrade of a real three-node cluster: the first node installs 1.0.0, two other
//! "hosts" (network namespaces of their own) join at once and run the control plane too, the
//! third on a profile of its own. `gravity upgrade` to 1.1.0 on the first node upgrades it,
//! then each other node through its agent, which fetches 1.1.0 from the first node (the first
//! node's upgrade killed with -9 while the second node is mid-step, then resumed): all run
//! 1.1.0's kubelet arguments and are Ready, the data stays, and the API answers throughout
//! (measured: a client that knows the three apiservers). 1.2.0 gives the third node's profile
//! a check that fails there: every node checks first, and the upgrade stops before anything
//! changes. Told to ignore it, the upgrade goes on, but 1.2.0 also gives that profile a kubelet
//! argument kubelet refuses: that node's health gate fails, and the upgrade rolls back the
//! nodes it did, the cluster runs 1.1.0 again. `gravity gc` removes what only a
//! rollback needed; then the joined nodes leave the cluster cleanly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tests::cluster::{
    ApiAvailability, Joiner, all_ready, etcd_members, kubectl, node_addresses, parse,
    watch_apiservers,
};
use tests::install::{Installation, text};
use tests::planet::SharedServiceUser;
use tests::upgrade::{self, Version, cmdline};

/// 1.0.0 and 1.1.0 as the single-node upgrade's; 1.2.0 breaks the spare profile's kubelet.
const VERSIONS: [Version<'static>; 3] = [
    upgrade::VERSIONS[0],
    upgrade::VERSIONS[1],
    (
        "1.2.0",
        "1.2",
        "--max-request-bytes=3145728",
        "--max-pods=90",
        "",
    ),
];

/// A profile of its own for the third node: a control plane node like the others until
/// 1.2.0, which adds a check that fails there, and kubelet arguments kubelet refuses.
fn spare_profile(version: &str) -> String {
    let (check, broken) = if version == "1.2.0" {
        (
            "      customChecks:\n        - description: The spare controller is there\n          script: |\n            echo \"no spare controller here\" >&2; exit 1\n",
            "    systemOptions:\n      kubelet:\n        args: [\"--max-pods=ninety\"]\n        hairpinMode: promiscuous-bridge\n",
        )
    } else {
        ("", "")
    };
    format!(
        "  - name: spare
    description: Any Linux host, on its own profile
    labels:
      role: spare
    requirements:
      volumes:
        - name: app-data
          path: /var/lib/example-data
          targetPath: /var/lib/example-data
          capacity: 1GB
          createIfMissing: true
          mode: \"0750\"
{check}{broken}"
    )
}

/// What a node's record says it runs.
fn version_in(state: &std::path::Path) -> String {
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("cluster.json")).unwrap()).unwrap();
    record["version"].as_str().unwrap().to_string()
}

/// The command line of `binary` inside the joined node's planet.
fn joined_cmdline(node: &Joiner, binary: &str) -> String {
    let out = node.gravity(&["planet", "exec", "--", "ps", "-eo", "args="], &[]);
    assert!(out.status.success(), "planet exec: {}", text(&out));
    upgrade::cmdline_in(&String::from_utf8_lossy(&out.stdout), binary)
}

fn upgrade(first: &Installation, image: &std::path::Path, args: &[&str]) -> (bool, String, f64) {
    let started = Instant::now();
    let mut all = vec!["upgrade", "--image", image.to_str().unwrap(), "--yes"];
    all.extend_from_slice(args);
    let out = first.gravity(&all);
    (
        out.status.success(),
        text(&out),
        started.elapsed().as_secs_f64(),
    )
}

/// Upgrades to `image` while a client asks every node's apiserver whether it is ready; the
/// upgrade is killed (-9) while the first joined node is mid-step, then resumed. What the
/// killed run said, and the resumed run's outcome.
fn crashed_upgrade_watching_the_api(
    first: &Installation,
    image: &std::path::Path,
) -> (String, (bool, String, f64), ApiAvailability) {
    let addresses: Vec<String> = node_addresses(first).into_iter().map(|(_, a)| a).collect();
    assert_eq!(addresses.len(), 3, "{addresses:?}");
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let watch = s.spawn(|| watch_apiservers(&first.ns, &addresses, &stop));
        let crashed = first
            .command()
            .arg("--state-dir")
            .arg(&first.state)
            .args(["upgrade", "--image", image.to_str().unwrap(), "--yes"])
            .env("GRAVITY_CRASH_AT", "nodes:during")
            .output()
            .unwrap();
        let started = Instant::now();
        let resumed = first.gravity(&["upgrade", "--resume"]);
        let result = (
            resumed.status.success(),
            text(&resumed),
            started.elapsed().as_secs_f64(),
        );
        stop.store(true, Ordering::Relaxed);
        (text(&crashed), result, watch.join().unwrap())
    })
}

#[test]
fn a_rolling_upgrade_keeps_the_api_up_and_a_failed_node_rolls_the_cluster_back() {
    let _planet = SharedServiceUser::hold();
    let first = Installation::new();
    let tmp = tempfile::tempdir().unwrap();
    let web = upgrade::web_images(tmp.path(), &["1.1", "1.2"]);
    let images = upgrade::images_with(tmp.path(), &web, &VERSIONS, |version, dir| {
        upgrade::add_profile(dir, &spare_profile(version))
    });

    let out = first.install_example_variant(&images[0]);
    assert!(out.status.success(), "install of 1.0.0: {}", text(&out));
    let status = first.status();
    let (addr, token, hash) = parse(status["join"]["command"].as_str().expect("a join command"));
    // Dropped in reverse: a failed test undoes the third node's join first.
    let second = Joiner::named(&first, "second", 214);
    let third = Joiner::named(&first, "third", 215);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| second.join(&addr, &token, &hash, &[]));
        let b = s.spawn(|| third.join_as(&addr, &token, &hash, &["--role=spare"], &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    for (node, out) in [("second", &a), ("third", &b)] {
        assert!(out.status.success(), "{node}'s join: {}", text(out));
        assert!(
            text(out).contains("follows the cluster's upgrades"),
            "{node}'s agent: {}",
            text(out)
        );
    }
    assert_eq!(etcd_members(&first).len(), 3, "three control plane nodes");
    all_ready(&first, 3).unwrap();
    first.exec(&["etcdctl", "put", "/rolling-upgrade", "kept"]);

    // 1.1.0: the first node, then the second, then the third, each drained, restarted,
    // healthy, uncordoned, while the other two serve the API. The first node's upgrade is
    // killed while the second node is mid-step; resumed, it waits for that node's step.
    let (crashed, (ok, said, secs), api) = crashed_upgrade_watching_the_api(&first, &images[1]);
    assert!(
        crashed.contains("second: ") && !crashed.contains("node second runs 1.1.0"),
        "the upgrade was not killed during the second node's step: {crashed}"
    );
    assert!(ok, "the resumed upgrade to 1.1.0 failed: {said}");
    // The first node's own phases, for the log: where its time went.
    for line in crashed
        .lines()
        .filter(|l| l.starts_with('[') || l.contains("planet runs the new version"))
    {
        eprintln!("  first: {line}");
    }
    eprintln!("the resumed upgrade finished three nodes on 1.1.0 in {secs:.1}s");
    for line in said.lines().filter(|l| l.contains("runs 1.1.0")) {
        eprintln!("  {line}");
    }
    eprintln!(
        "the API over {} rounds: longest time no apiserver answered {:.1}s; each one's longest outage: {:?}",
        api.rounds,
        api.none.as_secs_f64(),
        api.servers
    );
    // Each apiserver was down for its node's restart: the others answered meanwhile. A
    // round lasts at most 2.5 s (curl's limit on a loaded host): not two rounds in a row.
    assert!(
        api.servers.iter().all(|(_, down)| !down.is_zero()),
        "an apiserver that never went down was not restarted: {api:?}"
    );
    assert!(
        api.none.as_secs_f64() < 5.0,
        "the API was unreachable on every node for {:.1}s: {api:?}",
        api.none.as_secs_f64()
    );
    assert!(crashed.contains("the join agent serves 1.1.0"), "{crashed}");
    // Every node had 1.1.0's image before the first node restarted: its own step found it.
    let transferred = crashed
        .find("example 1.1.0 is on every node")
        .unwrap_or_else(|| panic!("the transfer phase did not finish: {crashed}"));
    assert!(
        transferred < crashed.find("Restart planet on the new version").unwrap(),
        "{crashed}"
    );
    for node in ["second", "third"] {
        assert!(
            crashed.contains(&format!("node {node}: example 1.1.0 in ")),
            "{crashed}"
        );
    }
    // Every node checked 1.1.0 before anything changed.
    for node in ["second", "third"] {
        assert!(
            crashed.contains(&format!("node {node}: the checks of 1.1.0 pass")),
            "{crashed}"
        );
    }
    for node in ["second", "third"] {
        assert!(said.contains(&format!("node {node} runs 1.1.0")), "{said}");
        // Progress is sampled (the node reports every 2 s): its restart takes longer.
        assert!(
            said.contains(&format!("{node}: restart")),
            "{node}'s progress: {said}"
        );
    }
    for (node, state) in [
        ("first", first.state.clone()),
        ("second", second.state()),
        ("third", third.state()),
    ] {
        assert_eq!(version_in(&state), "1.1.0", "{node}'s record");
    }
    for node in [&second, &third] {
        let kubelet = joined_cmdline(node, "kubelet");
        assert!(
            kubelet.contains("--max-pods=100") && !kubelet.contains("--max-pods=110"),
            "{}'s kubelet: {kubelet}",
            node.name
        );
        // The node fetched 1.1.0 from the first node, and keeps 1.0.0's planet for a rollback.
        assert!(node.state().join("images/example-1.1.0/gravity").exists());
    }
    assert!(cmdline(&first, "kubelet").contains("--max-pods=100"));
    all_ready(&first, 3).unwrap();
    let cordoned = kubectl(
        &first,
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.spec.unschedulable} {end}",
        ],
    )
    .unwrap();
    assert!(
        !cordoned.contains("true"),
        "a node stays cordoned: {cordoned}"
    );
    assert_eq!(
        first
            .exec(&["etcdctl", "get", "/rolling-upgrade", "--print-value-only"])
            .trim(),
        "kept"
    );

    // 1.2.0 asks the third node's profile for a check that fails there: every node checks
    // the new version before anything changes, and the upgrade stops there.
    let (ok, said, _) = upgrade(&first, &images[2], &[]);
    assert!(!ok, "the upgrade to 1.2.0 should fail its checks: {said}");
    for line in said.lines().filter(|l| l.contains("node ")) {
        eprintln!("  {line}");
    }
    assert!(
        said.contains("node third: ") && said.contains("(custom:1)"),
        "the third node's failed check: {said}"
    );
    assert!(
        said.contains("node second: the checks of 1.2.0 pass"),
        "{said}"
    );
    assert!(said.contains("nothing was changed"), "{said}");
    assert!(!said.contains("etcd's snapshot"), "{said}");
    for state in [first.state.clone(), second.state(), third.state()] {
        assert_eq!(version_in(&state), "1.1.0");
    }

    // Told to ignore that check, the first and second nodes upgrade; kubelet refuses the
    // third's arguments, its health gate fails: the third node rolls itself back, then the
    // upgrade the others.
    let (ok, said, secs) = upgrade(&first, &images[2], &["--ignore-preflight-errors=custom:1"]);
    assert!(!ok, "the upgrade to 1.2.0 should fail: {said}");
    eprintln!("the failed upgrade to 1.2.0 and its rollback took {secs:.1}s");
    for line in said
        .lines()
        .filter(|l| l.contains("third") || l.contains("rolling back"))
    {
        eprintln!("  {line}");
    }
    assert!(said.contains("node second runs 1.2.0"), "{said}");
    assert!(
        said.contains("planet-kube-node.service keeps exiting"),
        "the failed health gate does not say why: {said}"
    );
    // kubelet's own words reach the one who runs the upgrade.
    assert!(said.contains("--max-pods"), "{said}");
    assert!(said.contains("node third runs 1.1.0 again"), "{said}");
    assert!(said.contains("node second runs 1.1.0 again"), "{said}");
    assert!(
        said.contains("rolled back: the node runs example 1.1.0 again"),
        "{said}"
    );
    for (node, state) in [
        ("first", first.state.clone()),
        ("second", second.state()),
        ("third", third.state()),
    ] {
        assert_eq!(
            version_in(&state),
            "1.1.0",
            "{node}'s record after the rollback"
        );
    }
    for node in [&second, &third] {
        let kubelet = joined_cmdline(node, "kubelet");
        assert!(
            kubelet.contains("--max-pods=100"),
            "{}'s kubelet after the rollback: {kubelet}",
            node.name
        );
    }
    all_ready(&first, 3).unwrap();
    assert_eq!(etcd_members(&first).len(), 3);
    assert_eq!(
        first
            .exec(&["etcdctl", "get", "/rolling-upgrade", "--print-value-only"])
            .trim(),
        "kept"
    );
    let status = first.status();
    assert_eq!(status["healthy"], true, "{status:#}");

    // gc removes what the rollbacks no longer need: 1.0.0's planet image on the first node,
    // the cluster images the joined nodes fetched for 1.0.0 and 1.2.0; what 1.1.0 runs on
    // stays.
    let out = first.gravity(&["gc"]);
    assert!(out.status.success(), "gc on first: {}", text(&out));
    assert!(
        text(&out).contains("removed planet image"),
        "gc on first: {}",
        text(&out)
    );
    for node in [&second, &third] {
        let out = node.gravity(&["gc"], &[]);
        assert!(out.status.success(), "gc on {}: {}", node.name, text(&out));
        assert!(
            text(&out).contains("removed cluster image example-1.0.0"),
            "gc on {}: {}",
            node.name,
            text(&out)
        );
        let images = node.state().join("images");
        assert!(images.join("example-1.1.0").exists());
        assert!(!images.join("example-1.0.0").exists() && !images.join("example-1.2.0").exists());
        let out = node.gravity(&["gc"], &[]);
        assert!(text(&out).contains("nothing to remove"), "{}", text(&out));
    }
    all_ready(&first, 3).unwrap();

    // The upgraded nodes leave as any joined node does.
    for node in [&third, &second] {
        let out = node.gravity(&["leave", "--yes"], &[]);
        assert!(out.status.success(), "{} leaves: {}", node.name, text(&out));
        assert!(!node.state().exists());
    }
    let out = first.uninstall();
    assert!(out.status.success(), "uninstall: {}", text(&out));
}
