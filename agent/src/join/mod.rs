//! Joining nodes to the cluster. On the first node: the join agent ([`serve`]) that answers
//! over the `rpc::agent` protocol, kept running as a host service ([`service`]), and the
//! join tokens and command ([`command`]).

pub mod command;
pub mod serve;
pub mod service;

pub use service::{AgentService, HostAgentService};
