//! Joining nodes to the cluster. On the first node: the join agent ([`serve`]) that answers
//! over the `rpc::agent` protocol, kept running as a host service ([`service`]), and the
//! join tokens and command ([`command`]). On a new host: the join plan ([`plan`], its
//! phases in [`phases`]).

pub mod command;
pub mod members;
pub(crate) mod phases;
pub mod plan;
pub mod serve;
pub mod service;
#[cfg(test)]
mod tests;

pub use service::{AgentService, HostAgentService};
