//! Which node profile a joining node runs: the one it asks for, else the installed flavor's
//! next missing profile, else the first node's. The choice is kept in the node's record, so
//! that a resumed join gets the same answer and joins at the same time count each other.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use cluster_image::manifest::FlavorNode;

use super::server::{joined_in, record_in};

/// Why a node gets no profile.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("the cluster has no node profile `{asked}` (it has: {})", .profiles.join(", "))]
    Unknown {
        asked: String,
        profiles: Vec<String>,
    },
    #[error("{0}")]
    Record(String),
}

/// The installed flavor's nodes and the first node's profile.
#[derive(Debug, Default)]
pub struct Roles {
    /// The flavor's profiles and how many nodes of each it wants, in the manifest's order.
    pub flavor: Vec<FlavorNode>,
    /// Every profile of the cluster's manifest (empty: not known, any is taken).
    pub profiles: Vec<String>,
    /// The first node's profile: the answer once the flavor has all its nodes.
    pub first: String,
    /// One choice at a time: two joins asking together must not both take the last slot.
    lock: Mutex<()>,
}

impl Roles {
    pub fn new(flavor: Vec<FlavorNode>, profiles: Vec<String>, first: String) -> Roles {
        Roles {
            flavor,
            profiles,
            first,
            lock: Mutex::new(()),
        }
    }

    /// The profile of `node` (asking for `asked`, if anything), recorded in its record under
    /// `nodes_dir` when it has one. A profile the cluster does not have is refused before
    /// the node fetches anything.
    pub fn assign(
        &self,
        nodes_dir: &Path,
        node: &str,
        asked: Option<&str>,
    ) -> Result<String, RoleError> {
        if let Some(asked) = asked
            && !self.profiles.is_empty()
            && !self.profiles.iter().any(|p| p == asked)
        {
            return Err(RoleError::Unknown {
                asked: asked.to_string(),
                profiles: self.profiles.clone(),
            });
        }
        self.record(nodes_dir, node, asked)
            .map_err(RoleError::Record)
    }

    fn record(&self, nodes_dir: &Path, node: &str, asked: Option<&str>) -> Result<String, String> {
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let path = record_in(nodes_dir, node);
        let mut record = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
                .map_err(|e| format!("the node's record {}: {e}", path.display()))?,
            // Not recorded (forgotten): answer without keeping the choice.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Value::Null,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let kept = record
            .get("role")
            .and_then(|r| r.as_str())
            .map(str::to_string);
        let role = match (asked, kept) {
            (Some(asked), _) => asked.to_string(),
            (None, Some(kept)) => return Ok(kept),
            (None, None) => self.next_missing(&self.counts(nodes_dir, node)),
        };
        if let Some(fields) = record.as_object_mut()
            && fields.get("role").and_then(|r| r.as_str()) != Some(&role)
        {
            fields.insert("role".into(), role.clone().into());
            durable::write_atomic(&path, record.to_string().as_bytes()).map_err(|e| {
                format!(
                    "cannot record the node's profile in {}: {e}",
                    path.display()
                )
            })?;
        }
        Ok(role)
    }

    /// How many nodes run each profile: the first node and every recorded one but `except`.
    fn counts(&self, nodes_dir: &Path, except: &str) -> HashMap<String, i64> {
        let mut counts = HashMap::from([(self.first.clone(), 1)]);
        let nodes = joined_in(nodes_dir).unwrap_or_default();
        for node in nodes.iter().filter(|n| *n != except) {
            let role = std::fs::read(record_in(nodes_dir, node))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|r| r.get("role").and_then(|r| r.as_str()).map(str::to_string));
            if let Some(role) = role {
                *counts.entry(role).or_default() += 1;
            }
        }
        counts
    }

    fn next_missing(&self, counts: &HashMap<String, i64>) -> String {
        self.flavor
            .iter()
            .find(|f| counts.get(&f.profile).copied().unwrap_or(0) < f.count)
            .map_or_else(|| self.first.clone(), |f| f.profile.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flavor(nodes: &[(&str, i64)]) -> Vec<FlavorNode> {
        nodes
            .iter()
            .map(|(p, c)| FlavorNode {
                profile: p.to_string(),
                count: *c,
            })
            .collect()
    }

    fn joined(dir: &Path, node: &str) {
        std::fs::create_dir_all(dir).unwrap();
        let record = serde_json::json!({"node": node, "token": "abcdef"});
        std::fs::write(record_in(dir, node), record.to_string()).unwrap();
    }

    #[test]
    fn the_flavors_missing_profiles_in_order_then_the_first_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = dir.path();
        let roles = Roles::new(
            flavor(&[("master", 3), ("worker", 2)]),
            vec!["master".into(), "worker".into()],
            "master".into(),
        );
        let mut got = vec![];
        for n in ["b", "c", "d", "e", "f"] {
            joined(nodes, n);
            got.push(roles.assign(nodes, n, None).unwrap());
        }
        assert_eq!(got, ["master", "master", "worker", "worker", "master"]);
        // Kept: asked again (a resumed join), the same answer, though the flavor is full.
        assert_eq!(roles.assign(nodes, "d", None).unwrap(), "worker");
        // A profile the cluster lacks is refused, and nothing recorded.
        let e = roles.assign(nodes, "b", Some("db")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the cluster has no node profile `db` (it has: master, worker)"
        );
        assert_eq!(roles.assign(nodes, "b", None).unwrap(), "master");
        // Asked for: recorded, and counted so (workers b and e once d has left).
        assert_eq!(roles.assign(nodes, "b", Some("worker")).unwrap(), "worker");
        std::fs::remove_file(record_in(nodes, "d")).unwrap();
        joined(nodes, "g");
        assert_eq!(roles.assign(nodes, "g", None).unwrap(), "master");
        // A node that left no longer counts.
        std::fs::remove_file(record_in(nodes, "e")).unwrap();
        joined(nodes, "h");
        assert_eq!(roles.assign(nodes, "h", None).unwrap(), "worker");
    }

    #[test]
    fn without_a_flavor_the_first_nodes_profile_unrecorded_when_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let roles = Roles::new(vec![], vec![], "node".into());
        assert_eq!(roles.assign(dir.path(), "x", None).unwrap(), "node");
        assert!(!record_in(dir.path(), "x").exists());
        joined(dir.path(), "y");
        assert_eq!(roles.assign(dir.path(), "y", Some("db")).unwrap(), "db");
        let record = std::fs::read_to_string(record_in(dir.path(), "y")).unwrap();
        assert!(record.contains("\"role\":\"db\""), "{record}");
    }
}
