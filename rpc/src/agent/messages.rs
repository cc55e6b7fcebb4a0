//! The protocol's messages, one JSON line each.

use serde::{Deserialize, Serialize};

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
    /// What the cluster is (needs the node's certificate).
    Cluster,
    /// A file of the cluster image, from `offset` (needs the node's certificate).
    Fetch {
        path: String,
        offset: u64,
    },
    /// Forget this node: an undone join (needs the node's certificate).
    Leave,
    /// Start a peer-check server (`rpc::peer`) for this node's cross-node preflight checks;
    /// it stops by itself once idle (needs the node's certificate).
    Peer,
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
    /// `size - offset` bytes of the file follow this line.
    Data {
        path: String,
        size: u64,
        offset: u64,
    },
    Left {
        node: String,
    },
    Peer {
        port: u16,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
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
}
