//! Checks between hosts: two network namespaces joined by a veth pair shaped with tc at a known
//! rate. The transfer-rate check must pass above and fail below the manifest's minimum, ports
//! are probed through the peer's temporary listeners, and an unreachable peer is an error.

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use tests::bins;
use tests::netns::{ChildGuard, NetNs, drop_port, link, shape};
use tests::preflight::{ManifestDir, Run, TmpfsDir, check, check_with};

const PORT: u16 = 4242;

struct TwoHosts {
    client: NetNs,
    peer: String,
    link: tests::netns::Link,
    server_ns: NetNs,
    _server: ChildGuard,
}

/// A peer running `gravity check --serve` in one namespace, a client namespace beside it, the
/// link shaped to `rate` bytes/s in both directions.
fn two_hosts(subnet: u8, rate: Option<u64>) -> TwoHosts {
    let server_ns = NetNs::new("srv");
    let client = NetNs::new("cli");
    let l = link(&server_ns, &client, subnet);
    if let Some(rate) = rate {
        shape(&server_ns, &l.a_dev, rate);
        shape(&client, &l.b_dev, rate);
    }
    let peer = format!("{}:{PORT}", l.a_ip);
    let mut server = ChildGuard::spawn(
        server_ns
            .command(bins::path("gravity"))
            .args(["check", "--serve", &peer])
            .stderr(Stdio::piped()),
    );
    server.wait_for_stderr("serving gravity check peers", Duration::from_secs(10));
    TwoHosts {
        client,
        peer,
        link: l,
        server_ns,
        _server: server,
    }
}

fn rate_manifest(rate: &str, ports: &str) -> ManifestDir {
    ManifestDir::with_profile(&format!(
        "    requirements:\n      network:\n        minTransferRate: \"{rate}\"\n{ports}"
    ))
}

fn run_peers(h: &TwoHosts, m: &ManifestDir, state: &TmpfsDir, extra: &[&str]) -> Run {
    let mut args = vec!["--peers", h.peer.as_str(), "--output", "json"];
    args.extend_from_slice(extra);
    check_with(
        h.client.command(bins::path("gravity")),
        &m.path(),
        state.path(),
        &args,
    )
}

fn mbps(measured: &str) -> f64 {
    measured.split(" MB/s").next().unwrap().parse().unwrap()
}

#[test]
fn transfer_rate_passes_above_and_fails_below_a_shaped_link() {
    bins::require_root();
    let _rates = tests::serial::lock("rate-tests");
    let state = TmpfsDir::new();
    // 20 MB/s each way.
    let h = two_hosts(71, Some(20_000_000));
    let send = format!("peer:{}:rate:send", h.peer);
    let receive = format!("peer:{}:rate:receive", h.peer);

    let start = std::time::Instant::now();
    let r = run_peers(&h, &rate_manifest("14MB/s", ""), &state, &[]);
    let took = start.elapsed();
    for id in [&send, &receive] {
        let c = r.check(id);
        assert_eq!(c["status"], "pass", "{r}");
        let got = mbps(c["measured"].as_str().unwrap());
        // Goodput on a 20 MB/s link: a little under 20 (headers), never above.
        assert!((15.0..=20.5).contains(&got), "{id}: {got} MB/s\n{r}");
    }
    assert!(took < Duration::from_secs(8), "took {took:?}");

    let r = run_peers(&h, &rate_manifest("28MB/s", ""), &state, &[]);
    assert_eq!(r.code, 3, "{r}");
    for id in [&send, &receive] {
        let c = r.check(id);
        assert_eq!(c["status"], "fail", "{r}");
        assert_eq!(c["required"], "at least 28MB/s");
        assert!(c["fix"].as_str().unwrap().contains("too slow"));
    }
    // The clock check runs too; both namespaces share this machine's clock.
    assert_eq!(r.status(&format!("peer:{}:clock", h.peer)), "pass");

    // The human report names the peer and the measured rate.
    let text = check_with(
        h.client.command(bins::path("gravity")),
        &rate_manifest("28MB/s", "").path(),
        state.path(),
        &["--peers", &h.peer],
    );
    assert_eq!(text.code, 3);
    let line = text
        .stdout
        .lines()
        .find(|l| l.contains(&send))
        .unwrap()
        .to_string();
    assert!(
        line.starts_with("FAIL") && line.contains(" MB/s (") && line.contains("at least 28MB/s"),
        "{line}"
    );
}

#[test]
fn asymmetric_link_is_reported_per_direction() {
    bins::require_root();
    let _rates = tests::serial::lock("rate-tests");
    let state = TmpfsDir::new();
    let h = two_hosts(72, None);
    // Client to server at 40 MB/s, server to client at 10 MB/s.
    shape(&h.client, &h.link.b_dev, 40_000_000);
    shape(&h.server_ns, &h.link.a_dev, 10_000_000);
    let r = run_peers(&h, &rate_manifest("20MB/s", ""), &state, &[]);
    let send = r.check(&format!("peer:{}:rate:send", h.peer));
    let receive = r.check(&format!("peer:{}:rate:receive", h.peer));
    assert_eq!(send["status"], "pass", "{r}");
    assert_eq!(receive["status"], "fail", "{r}");
    let (s, v) = (
        mbps(send["measured"].as_str().unwrap()),
        mbps(receive["measured"].as_str().unwrap()),
    );
    assert!((30.0..=40.5).contains(&s), "send {s}");
    assert!((7.5..=10.3).contains(&v), "receive {v}");
}

#[test]
fn ports_are_probed_through_the_peer() {
    bins::require_root();
    let state = TmpfsDir::new();
    let h = two_hosts(73, None);
    // Four TCP ports: one open, one a firewall drops, one a program on the peer holds on its
    // loopback only (nothing answers from outside), one a service on the peer answers on.
    let base = 20000 + (std::process::id() % 20000) as u16;
    let (open, dropped, held, served) = (base, base + 1, base + 2, base + 3);
    drop_port(&h.server_ns, "tcp", dropped);
    let _holder = ChildGuard::spawn(
        h.server_ns
            .command(bins::path("gravity"))
            .args(["check", "--serve", &format!("127.0.0.1:{held}")])
            .stderr(Stdio::null()),
    );
    let _service = ChildGuard::spawn(
        h.server_ns
            .command(bins::path("gravity"))
            .args(["check", "--serve", &format!("0.0.0.0:{served}")])
            .stderr(Stdio::null()),
    );
    std::thread::sleep(Duration::from_millis(300));
    let ports = format!(
        "        ports:\n          - protocol: tcp\n            ranges: [\"{open}-{served}\"]\n          - protocol: udp\n            ranges: [\"{open}\"]\n"
    );
    let r = run_peers(
        &h,
        &rate_manifest("1MB/s", &ports),
        &state,
        &["--skip-rate-tests"],
    );
    let id = |p: &str| format!("peer:{}:port:{p}", h.peer);
    assert_eq!(r.status(&id(&format!("tcp/{dropped}"))), "fail", "{r}");
    assert!(
        r.check(&id(&format!("tcp/{dropped}")))["measured"]
            .as_str()
            .unwrap()
            .starts_with("unreachable: no answer within"),
        "{r}"
    );
    let h2 = r.check(&id(&format!("tcp/{held}")));
    assert_eq!(h2["status"], "warn");
    assert!(
        h2["measured"]
            .as_str()
            .unwrap()
            .starts_with("not tested: the peer cannot listen on it"),
        "{h2}"
    );
    assert_eq!(r.status(&id(&format!("udp/{open}"))), "pass", "{r}");
    // A port held by a service that answers (a joining node probing a running cluster's
    // etcd) is reachable: no failure or warning line for it.
    assert!(!r.stdout.contains(&id(&format!("tcp/{served}\""))), "{r}");
    // The open TCP port passed: no failure line for it.
    assert!(!r.stdout.contains(&id(&format!("tcp/{open}\""))), "{r}");
    assert_eq!(r.code, 3);
    // Rate tests were skipped, and said so.
    assert_eq!(r.status(&format!("peer:{}:rate", h.peer)), "skip");
}

#[test]
fn an_unreachable_peer_is_an_error_that_says_what_to_do() {
    bins::require_root();
    let state = TmpfsDir::new();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let peer = format!("127.0.0.1:{port}");
    let m = rate_manifest("1MB/s", "");
    let r = check(
        &m.path(),
        state.path(),
        &["--skip-rate-tests", "--peers", &peer],
    );
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.stdout.contains(&format!("ERROR: cannot reach peer {peer}: Connection refused (os error 111) — is `gravity check --serve {peer}` running there")),
        "{r}"
    );
}
