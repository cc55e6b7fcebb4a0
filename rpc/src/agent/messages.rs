//! The protocol's messages, one JSON line each.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::rollout::{Step, Target};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum Request {
    Hello {
        version: u32,
    },
    /// Join with a token: `csr` is the node's certificate signing request (PEM).
    Join {
        token: String,
        node: String,
        csr: String,
    },
    /// What the cluster is, and the profile this node runs: `role` if it asks for one (needs
    /// the node's certificate).
    Cluster {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<String>,
        /// The version asked for: the installed one where none is, else one staged beside it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },
    /// A file of the cluster image (of `version`, as for `Cluster`), from `offset` (needs the
    /// node's certificate).
    Fetch {
        path: String,
        offset: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },
    /// Forget this node: an undone join (needs the node's certificate).
    Leave,
    /// This node's Kubernetes credentials, signed from CSRs of keys the node keeps: kubelet's
    /// client and serving certificates (for `ips`) and kube-proxy's (needs the node's
    /// certificate, whose name they are issued for).
    Kubernetes {
        kubelet_client_csr: String,
        kubelet_serving_csr: String,
        kube_proxy_csr: String,
        ips: Vec<IpAddr>,
    },
    /// Run a node hook of the application for this node on the first node (needs the node's
    /// certificate); the answer comes once its Job is done.
    NodeHook {
        hook: NodeHook,
    },
    /// Start a peer-check server (`rpc::peer`) for this node's cross-node preflight checks;
    /// it stops by itself once idle (needs the node's certificate).
    Peer,
    /// Make this node a control plane node: an etcd member at `peer_url`, a learner until
    /// [`Request::Promote`]. Unless `pinned` (its profile asks for it), the cluster answers
    /// [`Response::Worker`] once it has enough control plane nodes (needs the node's
    /// certificate).
    ControlPlane {
        peer_url: String,
        pinned: bool,
    },
    /// Promote this node's etcd learner to a voting member once it has caught up; one that
    /// never does is removed again (needs the node's certificate).
    Promote,
    /// Cordon this node and evict its pods, before it leaves (needs the node's certificate).
    Drain,
    /// Remove this node's etcd member, while its etcd still runs: with two members, one
    /// stopped first would leave the other without a quorum to remove it (needs the node's
    /// certificate).
    RemoveMember,
    /// Make this node schedulable again, after an upgrade's restart (needs the node's
    /// certificate).
    Uncordon,
    /// A joined node's agent: the version it runs and how its step of a rolling upgrade goes;
    /// the answer is what the cluster wants it to run (needs the node's certificate).
    Sync {
        runs: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<Step>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "kebab-case")]
pub enum Response {
    Hello {
        version: u32,
        cluster: String,
    },
    Joined {
        certificate: String,
        ca: String,
    },
    Cluster(ClusterInfo),
    Kubernetes(KubeCredentials),
    /// `size - offset` bytes of the file follow this line.
    Data {
        path: String,
        size: u64,
        offset: u64,
    },
    Left {
        node: String,
    },
    /// Whether the application defines the hook (it ran and succeeded), or not.
    HookDone {
        ran: bool,
    },
    Peer {
        port: u16,
    },
    ControlPlane(ControlPlaneJoin),
    /// The node joins as a worker: the cluster has its control plane nodes.
    Worker {
        reason: String,
    },
    Promoted,
    /// Whether the cluster drained the node (it does where it runs Kubernetes).
    Drained {
        drained: bool,
    },
    MemberRemoved {
        removed: bool,
    },
    Uncordoned {
        uncordoned: bool,
    },
    /// What the node should run: nothing new without a target; and where the cluster's
    /// apiservers are (a worker's proxy to them follows the list).
    Sync {
        target: Option<Target>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        apiservers: Vec<std::net::SocketAddr>,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
}

/// The application's hooks around a node's joining and leaving (the manifest's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeHook {
    PreNodeAdd,
    PostNodeAdd,
    PreNodeRemove,
    PostNodeRemove,
}

impl NodeHook {
    /// The hook's name in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            NodeHook::PreNodeAdd => "preNodeAdd",
            NodeHook::PostNodeAdd => "postNodeAdd",
            NodeHook::PreNodeRemove => "preNodeRemove",
            NodeHook::PostNodeRemove => "postNodeRemove",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    Version,
    Token,
    Unauthenticated,
    Invalid,
    NotFound,
    Internal,
}

/// What a node learns of the cluster once it has joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub name: String,
    pub version: String,
    /// The cluster image's SHA-256 index (`index.json`), as the first node has it: every
    /// fetched file is checked against it.
    pub index: String,
    #[serde(default)]
    pub facts: ClusterFacts,
}

/// What every node of the cluster shares besides the image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterFacts {
    /// The service user's ids: the same on every node.
    pub service_uid: u32,
    pub service_gid: u32,
    /// The asking node's profile: the one it asked for, else the installed flavor's next
    /// missing profile, else the first node's.
    pub role: String,
    /// The first node's address: where its registry and apiserver answer.
    pub first_node_ip: Option<IpAddr>,
    /// kube-apiserver's URL, where the cluster runs Kubernetes.
    pub apiserver: Option<String>,
}

/// A node's Kubernetes certificates (PEM), signed by the cluster CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeCredentials {
    pub kubelet_client: String,
    pub kubelet_serving: String,
    pub kube_proxy: String,
}

/// What a new control plane node needs from the cluster: the secrets every control plane node
/// shares (PEM; the controller manager signs with the CA's key, every apiserver verifies
/// service-account tokens), and the etcd cluster its member joins. Never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneJoin {
    pub ca_key: String,
    pub sa_key: String,
    /// etcd's `--initial-cluster`: every member's `name=peer URL`, this node's included.
    pub initial_cluster: String,
}

impl std::fmt::Debug for ControlPlaneJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlaneJoin")
            .field("initial_cluster", &self.initial_cluster)
            .finish_non_exhaustive()
    }
}
