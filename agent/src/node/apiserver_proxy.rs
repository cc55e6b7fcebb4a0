//! A worker's way to the cluster's apiservers: its kubelet and kube-proxy talk to
//! [`APISERVER_PROXY`] on loopback, where the node's agent proxies to whichever control plane
//! node's apiserver answers ([`rpc::failover`]). The list starts as the first node's (the
//! join writes it) and follows what the first node's agent says at each sync; it is kept in
//! `<state>/agent/apiservers.json`, so a restarted agent finds every apiserver even while the
//! first node is down.

use std::net::SocketAddr;

use anyhow::Context;
use rpc::failover::{Backends, Proxy, ServerHandle};

use super::kubernetes::APISERVER_PROXY;
use crate::state_dir::StateDir;

/// The running proxy and its list.
pub struct Running {
    pub backends: Backends,
    _handle: ServerHandle,
}

/// The proxy's URL, what a worker's kubeconfigs name.
pub fn url() -> String {
    format!("https://{}", SocketAddr::from(APISERVER_PROXY))
}

/// Starts the proxy where this node is a worker (it has a list); none elsewhere.
pub fn start(layout: &StateDir) -> anyhow::Result<Option<Running>> {
    let Some(list) = read(layout)? else {
        return Ok(None);
    };
    let backends = Backends::new(list);
    let addr = SocketAddr::from(APISERVER_PROXY);
    let handle = Proxy::bind(addr, backends.clone())
        .with_context(|| format!("the apiservers' proxy cannot listen on {addr}"))?
        .spawn()?;
    tracing::info!(%addr, apiservers = ?backends.list(), "proxying to the cluster's apiservers");
    Ok(Some(Running {
        backends,
        _handle: handle,
    }))
}

impl Running {
    /// Follows the cluster's list (kept for the next start); an empty one changes nothing.
    pub fn update(&self, layout: &StateDir, list: &[SocketAddr]) -> anyhow::Result<()> {
        if list.is_empty() || !self.backends.set(list.to_vec()) {
            return Ok(());
        }
        tracing::info!(apiservers = ?list, "the cluster's apiservers changed");
        write(layout, list)
    }
}

pub fn write(layout: &StateDir, list: &[SocketAddr]) -> anyhow::Result<()> {
    let path = layout.apiservers();
    crate::install::state::write_json(&path, &list)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The kept list; none where the node has none (it is no worker).
pub fn read(layout: &StateDir) -> anyhow::Result<Option<Vec<SocketAddr>>> {
    let path = layout.apiservers();
    match std::fs::read(&path) {
        Ok(bytes) => {
            Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!("{} is damaged", path.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}
