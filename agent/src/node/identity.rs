//! Who a node is in its cluster: one type for the journaled install, the installed record and
//! planet's configuration.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeIdentity {
    /// The node's name in the cluster (a hostname).
    #[serde(alias = "node_name")]
    pub node_name: String,
    /// The address other nodes and planet's services use.
    #[serde(alias = "advertise_ip")]
    pub advertise_ip: IpAddr,
    /// The node profile's name.
    pub role: String,
    /// Where the node joined a cluster (`gravity join`) rather than installed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined: Option<Joined>,
}

/// A joined node's tie to its cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Joined {
    /// The join agent it joined through (`HOST:PORT`, the first node's).
    pub agent: String,
    /// The address of the first node: its registry, and its apiserver where this node runs
    /// none of its own.
    pub control_plane: IpAddr,
    /// Where this node runs the control plane too: etcd's initial cluster its member joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<String>,
}

impl Joined {
    /// Whether the node runs the control plane (an etcd member, an apiserver) of its own.
    pub fn control_plane_node(&self) -> bool {
        self.etcd.is_some()
    }
}

impl NodeIdentity {
    /// The node as planet's configuration names it.
    pub fn planet(&self, cluster_name: &str) -> planet::config::NodeInfo {
        planet::config::NodeInfo {
            name: self.node_name.clone(),
            advertise_ip: self.advertise_ip,
            role: self.role.clone(),
            cluster_name: cluster_name.to_string(),
            remote_control_plane: self
                .joined
                .as_ref()
                .filter(|j| !j.control_plane_node())
                .map(|j| planet::config::RemoteControlPlane {
                    address: j.control_plane,
                }),
            remote_registry: self
                .joined
                .as_ref()
                .filter(|j| j.control_plane_node())
                .map(|j| j.control_plane),
        }
    }
}
