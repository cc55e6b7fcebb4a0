//! Joining a real cluster over the network: the first node's join agent, started by its
//! install, answers a second "host" (a network namespace of its own, reaching the first
//! node's advertise address through a veth link) that runs `gravity join` with the command
//! `gravity status` printed. Strangers are refused; an interrupted join resumes; a rolled back
//! join is forgotten on both sides. The second host becomes a control plane node (an etcd
//! member), a third one, joining at the same time, a worker (its profile pins it).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use tests::cluster::{Joiner, all_ready, etcd_members, kubectl, parse};
use tests::install::{Installation, text};
use tests::planet::SharedServiceUser;
use tests::wait::eventually;

/// GETs `/` from `ip:8080` inside pod `from` (busybox's nc: its wget crashes in Debian's
/// static build): the body of a 200 answer.
fn http_from(first: &Installation, from: &str, ip: &str) -> Result<String, String> {
    let line = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 5 {ip} 8080");
    let stdout = kubectl(
        first,
        &["exec", from, "--", "/bin/busybox", "sh", "-c", &line],
    )?;
    match stdout.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        _ => Err(stdout),
    }
}

fn tokens(first: &Installation) -> String {
    let out = first.gravity(&["token", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: &Output, what: &str, expect: &str) {
    assert!(!out.status.success(), "{what}: the join was not refused");
    assert!(
        text(out).contains(expect),
        "{what}: expected \"{expect}\" in:\n{}",
        text(out)
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_host_joins_with_the_printed_command_and_strangers_are_refused() {
    let _planet = SharedServiceUser::hold();
    let first = Installation::new();
    let out = first.install(&[]);
    assert!(out.status.success(), "install failed:\n{}", text(&out));

    let status = first.status();
    assert_eq!(status["join"]["agent"], true, "{status:#}");
    assert_eq!(status["healthy"], true, "{status:#}");
    let command = status["join"]["command"].as_str().expect("a join command");
    let (addr, token, hash) = parse(command);
    assert_eq!(
        addr,
        status["cluster"]["advertiseIp"].as_str().unwrap_or(&addr)
    );
    // Secrets are root's alone; only hashes are stored.
    let agent = first.state.join("agent");
    assert_eq!(mode(&agent.join("tokens.json")), 0o600);
    assert_eq!(mode(&agent.join("agent.key")), 0o600);
    assert_eq!(mode(&agent.join("join-token")), 0o600);
    let secret = token.split('.').nth(1).unwrap();
    assert!(
        !std::fs::read_to_string(agent.join("tokens.json"))
            .unwrap()
            .contains(secret)
    );

    let joiner = Joiner::new(&first);

    // Strangers: nothing is left on either side.
    let created = first.gravity(&["token", "create", "--ttl", "1h", "--single-use"]);
    assert!(created.status.success(), "{}", text(&created));
    let revoked_token = String::from_utf8_lossy(&created.stdout).trim().to_string();
    let wrong_hash = format!("sha256:{}", "0".repeat(64));
    refused(
        &joiner.join(&addr, &token, &wrong_hash, &[]),
        "wrong CA hash",
        "does not match --ca-hash",
    );
    refused(
        &joiner.join(&addr, "abcdef.0123456789abcdef", &hash, &[]),
        "unknown token",
        "unknown token",
    );
    let revoked = revoked_token.split('.').next().unwrap().to_string();
    assert!(
        first
            .gravity(&["token", "revoke", &revoked])
            .status
            .success()
    );
    refused(
        &joiner.join(&addr, &revoked_token, &hash, &[]),
        "revoked token",
        "revoked",
    );
    for left in ["agent", "operation", "images"] {
        assert!(
            !joiner.state().join(left).exists(),
            "a refused join left {left} behind"
        );
    }
    assert!(
        !agent.join("nodes").exists(),
        "a refused join left a node record"
    );
    // A profile the cluster lacks is refused before anything is fetched; undone, it leaves
    // nothing on either side.
    let out = joiner.join_as(&addr, &token, &hash, &["--role=nosuch"], &[]);
    refused(
        &out,
        "unknown profile",
        "the cluster has no node profile `nosuch` (it has: node, worker)",
    );
    assert!(!joiner.state().join("images").exists());
    let out = joiner.gravity(&["plan", "rollback"], &[]);
    assert!(out.status.success(), "rollback failed:\n{}", text(&out));
    assert!(!agent.join("nodes/second.json").exists());

    // Killed right after the cluster signed the node's certificate (before the node kept it),
    // in the middle of the transfer, before the checks, before the credentials, while planet
    // starts, with planet started, and before the record; each resume goes on from there.
    let out = joiner.join(
        &addr,
        &token,
        &hash,
        &[("GRAVITY_CRASH_AT", "authenticate:during")],
    );
    assert_eq!(
        out.status.signal(),
        Some(9),
        "the failpoint did not fire:\n{}",
        text(&out)
    );
    let resume = |crash: &str| {
        let token_flag = format!("--token={token}");
        joiner.gravity(
            &["join", "--resume", &token_flag],
            &[("GRAVITY_CRASH_AT", crash)],
        )
    };
    let killed_at = |crash: &str| {
        let out = resume(crash);
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{crash}: the failpoint did not fire:\n{}",
            text(&out)
        );
    };
    for crash in ["fetch:during", "checks:before"] {
        killed_at(crash);
    }
    // A firewall on the first node that lets the agent through but not the apiserver: the
    // checks name the port; once it is open, the resumed join goes on.
    let first_ip = addr.rsplit_once(':').map_or(addr.as_str(), |(ip, _)| ip);
    let rule = [
        "INPUT",
        "-p",
        "tcp",
        "--dport",
        "6443",
        "-s",
        "10.214.0.2",
        "-j",
        "REJECT",
    ];
    first.ns.run(&[&["iptables", "-I"][..], &rule[..]].concat());
    let out = resume("none");
    first.ns.run(&[&["iptables", "-D"][..], &rule[..]].concat());
    refused(
        &out,
        "a filtered apiserver port",
        &format!("preflight check failed on this host (cluster:{first_ip}:6443)"),
    );
    assert!(
        text(&out).contains("let this host connect to TCP port 6443"),
        "{}",
        text(&out)
    );
    for crash in [
        "credentials:before",
        "start:during",
        "promote:before",
        "health:before",
        "finish:before",
    ] {
        killed_at(crash);
    }
    assert!(joiner.state().join("agent/node.crt").exists());
    // The last resume, and a third host's whole join at the same time, as a worker: its
    // profile pins it.
    let third = Joiner::named(&first, "third", 215);
    let token3 =
        String::from_utf8_lossy(&first.gravity(&["token", "create", "--single-use"]).stdout)
            .trim()
            .to_string();
    let (out, out3) = std::thread::scope(|s| {
        let third = s.spawn(|| third.join_as(&addr, &token3, &hash, &["--role=worker"], &[]));
        (resume("none"), third.join().unwrap())
    });
    let said = text(&out);
    eprintln!("{said}");
    assert!(out.status.success(), "the join failed:\n{said}");
    assert!(said.contains("joined the cluster"), "{said}");
    assert!(
        out3.status.success(),
        "the third host's join failed:\n{}",
        text(&out3)
    );
    assert_eq!(mode(&joiner.state().join("agent/node.key")), 0o600);
    assert!(agent.join("nodes/second.json").exists());
    assert!(
        tokens(&first)
            .lines()
            .any(|l| l.starts_with(token.split('.').next().unwrap()) && l.contains(" 1 ")),
        "the token's use is not counted:\n{}",
        tokens(&first)
    );
    // A control plane node's PKI is made on it, with the cluster's CA (whose key it needs:
    // its controller manager signs); a worker's holds kubelet's own keys, never the CA's key.
    let pki = joiner.state().join("pki");
    assert_eq!(mode(&pki.join("ca.key")), 0o600);
    assert_eq!(mode(&pki.join("etcd-peer.key")), 0o600);
    assert_eq!(mode(&pki.join("admin.kubeconfig")), 0o600);
    assert_eq!(
        std::fs::read(pki.join("sa.pub")).unwrap(),
        std::fs::read(first.state.join("pki/sa.pub")).unwrap()
    );
    let worker_pki = third.state().join("pki");
    assert_eq!(mode(&worker_pki.join("kubelet.key")), 0o600);
    assert_eq!(mode(&worker_pki.join("kubelet.kubeconfig")), 0o600);
    assert!(
        !worker_pki.join("ca.key").exists(),
        "a worker holds the CA's key"
    );
    assert!(!worker_pki.join("admin.kubeconfig").exists());
    // The preflight ran here and against the first node (its agent served the peer checks).
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(joiner.state().join("checks/join.json")).unwrap())
            .unwrap();
    let checks = report["checks"].as_array().unwrap();
    let peer = |suffix: &str| {
        checks
            .iter()
            .find(|c| {
                c["id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("peer:") && id.ends_with(suffix))
            })
            .unwrap_or_else(|| panic!("no peer check *{suffix} in {report:#}"))
    };
    assert_eq!(peer(":clock")["status"], "pass", "{report:#}");
    assert_eq!(peer(":rate:send")["status"], "pass", "{report:#}");
    // etcd's and the registry's ports answer on the first node: reachable, not "in use".
    assert_eq!(peer(":port:tcp/2379-2380")["status"], "pass", "{report:#}");

    // The fetched image is the first node's, file for file.
    let images = joiner.state().join("images");
    let fetched = std::fs::read_dir(&images)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let out = joiner.gravity(&["image", "verify", fetched.to_str().unwrap()], &[]);
    assert!(
        out.status.success(),
        "the fetched image does not verify:\n{}",
        text(&out)
    );

    // All three nodes are Ready; a joined one is healthy by its own status, as a worker.
    let nodes = eventually("all nodes Ready", Duration::from_secs(180), || {
        let nodes = all_ready(&first, 3)?;
        let joined = nodes.contains("second=True") && nodes.contains("third=True");
        joined.then_some(nodes.clone()).ok_or(nodes)
    });
    eprintln!("nodes: {nodes}");
    // The example's postNodeAdd hook ran for the new node, in the cluster.
    let labels = kubectl(
        &first,
        &["get", "node", "second", "-o", "jsonpath={.metadata.labels}"],
    )
    .unwrap();
    assert!(
        labels.contains("\"example.com/joined\":\"true\""),
        "{labels}"
    );
    assert!(said.contains("postNodeAdd hook ran"), "{said}");
    // etcd has two voting members: the first node's and the second's (promoted).
    let own = first.status()["cluster"]["nodeName"]
        .as_str()
        .unwrap()
        .to_string();
    let mut two = vec![format!("{own}=false"), "second=false".to_string()];
    two.sort();
    assert_eq!(etcd_members(&first), two);
    let status_of = |joiner: &Joiner| {
        let out = joiner.gravity(&["status", "--output", "json"], &[]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(status["healthy"], true, "{status:#}");
        assert!(
            status["join"].is_null(),
            "only the first node serves joins: {status:#}"
        );
        let units = status["planet"]["units"].as_array().unwrap().clone();
        let unit = move |name: &str| {
            units.iter().find(|u| u["name"] == name).unwrap()["activeState"]
                .as_str()
                .unwrap()
                .to_string()
        };
        (status, unit)
    };
    // The control plane node runs etcd and an apiserver of its own, not the registry; its
    // kubectl asks its own apiserver.
    let (status, unit) = status_of(&joiner);
    assert_eq!(unit("planet-etcd.service"), "active", "{status:#}");
    assert_eq!(
        unit("planet-kube-control-plane.service"),
        "active",
        "{status:#}"
    );
    assert_eq!(unit("planet-registry.service"), "inactive", "{status:#}");
    assert!(
        status["cluster"]["joined"]["etcd"].is_string(),
        "{status:#}"
    );
    let out = joiner.gravity(&["kubectl", "get", "nodes", "-o", "name"], &[]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("node/third"),
        "{}",
        text(&out)
    );
    // The worker runs neither.
    let (status, unit) = status_of(&third);
    assert_eq!(unit("planet-etcd.service"), "inactive", "{status:#}");
    assert_eq!(
        unit("planet-kube-control-plane.service"),
        "inactive",
        "{status:#}"
    );
    assert_eq!(unit("planet-kube-node.service"), "active", "{status:#}");

    // The worker reaches the apiservers through its agent's proxy, which follows the cluster's
    // list: with the first node's apiserver stopped, the worker's kubelet keeps renewing its
    // lease through the second node's.
    let kubeconfig = std::fs::read_to_string(third.state().join("pki/kubelet.kubeconfig")).unwrap();
    assert!(
        kubeconfig.contains("server: https://127.0.0.1:6444"),
        "{kubeconfig}"
    );
    let list = eventually(
        "the worker's list of apiservers",
        Duration::from_secs(60),
        || {
            let list = std::fs::read_to_string(third.state().join("agent/apiservers.json"))
                .unwrap_or_default();
            let both = list.contains(&format!("\"{first_ip}:6443\""))
                && list.contains("\"10.214.0.2:6443\"");
            both.then(|| list.clone()).ok_or(list)
        },
    );
    eprintln!(
        "the worker's apiservers: {}",
        list.split_whitespace().collect::<String>()
    );
    let renewed = || {
        let out = joiner.gravity(
            &[
                "kubectl",
                "get",
                "lease",
                "-n",
                "kube-node-lease",
                "third",
                "-o",
                "jsonpath={.spec.renewTime}",
            ],
            &[],
        );
        let time = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !time.is_empty())
            .then_some(time)
            .ok_or_else(|| text(&out))
    };
    first.exec(&["systemctl", "stop", "planet-kube-control-plane.service"]);
    let before = eventually("the worker's lease", Duration::from_secs(30), &renewed);
    // Two renewals after the stop: one in flight as it stopped may have gone to the first
    // node's apiserver, the second cannot have.
    let mut seen = vec![before];
    eventually(
        "two renewals of the worker's lease",
        Duration::from_secs(90),
        || {
            let now = renewed()?;
            if seen.last() != Some(&now) {
                seen.push(now);
            }
            (seen.len() >= 3).then_some(()).ok_or(format!("{seen:?}"))
        },
    );
    let readyz = third.ns.run(&[
        "curl",
        "-sk",
        "--max-time",
        "5",
        "https://127.0.0.1:6444/readyz",
    ]);
    assert_eq!(readyz.trim(), "ok", "the worker's proxy to the apiservers");
    first.exec(&["systemctl", "start", "planet-kube-control-plane.service"]);
    eventually(
        "the first node's apiserver again",
        Duration::from_secs(120),
        || kubectl(&first, &["get", "--raw", "/readyz"]),
    );
    eprintln!(
        "the worker's lease was renewed at {seen:?} while the first node's apiserver was stopped"
    );

    // These tests skip the forwarding check (a real install turns it on, host-wide): pods'
    // traffic between nodes is routed, so each "host" forwards.
    for ns in [&first.ns, &joiner.ns, &third.ns] {
        ns.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    }

    // A pod on the joined node runs the vendored image, pulled from the first node's registry,
    // and pods on the two nodes reach each other over the overlay.
    let image = kubectl(
        &first,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    )
    .unwrap();
    let pod = format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "on-second"}},
            "spec": {{"nodeName": "second", "terminationGracePeriodSeconds": 0,
                     "containers": [{{"name": "web", "image": "{image}"}}]}}}}"#
    );
    let pod_file = joiner.dir.path().join("on-second.json");
    std::fs::write(&pod_file, pod).unwrap();
    kubectl(&first, &["apply", "-f", pod_file.to_str().unwrap()]).unwrap();
    let ip_of = |selector: &[&str]| {
        let mut args = vec!["get", "pods"];
        args.extend_from_slice(selector);
        args.extend([
            "-o",
            "jsonpath={.items[0].status.phase} {.items[0].status.podIP} {.items[0].metadata.name}",
        ]);
        let out = kubectl(&first, &args)?;
        match out.split_whitespace().collect::<Vec<_>>()[..] {
            ["Running", ip, name] => Ok((ip.to_string(), name.to_string())),
            _ => Err(out),
        }
    };
    let (second_ip, _) = eventually(
        "the pod on the joined node runs",
        Duration::from_secs(120),
        || ip_of(&["--field-selector=metadata.name=on-second"]),
    );
    let (first_ip, first_pod) = eventually(
        "the example's web pod runs",
        Duration::from_secs(60),
        || ip_of(&["-l", "app=web"]),
    );
    assert_ne!(
        second_ip.rsplit_once('.').unwrap().0,
        first_ip.rsplit_once('.').unwrap().0,
        "each node has its own pod subnet"
    );
    let page = eventually(
        "first -> second, pod to pod",
        Duration::from_secs(60),
        || http_from(&first, &first_pod, &second_ip),
    );
    assert_eq!(page.trim(), "hello from the example cluster");
    let page = eventually(
        "second -> first, pod to pod",
        Duration::from_secs(60),
        || http_from(&first, "on-second", &first_ip),
    );
    assert_eq!(page.trim(), "hello from the example cluster");

    // A host that is gone for good (say the third) is removed on the first node; the first
    // node itself is not.
    assert!(agent.join("nodes/third.json").exists());
    let out = first.gravity(&["remove", &own, "--yes"]);
    assert!(
        !out.status.success() && text(&out).contains("control plane"),
        "{}",
        text(&out)
    );
    let out = first.gravity(&["remove", "nosuch", "--yes"]);
    assert!(
        !out.status.success() && text(&out).contains("no node nosuch"),
        "{}",
        text(&out)
    );
    let out = first.gravity(&["remove", "third", "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!agent.join("nodes/third.json").exists());
    let nodes = kubectl(&first, &["get", "nodes", "-o", "name"]).unwrap();
    assert!(
        !nodes.contains("third"),
        "the removed node is left: {nodes}"
    );
    assert!(
        tokens(&first)
            .lines()
            .any(|l| l.starts_with(token3.split('.').next().unwrap()) && l.contains(" 0/1 ")),
        "the removed node's single-use token is not free again:\n{}",
        tokens(&first)
    );
    // Its host comes back: uninstalling there works, the cluster has forgotten it already
    // and refuses its certificate (hooks, drain) except to leave.
    let out = third.gravity(&["uninstall", "--yes"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("the cluster forgot node third already"),
        "{}",
        text(&out)
    );
    assert!(!third.state().exists());
    drop(third);

    // Undone on both sides: the node leaves Kubernetes too, and nothing of planet's network
    // stays on the joined host.
    let out = joiner.gravity(&["plan", "rollback"], &[]);
    assert!(out.status.success(), "rollback failed:\n{}", text(&out));
    // Drained first: its pods were evicted (the bare one deleted) before the node went.
    assert!(
        text(&out).contains("the cluster drained node second"),
        "{}",
        text(&out)
    );
    let gone = first.gravity(&["kubectl", "get", "pod", "on-second", "-o", "name"]);
    assert!(text(&gone).contains("NotFound"), "{}", text(&gone));
    assert_eq!(etcd_members(&first), [format!("{own}=false")]);
    assert!(
        !agent.join("nodes/second.json").exists(),
        "the cluster still records the node"
    );
    let nodes = kubectl(&first, &["get", "nodes", "-o", "name"]).unwrap();
    assert!(
        !nodes.contains("second"),
        "the Node object is left: {nodes}"
    );
    let links = joiner.ns.run(&["ip", "-o", "link", "show"]);
    for link in ["planet-vx", "cni0"] {
        assert!(
            !links.contains(link),
            "{link} is left on the joined host:\n{links}"
        );
    }
    assert!(!joiner.state().join("agent").exists());
    assert!(!joiner.state().join("pki").exists());
    assert!(!images.exists());
    // Healthy again once what the drain evicted runs on it (CoreDNS may have been on second).
    eventually(
        "the first node healthy after the rollback",
        Duration::from_secs(180),
        || {
            let status = first.status();
            if status["healthy"] == true {
                Ok(())
            } else {
                Err(format!("{status:#}"))
            }
        },
    );
}
