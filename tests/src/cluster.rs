//! A cluster of "hosts" on this machine: each joining host is a network namespace of its own,
//! linked to the first node's, with its own state directory, planets side by side (as kind
//! runs several nodes on one host).

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::bins;
use crate::install::{Installation, text};
use crate::netns::{self, NetNs};

/// A host of its own that routes to the first node's advertise address.
pub struct Joiner {
    pub ns: NetNs,
    _link: netns::Link,
    pub dir: tempfile::TempDir,
    pub name: &'static str,
}

impl Joiner {
    pub fn new(first: &Installation) -> Joiner {
        Joiner::named(first, "second", 214)
    }

    /// Another host, on the link subnet `10.<subnet>.0.0/24`.
    pub fn named(first: &Installation, name: &'static str, subnet: u8) -> Joiner {
        let ns = NetNs::new("joiner");
        let link = netns::link(&first.ns, &ns, subnet);
        // The first node's namespace is the router between the hosts (10.208.0.0/12): etcd
        // members reach each other, each from its own address (the one its certificate names).
        ns.run(&["ip", "route", "add", "10.208.0.0/12", "via", &link.a_ip]);
        let net = format!("10.{subnet}.0.0/24");
        first.ns.run(&[
            "ip",
            "route",
            "replace",
            &net,
            "dev",
            &link.a_dev,
            "src",
            "10.213.0.2",
        ]);
        first.ns.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        first.ns.run(&[
            "iptables",
            "-I",
            "FORWARD",
            "-s",
            "10.208.0.0/12",
            "-d",
            "10.208.0.0/12",
            "-j",
            "ACCEPT",
        ]);
        Joiner {
            name,
            ns,
            _link: link,
            dir: tempfile::Builder::new()
                .prefix("gravity-joiner-")
                .tempdir_in("/var/tmp")
                .unwrap(),
        }
    }

    pub fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    pub fn gravity(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = bins::gravity();
        self.ns.enter(&mut cmd);
        cmd.arg("--state-dir").arg(self.state()).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    pub fn join(&self, addr: &str, token: &str, hash: &str, env: &[(&str, &str)]) -> Output {
        self.join_as(addr, token, hash, &[], env)
    }

    pub fn join_as(
        &self,
        addr: &str,
        token: &str,
        hash: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Output {
        let app_data = format!("app-data:{}", self.dir.path().join("app-data").display());
        let (token, hash, name) = (
            format!("--token={token}"),
            format!("--ca-hash={hash}"),
            format!("--node-name={}", self.name),
        );
        let mut args = vec![
            "join",
            addr,
            &token,
            &hash,
            &name,
            "--mount",
            &app_data,
            // As the install tests do: a new network namespace forwards nothing.
            "--ignore-preflight-errors=sysctl:net.ipv4.ip_forward,sysctl:net.bridge.bridge-nf-call-iptables,sysctl:fs.inotify.*",
        ];
        args.extend_from_slice(extra);
        let out = self.gravity(&args, env);
        if !out.status.success() {
            // The state directory goes with the test: keep what says why in its output.
            eprintln!("{}", diagnose(&self.state()));
        }
        out
    }
}

/// A failed node's last words, for a test's output: planet's supervisor log and planet's
/// journal (systemd's jobs, every daemon's errors), their last lines.
pub fn diagnose(state: &std::path::Path) -> String {
    let paths = planet::paths::Paths::new(state);
    let tail = |text: &str, n: usize| {
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    };
    let log = std::fs::read_to_string(paths.log()).unwrap_or_default();
    let journal = Command::new("journalctl")
        .arg("--directory")
        .arg(paths.journal())
        .args(["--no-pager", "-n", "150", "-o", "short-monotonic"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    format!(
        "--- {}, its end:\n{}\n--- planet's journal, its end:\n{journal}",
        paths.log().display(),
        tail(&log, 40)
    )
}

impl Drop for Joiner {
    /// A failed test leaves no planet running: the join is undone (the first node still runs,
    /// this joiner is dropped before it), else planet is stopped.
    fn drop(&mut self) {
        if !self.state().join("operation/current.json").exists() {
            return;
        }
        let out = self.gravity(&["plan", "rollback"], &[]);
        if !out.status.success() {
            eprintln!("cleanup: the join's rollback failed: {}", text(&out));
            let _ = self.gravity(&["planet", "stop"], &[]);
        }
    }
}

/// `gravity kubectl ARGS` on the first node: its stdout, or why not.
pub fn kubectl(first: &Installation, args: &[&str]) -> Result<String, String> {
    let mut all = vec!["kubectl"];
    all.extend_from_slice(args);
    let out = first.gravity(&all);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(text(&out))
    }
}

/// The nodes as `name=ReadyStatus ...`, when there are `count` and all are Ready (else the
/// listing, or why there is none, as the error).
pub fn all_ready(first: &Installation, count: usize) -> Result<String, String> {
    let ready = "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status} {end}";
    let nodes = kubectl(first, &["get", "nodes", "-o", ready])?;
    let words: Vec<&str> = nodes.split_whitespace().collect();
    (words.len() == count && words.iter().all(|n| n.ends_with("=True")))
        .then_some(nodes.clone())
        .ok_or(nodes)
}

/// The etcd members the first node's etcd lists: `name=learner?` each.
pub fn etcd_members(first: &Installation) -> Vec<String> {
    let out = first.gravity(&[
        "planet", "exec", "--", "etcdctl", "member", "list", "-w", "json",
    ]);
    assert!(out.status.success(), "etcdctl member list: {}", text(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut members: Vec<String> = list["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let learner = m["isLearner"].as_bool().unwrap_or(false);
            format!("{}={learner}", m["name"].as_str().unwrap_or(""))
        })
        .collect();
    members.sort();
    members
}

/// The join command's parts: address, token, CA hash.
pub fn parse(command: &str) -> (String, String, String) {
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

/// What a client that knows every apiserver of the cluster saw while it watched them: each
/// apiserver's longest outage, and the longest time none answered.
#[derive(Debug)]
pub struct ApiAvailability {
    pub rounds: usize,
    /// Each apiserver's address and longest outage.
    pub servers: Vec<(String, Duration)>,
    /// The longest time no apiserver answered.
    pub none: Duration,
}

/// Asks every apiserver (`addresses`, port 6443) for `/readyz` from `ns` twice a second,
/// until `stop`.
pub fn watch_apiservers(ns: &NetNs, addresses: &[String], stop: &AtomicBool) -> ApiAvailability {
    let started = Instant::now();
    let mut rounds: Vec<(Duration, Vec<bool>)> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let at = started.elapsed();
        let probes: Vec<_> = addresses
            .iter()
            .map(|a| {
                let mut cmd = Command::new("curl");
                ns.enter(&mut cmd)
                    .args([
                        "-sk",
                        "--max-time",
                        "2",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                    ])
                    .arg(format!("https://{a}:6443/readyz"))
                    .stderr(Stdio::null())
                    .output()
            })
            .collect();
        let up = probes
            .into_iter()
            .map(|o| o.is_ok_and(|o| o.stdout == b"200"))
            .collect();
        rounds.push((at, up));
        std::thread::sleep(Duration::from_millis(500).saturating_sub(started.elapsed() - at));
    }
    let series = |up: &dyn Fn(&[bool]) -> bool| -> Vec<(Duration, bool)> {
        rounds.iter().map(|(t, u)| (*t, up(u))).collect()
    };
    ApiAvailability {
        rounds: rounds.len(),
        servers: addresses
            .iter()
            .enumerate()
            .map(|(i, a)| (a.clone(), longest_outage(&series(&|u| u[i]))))
            .collect(),
        none: longest_outage(&series(&|u| u.iter().any(|up| *up))),
    }
}

/// The longest time from a failed probe to the next answered one (or the last probe).
pub fn longest_outage(samples: &[(Duration, bool)]) -> Duration {
    let mut longest = Duration::ZERO;
    let mut down_since = None;
    for (at, up) in samples {
        match (up, down_since) {
            (false, None) => down_since = Some(*at),
            (true, Some(since)) => {
                longest = longest.max(*at - since);
                down_since = None;
            }
            _ => {}
        }
    }
    if let (Some(since), Some((last, _))) = (down_since, samples.last()) {
        longest = longest.max(*last - since);
    }
    longest
}

/// The nodes' addresses (InternalIP), by node name.
pub fn node_addresses(first: &Installation) -> Vec<(String, String)> {
    let out = kubectl(
        first,
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.status.addresses[?(@.type==\"InternalIP\")].address} {end}",
        ],
    )
    .unwrap();
    out.split_whitespace()
        .filter_map(|n| n.split_once('='))
        .map(|(n, a)| (n.to_string(), a.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_lasts_from_the_first_failed_probe_to_the_next_answer() {
        let s = |secs: &[(u64, bool)]| -> Vec<(Duration, bool)> {
            secs.iter()
                .map(|(t, up)| (Duration::from_secs(*t), *up))
                .collect()
        };
        assert_eq!(longest_outage(&s(&[(0, true), (1, true)])), Duration::ZERO);
        assert_eq!(
            longest_outage(&s(&[
                (0, true),
                (1, false),
                (2, false),
                (4, true),
                (5, false),
                (6, true)
            ])),
            Duration::from_secs(3)
        );
        // Still down at the end: until the last probe.
        assert_eq!(
            longest_outage(&s(&[(0, false), (7, false)])),
            Duration::from_secs(7)
        );
    }
}
