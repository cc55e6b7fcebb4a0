//! etcdctl inside a running planet, with the cluster's client certificate (planet's own tool:
//! gravity has no etcd client of its own).

use std::time::Duration;

/// etcdctl's TLS flags, from what a shell inside planet gets as its environment.
fn tls_flags() -> Vec<String> {
    crate::paths::KUBERNETES_ENV
        .iter()
        .filter_map(|(k, v)| {
            let flag = k.strip_prefix("ETCDCTL_")?.to_lowercase();
            Some(format!("--{flag}={v}"))
        })
        .collect()
}

/// Runs `etcdctl ARGS` in the planet whose init is `pid`: its stdout, or its last line of
/// stderr as the error.
pub fn etcdctl(pid: i32, args: &[&str], timeout: Duration) -> std::io::Result<String> {
    let flags = tls_flags();
    let mut all: Vec<&str> = flags.iter().map(String::as_str).collect();
    all.extend_from_slice(args);
    let out = crate::inside::query(pid, "/usr/bin/etcdctl", &all, timeout).ok_or_else(|| {
        std::io::Error::other(format!(
            "etcdctl {} inside planet did not answer in {timeout:?}",
            args.join(" ")
        ))
    })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(std::io::Error::other(
        stderr
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("etcdctl failed without a message")
            .to_string(),
    ))
}

/// One member of `etcdctl member list -w json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Member {
    #[serde(rename = "ID")]
    pub id: u64,
    /// Empty until the member has started once.
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

impl Member {
    /// The ID as etcdctl's member commands take it.
    pub fn hex_id(&self) -> String {
        format!("{:x}", self.id)
    }
}

#[derive(serde::Deserialize)]
struct MemberList {
    #[serde(default)]
    members: Vec<Member>,
}

/// Parses `etcdctl member list -w json`.
pub fn parse_members(json: &str) -> Result<Vec<Member>, serde_json::Error> {
    serde_json::from_str::<MemberList>(json).map(|l| l.members)
}

/// The cluster's members.
pub fn members(pid: i32, timeout: Duration) -> std::io::Result<Vec<Member>> {
    let out = etcdctl(pid, &["member", "list", "-w", "json"], timeout)?;
    parse_members(&out).map_err(|e| std::io::Error::other(format!("etcdctl member list: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_lists_parse_with_unstarted_members_and_learners() {
        // etcdctl 3.6's output: a started voter, a learner never started (no name yet).
        let json = r#"{"header":{"cluster_id":1,"member_id":2,"raft_term":3},"members":[
            {"ID":12345678901234567890,"name":"first","peerURLs":["https://10.0.0.1:2380"],"clientURLs":["https://10.0.0.1:2379"]},
            {"ID":42,"peerURLs":["https://10.0.0.2:2380"],"isLearner":true}]}"#;
        let members = parse_members(json).unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].name, "first");
        assert!(!members[0].is_learner);
        assert_eq!(members[0].hex_id(), "ab54a98ceb1f0ad2");
        assert_eq!(members[1].name, "");
        assert!(members[1].is_learner);
        assert_eq!(members[1].peer_urls, ["https://10.0.0.2:2380"]);
    }

    #[test]
    fn tls_flags_come_from_planets_environment() {
        let flags = tls_flags();
        assert!(
            flags.contains(&"--endpoints=https://127.0.0.1:2379".to_string()),
            "{flags:?}"
        );
        assert!(flags.iter().any(|f| f.starts_with("--cert=")), "{flags:?}");
    }
}
