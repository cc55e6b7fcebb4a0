//! `requirements.network.ports`: every TCP/UDP port in the ranges is free on this host. A
//! taken port names the program and pid holding it, found through procfs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use cluster_image::manifest::{PortRequirement, Protocol};

use crate::check::CheckResult;
use crate::host::{Host, HostError};

/// A socket from `/proc/net/{tcp,tcp6,udp,udp6}` that occupies a local port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub protocol: Protocol,
    pub addr: IpAddr,
    pub port: u16,
    pub inode: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub program: String,
}

/// Sockets that make a port unavailable: TCP listeners, and every bound UDP socket. The table
/// is parsed by procfs, in this machine's byte order (the kernel prints addresses in it).
pub fn parse_proc_net(text: &str, protocol: Protocol) -> Result<Vec<Socket>, String> {
    use procfs_core::FromBufReadSI;
    use procfs_core::net::{TcpNetEntries, TcpState, UdpNetEntries};
    let info = procfs_core::ExplicitSystemInfo {
        boot_time_secs: 0,
        ticks_per_second: 100,
        page_size: 4096,
        is_little_endian: cfg!(target_endian = "little"),
    };
    let bound: Vec<(std::net::SocketAddr, u64)> = match protocol {
        Protocol::Tcp => TcpNetEntries::from_buf_read(text.as_bytes(), &info)
            .map_err(|e| e.to_string())?
            .0
            .into_iter()
            .filter(|e| e.state == TcpState::Listen)
            .map(|e| (e.local_address, e.inode))
            .collect(),
        Protocol::Udp => UdpNetEntries::from_buf_read(text.as_bytes(), &info)
            .map_err(|e| e.to_string())?
            .0
            .into_iter()
            .map(|e| (e.local_address, e.inode))
            .collect(),
    };
    Ok(bound
        .into_iter()
        .filter(|(addr, _)| addr.port() != 0)
        .map(|(addr, inode)| Socket {
            protocol,
            addr: addr.ip(),
            port: addr.port(),
            inode,
        })
        .collect())
}

/// Every socket on this host's network namespace that holds a port.
pub fn bound_sockets(host: &Host) -> Result<Vec<Socket>, HostError> {
    let mut out = Vec::new();
    for (file, protocol) in [
        ("tcp", Protocol::Tcp),
        ("tcp6", Protocol::Tcp),
        ("udp", Protocol::Udp),
        ("udp6", Protocol::Udp),
    ] {
        let path = format!("/proc/net/{file}");
        match host.read_opt(&path)? {
            Some(text) => out.extend(parse_proc_net(&text, protocol).map_err(|reason| {
                HostError::Malformed {
                    path: path.clone().into(),
                    reason,
                }
            })?),
            // No IPv6 in this kernel: there are no IPv6 sockets either.
            None if file.ends_with('6') => {}
            None => host.read(&path).map(|_| ())?,
        }
    }
    Ok(out)
}

/// The processes holding the given socket inodes, by scanning `/proc/<pid>/fd/`.
pub fn socket_holders(host: &Host, inodes: &BTreeSet<u64>) -> BTreeMap<u64, Vec<Holder>> {
    let mut out: BTreeMap<u64, Vec<Holder>> = BTreeMap::new();
    if inodes.is_empty() {
        return out;
    }
    for pid in host.list_dir("/proc") {
        let Ok(pid_n) = pid.parse::<u32>() else {
            continue;
        };
        let fd_dir = format!("/proc/{pid}/fd");
        for fd in host.list_dir(&fd_dir) {
            let Ok(target) = host.read_link(format!("{fd_dir}/{fd}")) else {
                continue;
            };
            let target = target.to_string_lossy();
            let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
            else {
                continue;
            };
            if inodes.contains(&inode) {
                let program = host
                    .read_opt(format!("/proc/{pid}/comm"))
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| "?".into());
                let holders = out.entry(inode).or_default();
                if !holders.iter().any(|h| h.pid == pid_n) {
                    holders.push(Holder {
                        pid: pid_n,
                        program,
                    });
                }
            }
        }
    }
    out
}

fn describe_holders(holders: Option<&Vec<Holder>>) -> String {
    match holders {
        Some(h) if !h.is_empty() => h
            .iter()
            .map(|h| format!("{} (pid {})", h.program, h.pid))
            .collect::<Vec<_>>()
            .join(", "),
        // The socket belongs to no process we can see (another PID namespace, or the kernel).
        _ => "an unknown process".to_string(),
    }
}

pub fn check_ports(host: &Host, wanted: &[PortRequirement]) -> Vec<CheckResult> {
    if wanted.is_empty() {
        return Vec::new();
    }
    let sockets = match bound_sockets(host) {
        Ok(s) => s,
        Err(e) => {
            return wanted
                .iter()
                .flat_map(|w| {
                    w.ranges
                        .iter()
                        .map(move |r| (w.protocol, *r))
                        .collect::<Vec<_>>()
                })
                .map(|(p, r)| {
                    CheckResult::fail(format!("port:{p}/{r}"), "Port free")
                        .measured("unknown")
                        .detail(e.to_string())
                        .fix("check that /proc is mounted")
                })
                .collect();
        }
    };
    let taken_inodes: BTreeSet<u64> = sockets
        .iter()
        .filter(|s| {
            wanted.iter().any(|w| {
                w.protocol == s.protocol
                    && w.ranges
                        .iter()
                        .any(|r| r.first <= s.port && s.port <= r.last)
            })
        })
        .map(|s| s.inode)
        .collect();
    let holders = socket_holders(host, &taken_inodes);

    let mut out = Vec::new();
    for w in wanted {
        for r in &w.ranges {
            let mut by_port: BTreeMap<u16, Vec<&Socket>> = BTreeMap::new();
            for s in sockets
                .iter()
                .filter(|s| s.protocol == w.protocol && r.first <= s.port && s.port <= r.last)
            {
                by_port.entry(s.port).or_default().push(s);
            }
            if by_port.is_empty() {
                let n = r.last - r.first + 1;
                out.push(
                    CheckResult::pass(format!("port:{}/{r}", w.protocol), "Port free")
                        .measured(if n == 1 {
                            "free".to_string()
                        } else {
                            format!("all {n} free")
                        })
                        .required("free"),
                );
                continue;
            }
            for (port, socks) in by_port {
                let mut who: Vec<String> = Vec::new();
                let mut addrs: Vec<String> = Vec::new();
                for s in &socks {
                    let h = describe_holders(holders.get(&s.inode));
                    if !who.contains(&h) {
                        who.push(h);
                    }
                    let a = s.addr.to_string();
                    if !addrs.contains(&a) {
                        addrs.push(a);
                    }
                }
                let kind = if w.protocol == Protocol::Tcp {
                    "listening"
                } else {
                    "bound"
                };
                let who = who.join(", ");
                out.push(
                    CheckResult::fail(format!("port:{}/{port}", w.protocol), "Port free")
                        .measured(format!("in use by {who}, {kind} on {}", addrs.join(", ")))
                        .required("free")
                        .fix(format!(
                            "stop {who} or move it to another port: the cluster needs {}/{port}",
                            w.protocol
                        )),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;
    use crate::testutil::FixtureRoot;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n\
   1: 00000000:2712 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 100 0 0 10 0\n\
   2: 0100007F:2713 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0\n";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000000000000000000001000000:2714 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4545 1 0000000000000000 100 0 0 10 0\n";
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  100: 00000000:2712 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4646 2 0000000000000000 0\n";

    fn fixture() -> FixtureRoot {
        FixtureRoot::new()
            .file("proc/net/tcp", TCP)
            .file("proc/net/tcp6", TCP6)
            .file("proc/net/udp", UDP)
            .file("proc/812/comm", "nginx\n")
            .symlink("proc/812/fd/3", "socket:[4242]")
            .symlink("proc/812/fd/4", "/dev/null")
            .file("proc/900/comm", "etcd\n")
            .symlink("proc/900/fd/7", "socket:[4343]")
            .symlink("proc/900/fd/8", "socket:[4545]")
            .file("proc/meminfo", "not a pid\n")
    }

    fn req(protocol: Protocol, ranges: &[&str]) -> PortRequirement {
        PortRequirement {
            protocol,
            ranges: ranges.iter().map(|r| r.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn proc_net_addresses() {
        let s = parse_proc_net(TCP, Protocol::Tcp).unwrap();
        // The ESTABLISHED socket does not occupy a listening port.
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].addr.to_string(), "127.0.0.1");
        assert_eq!(s[0].port, 8080);
        let s6 = parse_proc_net(TCP6, Protocol::Tcp).unwrap();
        assert_eq!(s6[0].addr.to_string(), "::1");
        assert_eq!(s6[0].port, 10004);
    }

    #[test]
    fn taken_ports_name_the_program_and_pid() {
        let fx = fixture();
        let r = check_ports(
            &fx.host(),
            &[
                req(Protocol::Tcp, &["8080", "10000-10005", "2379"]),
                req(Protocol::Udp, &["10002", "8472"]),
            ],
        );
        let got: Vec<(&str, Status, &str)> = r
            .iter()
            .map(|c| (c.id.as_str(), c.status, c.measured.as_deref().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "port:tcp/8080",
                    Status::Fail,
                    "in use by nginx (pid 812), listening on 127.0.0.1"
                ),
                (
                    "port:tcp/10002",
                    Status::Fail,
                    "in use by etcd (pid 900), listening on 0.0.0.0"
                ),
                (
                    "port:tcp/10004",
                    Status::Fail,
                    "in use by etcd (pid 900), listening on ::1"
                ),
                ("port:tcp/2379", Status::Pass, "free"),
                (
                    "port:udp/10002",
                    Status::Fail,
                    "in use by an unknown process, bound on 0.0.0.0"
                ),
                ("port:udp/8472", Status::Pass, "free"),
            ]
        );
        assert_eq!(
            r[0].fix.as_deref(),
            Some("stop nginx (pid 812) or move it to another port: the cluster needs tcp/8080")
        );
    }

    #[test]
    fn free_range_is_one_line() {
        let fx = fixture();
        let r = check_ports(&fx.host(), &[req(Protocol::Tcp, &["30000-32767"])]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].id, "port:tcp/30000-32767");
        assert_eq!(r[0].measured.as_deref(), Some("all 2768 free"));
    }

    #[test]
    fn unreadable_proc_net_fails_every_range() {
        let fx = FixtureRoot::new();
        let r = check_ports(&fx.host(), &[req(Protocol::Tcp, &["1-2", "5"])]);
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|c| c.status == Status::Fail));
        assert!(r[0].detail.as_ref().unwrap().contains("/proc/net/tcp"));
    }
}
