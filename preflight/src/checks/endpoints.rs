//! A running cluster's endpoints, reached from this host before it joins: what every node
//! needs of the first one (its apiserver, its registry) must not be filtered on the way. A
//! TCP connection is enough: the daemons behind them are the cluster's health to check.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::CheckResult;

/// A TCP connection across a working network takes milliseconds.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// One endpoint: what serves there, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub what: String,
    pub addr: SocketAddr,
}

/// A connection to each endpoint within `timeout`.
pub fn check_endpoints(endpoints: &[Endpoint], timeout: Duration) -> Vec<CheckResult> {
    endpoints
        .iter()
        .map(|e| {
            let id = format!("cluster:{}", e.addr);
            let title = format!("{} reachable at {} (TCP)", e.what, e.addr);
            let started = Instant::now();
            match TcpStream::connect_timeout(&e.addr, timeout) {
                Ok(_) => CheckResult::pass(id, title)
                    .measured("connected")
                    .took(started.elapsed()),
                Err(err) => CheckResult::fail(id, title)
                    .measured(err.to_string())
                    .required("a TCP connection")
                    .fix(format!(
                        "let this host connect to TCP port {} of {} (a firewall, a security group or a route is in the way)",
                        e.addr.port(),
                        e.addr.ip()
                    ))
                    .took(started.elapsed()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    #[test]
    fn a_listener_passes_and_a_closed_port_fails_with_its_fix() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        // A port just released: nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let endpoint = |what: &str, addr| Endpoint {
            what: what.into(),
            addr,
        };
        let results = check_endpoints(
            &[
                endpoint("the apiserver", open),
                endpoint("the registry", closed),
            ],
            Duration::from_secs(2),
        );
        assert_eq!(results[0].status, Status::Pass);
        assert_eq!(results[1].status, Status::Fail);
        assert_eq!(results[1].id, format!("cluster:{closed}"));
        let fix = results[1].fix.as_deref().unwrap();
        assert!(
            fix.contains(&format!("TCP port {}", closed.port())),
            "{fix}"
        );
    }
}
