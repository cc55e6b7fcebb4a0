//! The state directory (`--state-dir`, default `/var/lib/gravity`): one type owns its layout, so
//! every command, phase and record finds a file at the same place.
//!
//! ```text
//! <state>/bin/gravity            the copy of gravity the host unit and later commands run
//! <state>/cluster.json           what is installed here (the finish phase)
//! <state>/checks/install.json    the preflight report of what is installed (install, upgrade)
//! <state>/checks/upgrade.json    the last upgrade's preflight report
//! <state>/kernel.json            kernel settings files the install changed, with their old content
//! <state>/volumes.json           host directories the install created
//! <state>/service-user.json      whether the install created the service user and group
//! <state>/helm/values.yaml       the merged Helm values hooks read
//! <state>/helm/inputs/           copies of the install's --values files, in order
//! <state>/resources/             the cluster resources hooks read
//! <state>/hooks/<name>.yaml      the manifest's hooks, each a Job
//! <state>/backup/                what the backup hook wrote, or what the restore hook reads
//! <state>/images/<name>/         cluster image tarballs unpacked by gravity
//! <state>/logs/                  a log file per command run
//! <state>/operation/             the journal (crate operation)
//! <state>/upgrade/previous/      the node's configuration before the last upgrade (its rollback)
//! <state>/planet/                planet's configuration, images, data and runtime (crate planet)
//! <state>/agent/                 the join agent: its certificate, the join tokens (hashed), the
//!                                install's join token (0600), the nodes that joined
//! ```

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: &Path) -> StateDir {
        StateDir {
            root: root.to_path_buf(),
        }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The copy of gravity that the host unit and later commands run.
    pub fn gravity(&self) -> PathBuf {
        self.planet().gravity()
    }
    pub fn cluster_record(&self) -> PathBuf {
        self.root.join("cluster.json")
    }
    pub fn checks_report(&self) -> PathBuf {
        self.root.join("checks/install.json")
    }
    /// A join's preflight report, this host's and against the first node.
    pub fn join_checks_report(&self) -> PathBuf {
        self.root.join("checks/join.json")
    }
    pub fn upgrade_checks_report(&self) -> PathBuf {
        self.root.join("checks/upgrade.json")
    }
    /// What an upgrade changes, as it was before it (see [`crate::upgrade`]).
    pub fn upgrade_previous(&self) -> PathBuf {
        self.root.join("upgrade/previous")
    }
    pub fn kernel_record(&self) -> PathBuf {
        self.root.join("kernel.json")
    }
    pub fn volumes_record(&self) -> PathBuf {
        self.root.join("volumes.json")
    }
    pub fn service_user_record(&self) -> PathBuf {
        self.root.join("service-user.json")
    }
    /// Where the spec says hooks find the merged Helm values.
    pub fn helm_values(&self) -> PathBuf {
        self.root.join("helm/values.yaml")
    }
    /// Copies of the install's `--values` files (see [`crate::install::values`]).
    pub fn helm_inputs(&self) -> PathBuf {
        self.root.join("helm/inputs")
    }
    /// The cluster resources hooks see at /var/lib/gravity/resources.
    pub fn resources(&self) -> PathBuf {
        self.root.join("resources")
    }
    /// The manifest's hooks as the install saved them (see [`crate::hooks`]).
    pub fn hooks(&self) -> PathBuf {
        self.root.join("hooks")
    }
    /// The backup and restore hooks' directory (`/var/lib/gravity/backup` in their Jobs).
    pub fn backup(&self) -> PathBuf {
        self.root.join("backup")
    }
    /// Where a cluster image tarball named `<stem>.tar[.zst]` is unpacked.
    pub fn unpacked_image(&self, stem: &str) -> PathBuf {
        self.root.join("images").join(stem)
    }
    /// The cluster's CA, certificates, keys (0600) and kubeconfigs.
    pub fn pki(&self) -> PathBuf {
        self.root.join("pki")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// The join agent's directory (0700).
    pub fn agent(&self) -> PathBuf {
        self.root.join("agent")
    }
    /// On a worker: the cluster's apiservers, which its agent's proxy connects to.
    pub fn apiservers(&self) -> PathBuf {
        self.agent().join("apiservers.json")
    }
    /// The join tokens, only their hashes (0600).
    pub fn join_tokens(&self) -> PathBuf {
        self.agent().join("tokens.json")
    }
    /// The token the install created, whole, so that `gravity status` can print the join
    /// command while it is valid (0600, root's).
    pub fn join_token(&self) -> PathBuf {
        self.agent().join("join-token")
    }
    pub fn agent_cert(&self) -> PathBuf {
        self.agent().join("agent.crt")
    }
    pub fn agent_key(&self) -> PathBuf {
        self.agent().join("agent.key")
    }
    /// One record per node that joined.
    pub fn joined_nodes(&self) -> PathBuf {
        self.agent().join("nodes")
    }
    /// The pid of gravity's daemon running the agent, where systemd is not PID 1.
    pub fn agent_pid(&self) -> PathBuf {
        self.agent().join("daemon.pid")
    }
    /// On a joined node: its client certificate and key (0600) from the cluster, and the
    /// cluster's CA it was pinned to.
    pub fn node_cert(&self) -> PathBuf {
        self.agent().join("node.crt")
    }
    pub fn node_key(&self) -> PathBuf {
        self.agent().join("node.key")
    }
    /// Whether this node joined its cluster (it holds a node certificate, and no join agent
    /// of its own).
    pub fn is_joined_node(&self) -> bool {
        !self.agent_cert().exists() && self.node_cert().exists()
    }
    pub fn cluster_ca(&self) -> PathBuf {
        self.agent().join("cluster-ca.crt")
    }
    /// On a joining node: what it learnt of the cluster (a cluster record, `joined` set),
    /// until its install steps are done and it becomes `cluster.json`.
    pub fn join_record(&self) -> PathBuf {
        self.agent().join("cluster.json")
    }
    pub fn agent_log(&self) -> PathBuf {
        self.logs().join("agent.log")
    }
    pub fn journal(&self) -> operation::Journal {
        operation::Journal::new(&self.root)
    }
    pub fn planet(&self) -> planet::paths::Paths {
        planet::paths::Paths::new(&self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_rooted_at_the_state_directory() {
        let s = StateDir::new(Path::new("/var/lib/gravity"));
        assert_eq!(s.gravity(), Path::new("/var/lib/gravity/bin/gravity"));
        assert_eq!(s.kernel_record(), Path::new("/var/lib/gravity/kernel.json"));
        assert_eq!(
            s.journal().current_path(),
            Path::new("/var/lib/gravity/operation/current.json")
        );
        assert_eq!(
            s.planet().config(),
            Path::new("/var/lib/gravity/planet/config.json")
        );
    }
}
