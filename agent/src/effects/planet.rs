//! Starting, stopping and waiting for the planet of a state directory.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use planet::Planet;

pub trait PlanetControl {
    /// Starts planet under its supervisor; returns once its systemd runs.
    fn start(&self, state_dir: &Path, timeout: Duration) -> anyhow::Result<()>;
    /// Waits until planet's services answer.
    fn wait_healthy(&self, state_dir: &Path, timeout: Duration) -> anyhow::Result<()>;
    /// Waits until kube-apiserver in planet is ready.
    fn wait_apiserver(&self, state_dir: &Path, timeout: Duration) -> anyhow::Result<()>;
    /// Waits until this node is Ready in Kubernetes.
    fn wait_node_ready(&self, state_dir: &Path, timeout: Duration) -> anyhow::Result<()>;
    /// Stops planet and removes what it put on the host, keeping its data.
    fn teardown(&self, state_dir: &Path) -> anyhow::Result<()>;
}

/// planet on this host, through its [`Planet`] handle.
pub struct HostPlanet;

impl PlanetControl for HostPlanet {
    fn start(&self, state_dir: &Path, timeout: Duration) -> anyhow::Result<()> {
        Planet::load(state_dir)?.start(timeout)?;
        Ok(())
    }
    fn wait_healthy(&self, state_dir: &Path, timeout: Duration) -> anyhow::Result<()> {
        Planet::load(state_dir)?.wait_healthy(timeout).context(
            "planet did not become healthy: see `gravity planet status` and `gravity planet enter -- journalctl -xe`",
        )?;
        Ok(())
    }
    fn wait_apiserver(&self, state_dir: &Path, timeout: Duration) -> anyhow::Result<()> {
        Planet::load(state_dir)?.wait_apiserver(timeout).context(
            "kube-apiserver did not become ready: see `gravity planet enter -- journalctl -u kube-apiserver`",
        )?;
        Ok(())
    }
    fn wait_node_ready(&self, state_dir: &Path, timeout: Duration) -> anyhow::Result<()> {
        Planet::load(state_dir)?.wait_node_ready(timeout).context(
            "the node did not become Ready: see `gravity kubectl describe node` and `gravity planet enter -- journalctl -u kubelet`",
        )?;
        Ok(())
    }
    fn teardown(&self, state_dir: &Path) -> anyhow::Result<()> {
        planet::teardown(state_dir)?;
        Ok(())
    }
}
