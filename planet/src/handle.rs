//! [`Planet`]: one handle on the planet of a state directory, as youki's `Container` is one on a
//! container: load it, then start, stop, ask its status and health, run commands in it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{ConfigError, PlanetConfig};
use crate::exec::ExecError;
use crate::health::{HealthError, PlanetHealth};
use crate::service::ServiceError;
use crate::status::Status;
use crate::{Leftovers, TeardownError};

/// The planet configured in a state directory.
#[derive(Debug, Clone)]
pub struct Planet {
    state_dir: PathBuf,
    config: PlanetConfig,
}

impl Planet {
    /// The planet configured in `state_dir` (its `planet.json` must exist).
    pub fn load(state_dir: &Path) -> Result<Planet, ConfigError> {
        Ok(Planet {
            state_dir: state_dir.to_path_buf(),
            config: PlanetConfig::load(state_dir)?,
        })
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    pub fn config(&self) -> &PlanetConfig {
        &self.config
    }

    /// Starts planet under its supervisor and waits until its systemd runs (a no-op when it
    /// runs already).
    pub fn start(&self, timeout: Duration) -> Result<(), ServiceError> {
        crate::service::start(&self.state_dir, timeout)
    }

    /// Stops planet and waits until its supervisor has torn the container down.
    pub fn stop(&self, timeout: Duration) -> Result<(), ServiceError> {
        crate::service::stop(&self.state_dir, timeout)
    }

    pub fn is_running(&self) -> bool {
        crate::service::is_running(&self.state_dir)
    }

    /// What the supervisor last recorded (none before the first start).
    pub fn status(&self) -> Option<Status> {
        Status::load(&self.state_dir)
    }

    pub fn health(&self) -> PlanetHealth {
        crate::health::check(&self.state_dir)
    }

    pub fn wait_healthy(&self, timeout: Duration) -> Result<PlanetHealth, HealthError> {
        crate::health::wait_healthy(&self.state_dir, timeout)
    }

    /// Waits until kube-apiserver inside planet answers `/readyz` (planet must run Kubernetes).
    pub fn wait_apiserver(&self, timeout: Duration) -> Result<(), HealthError> {
        crate::health::wait_apiserver(&self.state_dir, timeout)
    }

    /// Waits until this planet's Kubernetes node is Ready.
    pub fn wait_node_ready(&self, timeout: Duration) -> Result<(), HealthError> {
        crate::health::wait_node_ready(&self.state_dir, timeout)
    }

    /// Applies the cluster's own workloads (CoreDNS), as planet-setup rendered them into
    /// [`crate::paths::ADDONS_INSIDE`]; kubectl's summary on success.
    pub fn apply_addons(&self) -> std::io::Result<String> {
        self.kubectl(&[
            "apply",
            "--server-side",
            // The server validates; kubectl's own check would first download the whole OpenAPI
            // schema (slow on a slow CPU, under a 10 s request timeout).
            "--validate=false",
            "--force-conflicts",
            "--field-manager=gravity",
            "-f",
            crate::paths::ADDONS_INSIDE,
        ])
    }

    /// A path inside the running planet as this host reaches it ([`crate::inside::host_path`]).
    pub fn path_inside(&self, path: &str) -> Option<std::path::PathBuf> {
        let pid = Status::running_init_pid(&self.state_dir)?;
        Some(crate::inside::host_path(pid, path))
    }

    /// kubectl inside planet as the cluster's administrator: its stdout, or its last error line.
    pub fn kubectl(&self, args: &[&str]) -> std::io::Result<String> {
        let pid = Status::running_init_pid(&self.state_dir)
            .ok_or_else(|| std::io::Error::other("planet is not running"))?;
        crate::health::kubectl(pid, args)
    }

    /// Waits until the cluster's DNS (CoreDNS) has its replicas ready.
    pub fn wait_coredns(&self, timeout: Duration) -> Result<(), HealthError> {
        crate::health::wait_coredns(&self.state_dir, timeout)
    }

    /// Runs `args` inside planet with this process's stdio; only from a fresh single-threaded
    /// process (see the crate documentation).
    pub fn exec(&self, args: &[String]) -> Result<u8, ExecError> {
        crate::exec::exec(&self.state_dir, args)
    }

    /// Stops planet and removes what it put on the host, keeping its data and configuration.
    pub fn teardown(&self) -> Result<Leftovers, TeardownError> {
        crate::teardown(&self.state_dir)
    }
}
