//! `gravity agent serve`: the join agent of this node's cluster, in the foreground.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use rpc::agent::{PORT, Server, Shared};

use crate::install::state::ClusterRecord;
use crate::node::kubernetes;
use crate::state_dir::StateDir;

/// Builds the server from the state directory: the cluster's record, CA and the agent's own
/// certificate, which install made.
pub fn server(layout: &StateDir, port: u16) -> anyhow::Result<Server> {
    let record = ClusterRecord::load(layout)?.with_context(|| {
        format!(
            "nothing is installed in {}: the join agent serves an installed cluster",
            layout.root().display()
        )
    })?;
    let read = |path: std::path::PathBuf| {
        std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {}: run `gravity install --resume` to make the agent's files",
                path.display()
            )
        })
    };
    let pki = layout.pki();
    let ca_pem = read(pki.join("ca.crt"))?;
    let ca = pki::issue::Ca::from_pem(&ca_pem, &read(pki.join("ca.key"))?)?;
    let tls = rpc::agent::tls::server_config(
        &ca_pem,
        &read(layout.agent_cert())?,
        &read(layout.agent_key())?,
    )?;
    let kubernetes = runs_kubernetes(layout);
    let state_dir = layout.root().to_path_buf();
    let members = Arc::new(super::members::EtcdMembers::new(
        &state_dir,
        &layout.joined_nodes(),
    ));
    let control_plane = if kubernetes {
        let secrets = pki::Secrets::read(&pki).with_context(|| {
            format!(
                "cannot read the cluster's CA and service-account keys in {}",
                pki.display()
            )
        })?;
        Some(rpc::agent::ControlPlane {
            secrets,
            members: Box::new(members.clone()),
        })
    } else {
        None
    };
    let shared = Shared {
        cluster: record.name.clone(),
        version: record.version.clone(),
        tls,
        tokens: super::command::tokens(layout),
        ca,
        ca_pem,
        image_dir: record.image_dir.clone(),
        nodes_dir: layout.joined_nodes(),
        first_node: record.node.node_name.clone(),
        facts: rpc::agent::ClusterFacts {
            service_uid: record.service_uid,
            service_gid: record.service_gid,
            role: record.node.role.clone(),
            first_node_ip: Some(record.node.advertise_ip),
            apiserver: kubernetes.then(|| {
                kubernetes::pki_request(&record.node.node_name, record.node.advertise_ip)
                    .apiserver_url
            }),
        },
        roles: roles(&record),
        forget: kubernetes.then(|| -> rpc::agent::Forget {
            let state_dir = state_dir.clone();
            Box::new(move |node: &str| {
                use rpc::agent::Members;
                delete_node(&state_dir, node)?;
                members.remove(node).map(|_| ())
            })
        }),
        node_hooks: kubernetes.then(|| node_hooks(StateDir::new(&state_dir))),
        control_plane,
        drain: kubernetes.then(|| -> rpc::agent::Drain {
            let state_dir = state_dir.clone();
            Box::new(move |node: &str| {
                use crate::effects::PlanetControl;
                // Removed already (`gravity remove`): nothing to drain.
                if !has_node(&state_dir, node)? {
                    return Ok(false);
                }
                crate::effects::HostPlanet
                    .drain(&state_dir, node, true)
                    .map_err(|e| format!("{e:#}"))?;
                tracing::info!(node, "drained the node");
                Ok(true)
            })
        }),
        uncordon: kubernetes.then(|| -> rpc::agent::Drain {
            let state_dir = state_dir.clone();
            Box::new(move |node: &str| {
                use crate::effects::PlanetControl;
                if !has_node(&state_dir, node)? {
                    return Ok(false);
                }
                crate::effects::HostPlanet
                    .uncordon(&state_dir, node)
                    .map_err(|e| format!("{e:#}"))?;
                tracing::info!(node, "uncordoned the node");
                Ok(true)
            })
        }),
        apiservers: kubernetes.then(|| -> rpc::agent::Apiservers {
            let (first, nodes_dir) = (record.node.advertise_ip, layout.joined_nodes());
            Box::new(move || {
                let port = kubernetes::APISERVER_PORT;
                std::iter::once(first)
                    .chain(super::members::control_plane_ips(&nodes_dir))
                    .map(|ip| std::net::SocketAddr::new(ip, port))
                    .collect()
            })
        }),
    };
    Ok(Server::bind(
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
        shared,
    )?)
}

/// Serves until the process is stopped (systemd or gravity's daemon sends SIGTERM).
pub fn run(layout: &StateDir) -> anyhow::Result<()> {
    let server = server(layout, PORT)?;
    tracing::info!(addr = %server.local_addr()?, "the join agent is listening");
    server.serve(&AtomicBool::new(false));
    Ok(())
}

/// Whether this node runs the cluster's Kubernetes: the install made kubelet's credentials.
pub fn runs_kubernetes(layout: &StateDir) -> bool {
    layout.pki().join("kubelet.kubeconfig").exists()
}

/// Whether Kubernetes has a Node object `node` (kubectl inside this node's planet).
pub fn has_node(state_dir: &std::path::Path, node: &str) -> Result<bool, String> {
    let pid = planet::status::Status::running_init_pid(state_dir)
        .ok_or("planet is not running on this node: start it (`gravity planet start`) first")?;
    let out = planet::health::kubectl(
        pid,
        &["get", "node", node, "-o", "name", "--ignore-not-found"],
    )
    .map_err(|e| e.to_string())?;
    Ok(!out.is_empty())
}

/// Deletes a node's Kubernetes Node object (its pods go with it), with kubectl inside this
/// node's planet; whether there was one.
pub fn delete_node(state_dir: &std::path::Path, node: &str) -> Result<bool, String> {
    let pid = planet::status::Status::running_init_pid(state_dir)
        .ok_or("planet is not running on this node")?;
    let out = planet::health::kubectl(pid, &["delete", "node", node, "--ignore-not-found"])
        .map_err(|e| e.to_string())?;
    let deleted = out.contains("deleted");
    if deleted {
        tracing::info!(node, "deleted the node's Kubernetes Node object");
    }
    Ok(deleted)
}

/// The application's node hooks as the agent runs them: one at a time (two nodes joining at
/// once must not run one hook's Job twice at the same time), logged to the agent's log.
fn node_hooks(layout: StateDir) -> rpc::agent::RunNodeHook {
    let one_at_a_time = std::sync::Mutex::new(());
    Box::new(move |hook: rpc::agent::NodeHook, node: &str| {
        let _turn = one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
        let name = hook.name();
        let mut log = |line: String| tracing::info!(hook = name, node, "{line}");
        crate::hooks::run_node_hook(&layout, name, node, &mut log)
            .map(|ran| matches!(ran, crate::hooks::Ran::Done))
            .map_err(|e| format!("{e:#}"))
    })
}

/// The installed flavor's nodes and the profiles, from the manifest of the image the cluster
/// was installed from (none where it cannot be read: joins then default to the first node's
/// profile, and the joining node's checks judge a profile it asks for).
fn roles(record: &ClusterRecord) -> rpc::agent::Roles {
    let path = record.image_dir.join(cluster_image::layout::MANIFEST);
    let (flavor, profiles) = match cluster_image::manifest::load_resolved(&path) {
        Ok(manifest) => (
            manifest
                .flavors()
                .iter()
                .find(|f| f.name == record.flavor)
                .map(|f| f.nodes.clone())
                .unwrap_or_default(),
            manifest.profiles().iter().map(|p| p.name.clone()).collect(),
        ),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "joins get the first node's profile by default");
            (Vec::new(), Vec::new())
        }
    };
    rpc::agent::Roles::new(flavor, profiles, record.node.role.clone())
}
