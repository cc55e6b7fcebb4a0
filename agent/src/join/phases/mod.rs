//! The joining node's phases, one file each, in the order they run: the join's own first
//! (authenticate, fetch, checks, the preNodeAdd hook, credentials), then the install's node
//! steps over the fetched image ([`on_node::OnNode`]): the same code that set up the first
//! node, with the etcd member's promotion once planet runs; last the postNodeAdd hook.

mod authenticate;
mod checks;
mod credentials;
pub(crate) mod fetch;
mod node_agent;
mod node_hooks;
mod on_node;
mod promote;

use super::plan::Ctx;
use crate::install::phases as install;
use on_node::OnNode;
use operation::Phase;

pub fn all() -> Vec<Box<dyn Phase<Ctx>>> {
    vec![
        Box::new(authenticate::Authenticate),
        Box::new(fetch::Fetch),
        Box::new(checks::Checks),
        Box::new(node_hooks::PreNodeAdd),
        Box::new(credentials::Credentials),
        Box::new(OnNode(Box::new(install::agent::Agent))),
        Box::new(OnNode(Box::new(install::kernel::Kernel))),
        Box::new(OnNode(Box::new(install::user::User))),
        Box::new(OnNode(Box::new(install::planet_image::PlanetImage))),
        Box::new(OnNode(Box::new(install::configure::Configure))),
        Box::new(OnNode(Box::new(install::volumes::Volumes))),
        Box::new(OnNode(Box::new(install::service::Service))),
        // Before planet: a worker's kubelet reaches the apiservers through the agent.
        Box::new(node_agent::NodeAgent),
        Box::new(OnNode(Box::new(install::start::Start))),
        Box::new(promote::Promote),
        Box::new(OnNode(Box::new(install::health::Health))),
        Box::new(OnNode(Box::new(install::node_ready::NodeReady))),
        Box::new(OnNode(Box::new(install::finish::Finish))),
        Box::new(node_hooks::PostNodeAdd),
    ]
}

/// The profile this node runs: the one asked for, else the first node's.
pub fn role(ctx: &Ctx, facts: &rpc::agent::ClusterFacts) -> Option<String> {
    ctx.params
        .role
        .clone()
        .or_else(|| Some(facts.role.clone()).filter(|r| !r.is_empty()))
}
