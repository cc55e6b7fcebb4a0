//! The join agent: what the first node serves after install so that other hosts can join,
//! and what a joining node asks.
//!
//! TLS 1.3 on one TCP port ([`PORT`]), then JSON lines as in the peer protocol: a request, a
//! response. A node without a certificate may only say hello and join with a token; the
//! join answers with a client certificate signed by the cluster CA from the node's CSR, and
//! every later request needs it. A `fetch` response is followed by the file's bytes.
//!
//! Blocking I/O, a thread per connection (bounded), like the peer protocol: joins are rare
//! and short, file transfers are a byte copy, and the agent needs no async runtime.

mod client;
mod messages;
mod roles;
pub mod rollout;
mod server;
pub mod tls;
pub mod tokens;

#[cfg(test)]
mod tests;

pub use client::{Client, Fetched, Joined, NodeKubeKeys, Synced, with_port};
pub use messages::{
    ClusterFacts, ClusterInfo, ControlPlaneJoin, ErrorKind, KubeCredentials, NodeHook, Request,
    Response,
};
pub use roles::{RoleError, Roles};
pub use server::{
    Apiservers, ControlPlane, Drain, Forget, Members, RunNodeHook, Server, ServerHandle, Shared,
    forget_joined, joined_in, record_in, valid_node_name,
};

/// The agent's port on the first node.
pub const PORT: u16 = 3012;
/// The protocol version both sides must speak.
pub const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Certificate(String),
    #[error("cannot reach the cluster's agent at {addr}: {source}; is the address right, and does a firewall let port {port} through?", port = PORT)]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the server at {addr} is not the cluster you meant: its CA does not match --ca-hash (copy the join command from `gravity status` on the first node again); nothing was sent to it"
    )]
    CaMismatch { addr: String },
    #[error(
        "the cluster at {addr} refused this node's certificate: it was not issued by that cluster's CA (is this node a member of another cluster?)"
    )]
    CertificateRefused { addr: String },
    #[error("TLS with {addr}: {detail}")]
    Tls { addr: String, detail: String },
    #[error("{addr}: {what}: {source}")]
    Io {
        addr: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the cluster at {addr} refused: {message}")]
    Refused {
        addr: String,
        kind: ErrorKind,
        message: String,
    },
    #[error("the cluster at {addr} does not speak the join protocol: {detail}")]
    Protocol { addr: String, detail: String },
    #[error(
        "{path} from {addr} is damaged: its SHA-256 is {got}, the image's index says {want}; the partial file was removed, run the command again"
    )]
    Damaged {
        addr: String,
        path: String,
        got: String,
        want: String,
    },
}

impl AgentError {
    /// The cluster does not know this node (it left, or a master removed it): it refuses the
    /// node's certificate for anything but leaving.
    pub fn node_forgotten(&self) -> bool {
        matches!(
            self,
            AgentError::Refused {
                kind: ErrorKind::NotFound,
                ..
            }
        )
    }
}
