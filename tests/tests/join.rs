//! Joining a real cluster over the network: the first node's join agent, started by its
//! install, answers a second "host" (a network namespace of its own, reaching the first
//! node's advertise address through a veth link) that runs `gravity join` with the command
//! `gravity status` printed. Strangers are refused; an interrupted join resumes; a rolled back
//! join is forgotten on both sides.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Output;

use tests::install::{Installation, text};
use tests::netns::{self, NetNs};
use tests::{bins, serial};

/// A host of its own that routes to the first node's advertise address.
struct Joiner {
    ns: NetNs,
    _link: netns::Link,
    dir: tempfile::TempDir,
}

impl Joiner {
    fn new(first: &Installation) -> Joiner {
        let ns = NetNs::new("joiner");
        let link = netns::link(&first.ns, &ns, 214);
        ns.run(&["ip", "route", "add", "10.213.0.0/24", "via", &link.a_ip]);
        Joiner {
            ns,
            _link: link,
            dir: tempfile::Builder::new()
                .prefix("gravity-joiner-")
                .tempdir_in("/var/tmp")
                .unwrap(),
        }
    }

    fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    fn gravity(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = bins::gravity();
        self.ns.enter(&mut cmd);
        cmd.arg("--state-dir").arg(self.state()).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn join(&self, addr: &str, token: &str, hash: &str, env: &[(&str, &str)]) -> Output {
        self.gravity(
            &[
                "join",
                addr,
                &format!("--token={token}"),
                &format!("--ca-hash={hash}"),
                "--node-name=second",
                // As the install tests do: a new network namespace forwards nothing.
                "--ignore-preflight-errors=sysctl:net.ipv4.ip_forward,sysctl:net.bridge.bridge-nf-call-iptables",
            ],
            env,
        )
    }
}

/// The join command's parts: address, token, CA hash.
fn parse(command: &str) -> (String, String, String) {
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(&words[..2], ["gravity", "join"], "{command}");
    let flag = |name: &str| {
        words
            .iter()
            .find_map(|w| w.strip_prefix(&format!("--{name}=")))
            .unwrap_or_else(|| panic!("no --{name} in {command}"))
            .to_string()
    };
    (words[2].to_string(), flag("token"), flag("ca-hash"))
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
    let _lock = serial::lock("planet");
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

    // Killed right after the cluster signed the node's certificate (before the node kept it),
    // in the middle of the transfer, and before the checks; each resume goes on from there.
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
    for crash in ["fetch:during", "checks:before"] {
        let out = resume(crash);
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{crash}: the failpoint did not fire:\n{}",
            text(&out)
        );
    }
    assert!(joiner.state().join("agent/node.crt").exists());
    let out = resume("none");
    let said = text(&out);
    eprintln!("{said}");
    assert!(said.contains("admitted to the cluster"), "{said}");
    assert_eq!(mode(&joiner.state().join("agent/node.key")), 0o600);
    assert!(agent.join("nodes/second.json").exists());
    assert!(
        tokens(&first)
            .lines()
            .any(|l| l.starts_with(token.split('.').next().unwrap()) && l.contains(" 1 ")),
        "the token's use is not counted:\n{}",
        tokens(&first)
    );

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

    // Undone on both sides.
    let out = joiner.gravity(&["plan", "rollback"], &[]);
    assert!(out.status.success(), "rollback failed:\n{}", text(&out));
    assert!(
        !agent.join("nodes/second.json").exists(),
        "the cluster still records the node"
    );
    assert!(!joiner.state().join("agent").exists());
    assert!(!images.exists());
    assert_eq!(first.status()["healthy"], true);
}
