//! The cluster's etcd membership as the first node's agent changes it: with etcdctl inside
//! its planet, one addition at a time. A new member starts as a learner (it votes only once
//! promoted, so a slow one never costs the cluster its quorum), and a learner that never
//! catches up is removed again so that it cannot block later joins (etcd admits one learner
//! at a time: kubeadm's trap).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use planet::etcdctl::{self, Member};

/// The control plane nodes a cluster gets unless a profile pins more: etcd's quorum survives
/// one of three failing.
pub const CONTROL_PLANE_NODES: usize = 3;
/// How long an addition waits for another node's learner before removing it.
const LEARNER_WAIT: Duration = Duration::from_secs(5 * 60);
/// How long a learner has to catch up with the leader.
const PROMOTE_WAIT: Duration = Duration::from_secs(5 * 60);
const ETCDCTL_TIMEOUT: Duration = Duration::from_secs(30);
const RETRY: Duration = Duration::from_secs(2);

pub struct EtcdMembers {
    state_dir: PathBuf,
    /// Where each added member's peer URL is kept (`<node>.etcd`): a member that has never
    /// started has no name yet.
    nodes_dir: PathBuf,
    adding: Mutex<()>,
}

impl EtcdMembers {
    pub fn new(state_dir: &Path, nodes_dir: &Path) -> EtcdMembers {
        EtcdMembers {
            state_dir: state_dir.to_path_buf(),
            nodes_dir: nodes_dir.to_path_buf(),
            adding: Mutex::new(()),
        }
    }

    fn pid(&self) -> Result<i32, String> {
        planet::status::Status::running_init_pid(&self.state_dir)
            .ok_or_else(|| "planet is not running on the first node".to_string())
    }

    fn list(&self) -> Result<Vec<Member>, String> {
        etcdctl::members(self.pid()?, ETCDCTL_TIMEOUT).map_err(|e| e.to_string())
    }

    fn etcdctl(&self, args: &[&str]) -> Result<String, String> {
        etcdctl::etcdctl(self.pid()?, args, ETCDCTL_TIMEOUT).map_err(|e| e.to_string())
    }

    fn peer_file(&self, node: &str) -> PathBuf {
        self.nodes_dir.join(format!("{node}.etcd"))
    }

    /// `node`'s member: by its name, or (never started) by the peer URL it was added with.
    fn find<'m>(&self, members: &'m [Member], node: &str) -> Option<&'m Member> {
        let peer = std::fs::read_to_string(self.peer_file(node)).ok();
        members.iter().find(|m| {
            m.name == node
                || (m.name.is_empty()
                    && peer
                        .as_deref()
                        .is_some_and(|p| m.peer_urls.iter().any(|u| u == p.trim())))
        })
    }
}

/// The addresses of the joined control plane nodes (those the cluster added an etcd member
/// for and still has), from the peer URLs their members were added with.
pub fn control_plane_ips(nodes_dir: &Path) -> Vec<std::net::IpAddr> {
    let Ok(nodes) = rpc::agent::joined_in(nodes_dir) else {
        return Vec::new();
    };
    nodes
        .iter()
        .filter_map(|node| {
            let url = std::fs::read_to_string(nodes_dir.join(format!("{node}.etcd"))).ok()?;
            let addr: std::net::SocketAddr = url.trim().strip_prefix("https://")?.parse().ok()?;
            Some(addr.ip())
        })
        .collect()
}

/// etcd's answer to a membership change while a voting member is not (yet) in touch with
/// the leader.
fn is_unhealthy(error: &str) -> bool {
    error.contains("etcdserver: unhealthy cluster")
}

/// etcd's `--initial-cluster` for `node` (at `peer_url`) joining `members`.
pub fn initial_cluster(members: &[Member], node: &str, peer_url: &str) -> String {
    let mut parts: Vec<String> = members
        .iter()
        .filter(|m| !m.peer_urls.iter().any(|u| u == peer_url) && m.name != node)
        .filter(|m| !m.name.is_empty())
        .filter_map(|m| Some(format!("{}={}", m.name, m.peer_urls.first()?)))
        .collect();
    parts.push(format!("{node}={peer_url}"));
    parts.join(",")
}

impl rpc::agent::Members for EtcdMembers {
    fn add(&self, node: &str, peer_url: &str, pinned: bool) -> Result<Option<String>, String> {
        let _one_at_a_time = self.adding.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        loop {
            let members = self.list()?;
            if let Some(m) = members
                .iter()
                .find(|m| m.name == node || m.peer_urls.iter().any(|u| u == peer_url))
            {
                if m.peer_urls.iter().any(|u| u == peer_url) {
                    // Asked again (a resumed join): the same answer.
                    return Ok(Some(initial_cluster(&members, node, peer_url)));
                }
                return Err(format!(
                    "etcd has a member {node} at {} already: remove it first (`gravity remove {node}`)",
                    m.peer_urls.join(",")
                ));
            }
            if members.len() >= CONTROL_PLANE_NODES && !pinned {
                return Ok(None);
            }
            let learners: Vec<&Member> = members.iter().filter(|m| m.is_learner).collect();
            if !learners.is_empty() {
                if started.elapsed() < LEARNER_WAIT {
                    std::thread::sleep(RETRY);
                    continue;
                }
                for m in learners {
                    tracing::warn!(member = %m.hex_id(), name = %m.name, "removing an etcd learner that did not catch up in {LEARNER_WAIT:?}");
                    self.etcdctl(&["member", "remove", &m.hex_id()])?;
                }
                continue;
            }
            durable::write_atomic_mode(&self.peer_file(node), peer_url.as_bytes(), 0o600)
                .map_err(|e| format!("cannot record {node}'s peer URL: {e}"))?;
            match self.etcdctl(&[
                "member",
                "add",
                node,
                &format!("--peer-urls={peer_url}"),
                "--learner",
            ]) {
                Ok(_) => break,
                // etcd's strict reconfiguration check refuses a change until its leader has
                // heard from every voting member for 5 s: right after another node's
                // promotion, or on a loaded host. It changed nothing: ask again.
                Err(e) if is_unhealthy(&e) && started.elapsed() < LEARNER_WAIT => {
                    tracing::info!(node, "etcd refused the member for now ({e}): asking again");
                    std::thread::sleep(RETRY);
                }
                Err(e) => return Err(e),
            }
        }
        let members = self.list()?;
        Ok(Some(initial_cluster(&members, node, peer_url)))
    }

    fn promote(&self, node: &str) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let members = self.list()?;
            let member = self
                .find(&members, node)
                .ok_or_else(|| format!("etcd has no member {node}: its join adds one"))?;
            if !member.is_learner {
                return Ok(());
            }
            let why = match self.etcdctl(&["member", "promote", &member.hex_id()]) {
                Ok(_) => {
                    tracing::info!(node, "promoted the node's etcd learner to a voting member");
                    return Ok(());
                }
                Err(why) => why,
            };
            if started.elapsed() >= PROMOTE_WAIT {
                self.etcdctl(&["member", "remove", &member.hex_id()])?;
                return Err(format!(
                    "its learner did not catch up with the leader in {} s ({why}); it was removed, so that it blocks no other join: `gravity join --resume` adds it again",
                    PROMOTE_WAIT.as_secs()
                ));
            }
            std::thread::sleep(RETRY);
        }
    }

    fn remove(&self, node: &str) -> Result<bool, String> {
        let members = self.list()?;
        let removed = match self.find(&members, node) {
            Some(m) => {
                self.etcdctl(&["member", "remove", &m.hex_id()])?;
                tracing::info!(node, "removed the node's etcd member");
                true
            }
            None => false,
        };
        let _ = std::fs::remove_file(self.peer_file(node));
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_plane_ips_are_those_of_joined_nodes_with_a_member() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("second.json", "{}");
        write("second.etcd", "https://10.214.0.2:2380\n");
        write("third.json", "{}");
        // A node that left keeps no record: its member's file is not counted.
        write("gone.etcd", "https://10.216.0.2:2380");
        assert_eq!(
            control_plane_ips(dir.path()),
            [std::net::IpAddr::from([10, 214, 0, 2])]
        );
    }

    fn member(name: &str, ip: u8, learner: bool) -> Member {
        Member {
            id: u64::from(ip),
            name: name.into(),
            peer_urls: vec![format!("https://10.0.0.{ip}:2380")],
            is_learner: learner,
        }
    }

    #[test]
    fn the_initial_cluster_names_every_started_member_and_the_new_one_last() {
        let members = [
            member("first", 1, false),
            member("second", 2, false),
            member("", 3, true),
        ];
        assert_eq!(
            initial_cluster(&members, "third", "https://10.0.0.3:2380"),
            "first=https://10.0.0.1:2380,second=https://10.0.0.2:2380,third=https://10.0.0.3:2380"
        );
        // Before it was added, the same.
        assert_eq!(
            initial_cluster(&members[..2], "third", "https://10.0.0.3:2380"),
            "first=https://10.0.0.1:2380,second=https://10.0.0.2:2380,third=https://10.0.0.3:2380"
        );
    }
}
