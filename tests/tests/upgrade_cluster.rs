//! A rolling upgrade of a real two-node cluster: the first node installs 1.0.0, a second "host"
//! (a network namespace of its own) joins and becomes a control plane node. `gravity upgrade`
//! to 1.1.0 on the first node upgrades it, then the second node through that node's agent,
//! which fetches 1.1.0 from the first node: both run 1.1.0's kubelet arguments and are Ready,
//! the data stays. 1.2.0's postUpdate hook fails once both nodes run it: the upgrade rolls
//! both back, the second node first, and the cluster runs 1.1.0 again. `gravity gc` removes
//! what only a rollback needed; then the second node leaves the cluster cleanly.

use std::time::Instant;

use tests::cluster::{Joiner, all_ready, kubectl, parse};
use tests::install::{Installation, text};
use tests::planet::SharedServiceUser;
use tests::upgrade::{self, cmdline};

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

fn upgrade(first: &Installation, image: &std::path::Path) -> (bool, String, f64) {
    let started = Instant::now();
    let out = first.gravity(&["upgrade", "--image", image.to_str().unwrap(), "--yes"]);
    (
        out.status.success(),
        text(&out),
        started.elapsed().as_secs_f64(),
    )
}

#[test]
fn a_rolling_upgrade_reaches_the_joined_node_and_a_failed_one_rolls_both_back() {
    let _planet = SharedServiceUser::hold();
    let first = Installation::new();
    let tmp = tempfile::tempdir().unwrap();
    let web = upgrade::web_images(tmp.path(), &["1.1", "1.2"]);
    let images = upgrade::images(tmp.path(), &web, &upgrade::VERSIONS);

    let out = first.install_example_variant(&images[0]);
    assert!(out.status.success(), "install of 1.0.0: {}", text(&out));
    let status = first.status();
    let (addr, token, hash) = parse(status["join"]["command"].as_str().expect("a join command"));
    let second = Joiner::new(&first);
    let out = second.join(&addr, &token, &hash, &[]);
    assert!(out.status.success(), "join: {}", text(&out));
    assert!(
        text(&out).contains("follows the cluster's upgrades"),
        "the node's agent: {}",
        text(&out)
    );
    all_ready(&first, 2).unwrap();
    let out = second.gravity(&["agent", "status"], &[]);
    assert!(out.status.success(), "agent status: {}", text(&out));
    first.exec(&["etcdctl", "put", "/rolling-upgrade", "kept"]);

    // 1.1.0: the first node, then the second, each drained, restarted, healthy, uncordoned.
    let (ok, said, secs) = upgrade(&first, &images[1]);
    assert!(ok, "the upgrade to 1.1.0 failed: {said}");
    eprintln!("two nodes upgraded to 1.1.0 in {secs:.1}s");
    for line in said.lines().filter(|l| l.contains("second")) {
        eprintln!("  {line}");
    }
    assert!(said.contains("the join agent serves 1.1.0"), "{said}");
    assert!(said.contains("node second runs 1.1.0"), "{said}");
    // Progress is sampled (the node reports every 2 s): its restart takes longer than that.
    assert!(
        said.contains("second: restart"),
        "the node's progress: {said}"
    );
    assert_eq!(version_in(&first.state), "1.1.0");
    assert_eq!(version_in(&second.state()), "1.1.0");
    let kubelet = joined_cmdline(&second, "kubelet");
    assert!(
        kubelet.contains("--max-pods=100") && !kubelet.contains("--max-pods=110"),
        "the joined node's kubelet: {kubelet}"
    );
    assert!(cmdline(&first, "kubelet").contains("--max-pods=100"));
    // The node fetched 1.1.0 from the first node, and keeps 1.0.0's planet for a rollback.
    assert!(second.state().join("images/example-1.1.0/gravity").exists());
    all_ready(&first, 2).unwrap();
    let unschedulable = kubectl(
        &first,
        &[
            "get",
            "node",
            "second",
            "-o",
            "jsonpath={.spec.unschedulable}",
        ],
    )
    .unwrap();
    assert_eq!(unschedulable, "", "the second node stays cordoned");
    assert_eq!(
        first
            .exec(&["etcdctl", "get", "/rolling-upgrade", "--print-value-only"])
            .trim(),
        "kept"
    );

    // 1.2.0: both nodes upgraded, then its postUpdate hook fails: both come back to 1.1.0.
    let (ok, said, secs) = upgrade(&first, &images[2]);
    assert!(!ok, "the upgrade to 1.2.0 should fail: {said}");
    eprintln!("the failed upgrade to 1.2.0 and its rollback took {secs:.1}s");
    assert!(said.contains("node second runs 1.2.0"), "{said}");
    assert!(said.contains("the post-update check failed"), "{said}");
    assert!(said.contains("node second runs 1.1.0 again"), "{said}");
    assert!(
        said.contains("rolled back: the node runs example 1.1.0 again"),
        "{said}"
    );
    assert_eq!(version_in(&first.state), "1.1.0");
    assert_eq!(version_in(&second.state()), "1.1.0");
    let kubelet = joined_cmdline(&second, "kubelet");
    assert!(
        kubelet.contains("--max-pods=100"),
        "the joined node's kubelet after the rollback: {kubelet}"
    );
    all_ready(&first, 2).unwrap();
    assert_eq!(
        first
            .exec(&["etcdctl", "get", "/rolling-upgrade", "--print-value-only"])
            .trim(),
        "kept"
    );
    let status = first.status();
    assert_eq!(status["healthy"], true, "{status:#}");

    // gc removes what the rollbacks no longer need: 1.0.0's planet image on the first node
    // (the second removed it when it finished 1.2.0), the images the second node fetched for
    // 1.0.0 and 1.2.0; what 1.1.0 runs on stays.
    for (node, out, removed) in [
        ("first", first.gravity(&["gc"]), "removed planet image"),
        (
            "second",
            second.gravity(&["gc"], &[]),
            "removed cluster image example-1.0.0",
        ),
    ] {
        assert!(out.status.success(), "gc on {node}: {}", text(&out));
        assert!(text(&out).contains(removed), "gc on {node}: {}", text(&out));
    }
    let images = second.state().join("images");
    assert!(images.join("example-1.1.0").exists());
    assert!(!images.join("example-1.0.0").exists() && !images.join("example-1.2.0").exists());
    let out = second.gravity(&["gc"], &[]);
    assert!(text(&out).contains("nothing to remove"), "{}", text(&out));
    all_ready(&first, 2).unwrap();

    // The upgraded node leaves as any joined node does.
    let out = second.gravity(&["leave", "--yes"], &[]);
    assert!(out.status.success(), "leave: {}", text(&out));
    assert!(!second.state().exists());
    let out = first.uninstall();
    assert!(out.status.success(), "uninstall: {}", text(&out));
}
