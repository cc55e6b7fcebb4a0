//! Checks between this host and its peers: goodput in each direction, reachability of the
//! profile's ports on the peer, clock offset. Each peer runs `gravity check --serve`.

use std::time::Duration;

use cluster_image::manifest::{NetworkRequirements, Protocol};
use cluster_image::units::{Rate, Size};

use crate::check::{CheckResult, Status};
use crate::checks::clock::{ClockThresholds, check_clock};
use rpc::peer::{Client, PeerError, ProbeResult, Throughput};

#[derive(Debug, Clone, Copy)]
pub struct NetworkLimits {
    /// Not counted at the start of each stream (TCP slow start, shaper bursts).
    pub warmup: Duration,
    /// Measured part of each stream, per direction.
    pub window: Duration,
    pub connect_timeout: Duration,
    pub probe_timeout: Duration,
    pub clock_samples: usize,
}

impl Default for NetworkLimits {
    fn default() -> Self {
        NetworkLimits {
            warmup: Duration::from_millis(250),
            window: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(3),
            probe_timeout: Duration::from_secs(2),
            clock_samples: 8,
        }
    }
}

/// Skipped when the profile wants a rate but no peer was given.
pub fn no_peers(req: &NetworkRequirements) -> Option<CheckResult> {
    let min = req.min_transfer_rate.as_ref()?;
    Some(
        CheckResult::skip("network:rate", "Network transfer rate between hosts")
            .required(format!("at least {} each way", min.text))
            .detail(
                "needs a second host: run `gravity check --serve ADDR:PORT` there and `gravity check --peers ADDR:PORT` here",
            ),
    )
}

fn rate_result(
    peer: &str,
    send: bool,
    t: Result<Throughput, PeerError>,
    min: Option<&cluster_image::units::RateValue>,
) -> CheckResult {
    let (dir, title) = if send {
        ("send", format!("Transfer rate from this host to {peer}"))
    } else {
        ("receive", format!("Transfer rate from {peer} to this host"))
    };
    let id = format!("peer:{peer}:rate:{dir}");
    let required = min.map_or_else(
        || "any (no minTransferRate)".to_string(),
        |m| format!("at least {}", m.text),
    );
    match t {
        Ok(t) => {
            let rate = t.rate();
            let ok = min.is_none_or(|m| rate >= Rate(m.value.0));
            CheckResult::new(id, title, if ok { Status::Pass } else { Status::Fail })
                .measured(format!(
                    "{rate} ({} received in {:.2} s)",
                    Size(t.bytes),
                    t.elapsed.as_secs_f64()
                ))
                .required(required)
                .fix_unless_pass(format!(
                    "the network between this host and {peer} is too slow: check the link speed, duplex, shaping and load on the path ({} measured {dir}ing)",
                    rate
                ))
        }
        Err(e) => CheckResult::fail(id, title)
            .measured("not measured")
            .required(required)
            .detail(e.to_string())
            .fix(format!("make sure {peer} runs `gravity check --serve` and the network between the hosts works")),
    }
}

/// Every check against one peer. Err when the peer cannot be reached at all.
pub fn check_peer(
    peer: &str,
    req: Option<&NetworkRequirements>,
    limits: &NetworkLimits,
    clock: &ClockThresholds,
    rate_tests: bool,
) -> Result<Vec<CheckResult>, PeerError> {
    let mut client = Client::connect(peer, limits.connect_timeout)?;
    tracing::info!(peer, agent = %client.peer_agent, "connected to peer");
    let mut out = Vec::new();

    out.push(match client.clock(limits.clock_samples) {
        Ok(s) => check_clock(peer, &s, clock),
        Err(e) => CheckResult::fail(
            format!("peer:{peer}:clock"),
            format!("Clock offset to {peer}"),
        )
        .measured("not measured")
        .detail(e.to_string())
        .fix("check the connection to the peer"),
    });

    let ranges: Vec<(Protocol, cluster_image::manifest::PortRange)> = req
        .map(|r| {
            r.ports
                .iter()
                .flat_map(|p| p.ranges.iter().map(move |r| (p.protocol, *r)))
                .collect()
        })
        .unwrap_or_default();
    if !ranges.is_empty() {
        let ports = |proto| {
            let mut v: Vec<u16> = ranges
                .iter()
                .filter(|(p, _)| *p == proto)
                .flat_map(|(_, r)| r.ports())
                .collect();
            v.sort();
            v.dedup();
            v
        };
        match client.probe_ports(
            &ports(Protocol::Tcp),
            &ports(Protocol::Udp),
            limits.probe_timeout,
        ) {
            Ok((tcp, udp)) => {
                for (proto, range) in &ranges {
                    let results = if *proto == Protocol::Tcp { &tcp } else { &udp };
                    out.extend(port_results(peer, *proto, *range, results));
                }
            }
            Err(e) => out.push(
                CheckResult::fail(
                    format!("peer:{peer}:ports"),
                    format!("Ports reachable on {peer}"),
                )
                .measured("not probed")
                .detail(e.to_string())
                .fix("check the connection to the peer"),
            ),
        }
    }

    let min = req.and_then(|r| r.min_transfer_rate.as_ref());
    if rate_tests {
        // One direction at a time, so that the two streams do not share the link.
        let start = std::time::Instant::now();
        let send = client.measure_send(limits.warmup, limits.window);
        out.push(rate_result(peer, true, send, min).took(start.elapsed()));
        let start = std::time::Instant::now();
        let recv = client.measure_receive(limits.warmup, limits.window);
        out.push(rate_result(peer, false, recv, min).took(start.elapsed()));
    } else if let Some(m) = min {
        out.push(
            CheckResult::skip(
                format!("peer:{peer}:rate"),
                format!("Transfer rate with {peer}"),
            )
            .required(format!("at least {} each way", m.text))
            .detail("rate tests are turned off (--skip-rate-tests)"),
        );
    }
    Ok(out)
}

fn port_results(
    peer: &str,
    proto: Protocol,
    range: cluster_image::manifest::PortRange,
    results: &[(u16, ProbeResult)],
) -> Vec<CheckResult> {
    let title = format!("Port reachable on {peer}");
    let in_range: Vec<&(u16, ProbeResult)> = results
        .iter()
        .filter(|(p, _)| range.first <= *p && *p <= range.last)
        .collect();
    let bad: Vec<CheckResult> = in_range
        .iter()
        .filter_map(|(port, r)| {
            let id = format!("peer:{peer}:port:{proto}/{port}");
            match r {
                ProbeResult::Reachable => None,
                ProbeResult::PeerCannotListen(e) => Some(
                    CheckResult::warn(id, title.clone())
                        .measured(format!("not tested: the peer cannot listen on it ({e})"))
                        .required("reachable from this host")
                        .fix(format!(
                            "free {proto}/{port} on {peer} (its own `gravity check` names the holder)"
                        )),
                ),
                ProbeResult::Unreachable(e) => Some(
                    CheckResult::fail(id, title.clone())
                        .measured(format!("unreachable: {e}"))
                        .required("reachable from this host")
                        .fix(format!(
                            "allow {proto}/{port} from this host to {peer} in the firewalls on both hosts and between them"
                        )),
                ),
            }
        })
        .collect();
    if !bad.is_empty() {
        return bad;
    }
    let n = in_range.len();
    vec![
        CheckResult::pass(format!("peer:{peer}:port:{proto}/{range}"), title)
            .measured(if n == 1 {
                "reachable".to_string()
            } else {
                format!("all {n} reachable")
            })
            .required("reachable from this host"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rpc::peer::Server;

    fn req(yaml: &str) -> NetworkRequirements {
        serde_json::from_str(yaml).unwrap()
    }

    fn fast() -> NetworkLimits {
        NetworkLimits {
            warmup: Duration::from_millis(30),
            window: Duration::from_millis(150),
            connect_timeout: Duration::from_secs(2),
            probe_timeout: Duration::from_millis(500),
            clock_samples: 3,
        }
    }

    #[test]
    fn one_result_per_range_unless_ports_fail() {
        let results = vec![
            (10000, ProbeResult::Reachable),
            (10001, ProbeResult::Unreachable("connection refused".into())),
            (
                10002,
                ProbeResult::PeerCannotListen("Address in use".into()),
            ),
            (8080, ProbeResult::Reachable),
        ];
        let r = port_results("h:1", Protocol::Tcp, "8080".parse().unwrap(), &results);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].id, "peer:h:1:port:tcp/8080");
        assert_eq!(r[0].status, Status::Pass);
        let r = port_results(
            "h:1",
            Protocol::Tcp,
            "10000-10002".parse().unwrap(),
            &results,
        );
        let got: Vec<(&str, Status)> = r.iter().map(|c| (c.id.as_str(), c.status)).collect();
        assert_eq!(
            got,
            [
                ("peer:h:1:port:tcp/10001", Status::Fail),
                ("peer:h:1:port:tcp/10002", Status::Warn)
            ]
        );
        assert_eq!(
            r[0].measured.as_deref(),
            Some("unreachable: connection refused")
        );
    }

    #[test]
    fn against_a_local_peer() {
        let s = Server::bind("127.0.0.1:0").unwrap().spawn();
        let peer = s.addr.to_string();
        let free = std::net::TcpListener::bind("0.0.0.0:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let n = req(&format!(
            r#"{{"minTransferRate":"1MB/s","ports":[{{"protocol":"tcp","ranges":["{free}"]}}]}}"#
        ));
        let r = check_peer(&peer, Some(&n), &fast(), &ClockThresholds::default(), true).unwrap();
        let ids: Vec<String> = r.iter().map(|c| c.id.clone()).collect();
        assert_eq!(
            ids,
            [
                format!("peer:{peer}:clock"),
                format!("peer:{peer}:port:tcp/{free}"),
                format!("peer:{peer}:rate:send"),
                format!("peer:{peer}:rate:receive"),
            ]
        );
        assert!(r.iter().all(|c| c.status == Status::Pass), "{r:#?}");
        let n = req(r#"{"minTransferRate":"1000TB/s"}"#);
        let r = check_peer(&peer, Some(&n), &fast(), &ClockThresholds::default(), true).unwrap();
        assert_eq!(r[1].status, Status::Fail);
        assert_eq!(r[2].status, Status::Fail);
        assert!(r[1].fix.as_ref().unwrap().contains("too slow"));
        let r = check_peer(&peer, Some(&n), &fast(), &ClockThresholds::default(), false).unwrap();
        assert_eq!(r.last().unwrap().status, Status::Skip);
    }
}
