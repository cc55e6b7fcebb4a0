//! `gravity remove NODE`: on the node that installed the cluster, removes a joined node that is
//! gone for good (a dead host): its Kubernetes Node object, whose pods go with it, and the
//! cluster's record of it. A node that still runs leaves with `gravity leave` instead.

use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::cli::GlobalArgs;
use crate::install::state::ClusterRecord;
use crate::state_dir::StateDir;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node's name, as `gravity kubectl get nodes` shows it
    pub node: String,
    /// Do not ask for confirmation (required without a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<ExitCode> {
    if !nix::unistd::geteuid().is_root() {
        bail!("gravity remove changes the cluster: run it as root");
    }
    let layout = StateDir::new(&global.state_dir);
    let record = ClusterRecord::load(&layout)?.with_context(|| {
        format!(
            "no cluster is installed in {}: run this on the node that installed it",
            layout.root().display()
        )
    })?;
    if let Some(joined) = &record.node.joined {
        bail!(
            "this node joined the cluster: remove nodes on the node that installed it (the control plane at {})",
            joined.control_plane
        );
    }
    let node = &args.node;
    if *node == record.node.node_name {
        bail!(
            "{node} is this node, the cluster's control plane: `gravity leave --force` (or `gravity uninstall`) removes the whole cluster"
        );
    }
    if !rpc::agent::valid_node_name(node) {
        bail!("\"{node}\" is not a valid node name");
    }
    if !args.yes {
        if !crate::install::prompt::interactive(false) {
            bail!(
                "removing node {node} deletes its Kubernetes node and its pods: pass --yes to confirm"
            );
        }
        if !crate::install::prompt::ask(&format!(
            "Remove node {node} and its pods from the cluster? [y/N] "
        ))? {
            bail!("nothing was removed");
        }
    }
    let kubernetes = crate::join::serve::runs_kubernetes(&layout);
    let hook = |name: &str| -> anyhow::Result<()> {
        if kubernetes {
            crate::hooks::run_node_hook(&layout, name, node, &mut crate::hooks::to_stderr(name))?;
        }
        Ok(())
    };
    let recorded = rpc::agent::record_in(&layout.joined_nodes(), node).exists();
    let known = recorded || (kubernetes && has_node(&layout, node)?);
    if !known {
        bail!("the cluster has no node {node} (`gravity kubectl get nodes` lists them)");
    }
    hook("preNodeRemove").context("nothing was removed: the preNodeRemove hook failed")?;
    let deleted = if kubernetes {
        crate::join::serve::delete_node(layout.root(), node)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("cannot delete node {node}'s Kubernetes node"))?
    } else {
        false
    };
    // A control plane node's etcd member goes too (a gone member counts against the quorum).
    let member = if kubernetes {
        use rpc::agent::Members;
        crate::join::members::EtcdMembers::new(layout.root(), &layout.joined_nodes())
            .remove(node)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("cannot remove node {node}'s etcd member"))?
    } else {
        false
    };
    rpc::agent::forget_joined(
        &layout.joined_nodes(),
        &crate::join::command::tokens(&layout),
        node,
    )
    .map_err(anyhow::Error::msg)?;
    hook("postNodeRemove").with_context(|| {
        format!("node {node} is removed from the cluster, but the postNodeRemove hook failed")
    })?;
    eprintln!(
        "node {node} is removed from the cluster{}{}; if its host comes back, run `gravity uninstall` there",
        if deleted {
            " (its Kubernetes node and pods deleted)"
        } else {
            ""
        },
        if member { " and from etcd" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}

/// Whether the cluster's Kubernetes has a Node `node`.
fn has_node(layout: &StateDir, node: &str) -> anyhow::Result<bool> {
    crate::join::serve::has_node(layout.root(), node)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("cannot ask Kubernetes for node {node}"))
}
