//! Three control plane nodes: two hosts join at the same time without a pinned role, and
//! both become control plane nodes (the first node's agent adds their etcd members one at a
//! time: etcd admits one learner at a time); a fourth one, joining a cluster whose etcd has
//! three members, becomes a worker. With one control plane node down, the other two keep
//! etcd's quorum and the cluster takes writes.

use std::time::Duration;

use tests::cluster::{Joiner, all_ready, etcd_members, kubectl, parse};
use tests::install::{Installation, text};
use tests::planet::SharedServiceUser;
use tests::wait::eventually;

fn units(joiner: &Joiner) -> serde_json::Value {
    let out = joiner.gravity(&["status", "--output", "json"], &[]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("gravity status: {e}: {}", text(&out)));
    assert_eq!(status["healthy"], true, "{status:#}");
    status["planet"]["units"].clone()
}

fn active(units: &serde_json::Value, name: &str) -> bool {
    units
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["name"] == name && u["activeState"] == "active")
}

#[test]
fn two_joins_at_once_make_three_control_plane_nodes_and_a_fourth_is_a_worker() {
    let _planet = SharedServiceUser::hold();
    let first = Installation::new();
    let out = first.install(&[]);
    assert!(out.status.success(), "install failed:\n{}", text(&out));
    let command = first.status()["join"]["command"]
        .as_str()
        .expect("a join command")
        .to_string();
    let (addr, token, hash) = parse(&command);
    let own = first.status()["cluster"]["nodeName"]
        .as_str()
        .unwrap()
        .to_string();

    // Dropped in reverse: the worker's join is undone first, then the control plane nodes'
    // (each removes its etcd member while its etcd still runs).
    let second = Joiner::named(&first, "second", 214);
    let third = Joiner::named(&first, "third", 215);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| second.join(&addr, &token, &hash, &[]));
        let b = s.spawn(|| third.join(&addr, &token, &hash, &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a.status.success(), "second's join failed:\n{}", text(&a));
    assert!(b.status.success(), "third's join failed:\n{}", text(&b));
    let mut three = vec![
        format!("{own}=false"),
        "second=false".to_string(),
        "third=false".to_string(),
    ];
    three.sort();
    assert_eq!(etcd_members(&first), three, "three voting members");
    for joiner in [&second, &third] {
        let units = units(joiner);
        assert!(active(&units, "planet-etcd.service"), "{units:#}");
        assert!(
            active(&units, "planet-kube-control-plane.service"),
            "{units:#}"
        );
        assert!(joiner.state().join("pki/ca.key").exists());
    }

    // etcd has three members: the next node, though of the same profile, is a worker.
    let fourth = Joiner::named(&first, "fourth", 216);
    let out = fourth.join(&addr, &token, &hash, &[]);
    assert!(
        out.status.success(),
        "fourth's join failed:\n{}",
        text(&out)
    );
    assert!(
        text(&out).contains("worker"),
        "the join does not say it is a worker:\n{}",
        text(&out)
    );
    let units = units(&fourth);
    assert!(!active(&units, "planet-etcd.service"), "{units:#}");
    assert!(
        !active(&units, "planet-kube-control-plane.service"),
        "{units:#}"
    );
    assert!(active(&units, "planet-kube-node.service"), "{units:#}");
    assert!(!fourth.state().join("pki/ca.key").exists());
    assert_eq!(etcd_members(&first).len(), 3);
    let nodes = eventually("four nodes Ready", Duration::from_secs(180), || {
        all_ready(&first, 4)
    });
    eprintln!("nodes: {nodes}");

    // One control plane node down: two of three members are a quorum, so the cluster still
    // takes writes; back up, its member catches up.
    let out = third.gravity(&["planet", "stop"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    eventually(
        "a write with one member down",
        Duration::from_secs(60),
        || {
            kubectl(
                &first,
                &["create", "configmap", "written-with-two-of-three"],
            )
        },
    );
    let out = third.gravity(&["planet", "start"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    eventually("third healthy again", Duration::from_secs(180), || {
        let out = third.gravity(&["status", "--output", "json"], &[]);
        let status: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        (status["healthy"] == true)
            .then_some(())
            .ok_or_else(|| status.to_string())
    });
    // Its own apiserver reads what was written while it was down.
    let out = third.gravity(
        &["kubectl", "get", "configmap", "written-with-two-of-three"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));

    // Each undone join removes its member: the first node's is left.
    for joiner in [&fourth, &third, &second] {
        let out = joiner.gravity(&["plan", "rollback"], &[]);
        assert!(out.status.success(), "rollback failed:\n{}", text(&out));
        assert!(!joiner.state().join("pki").exists());
    }
    assert_eq!(etcd_members(&first), [format!("{own}=false")]);
    assert_eq!(first.status()["healthy"], true);
}
