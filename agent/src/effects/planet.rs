//! Starting, stopping and waiting for the planet of a state directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use planet::Planet;

/// Where planet's image keeps its system images (planet-image/images/build.sh).
pub const SYSTEM_IMAGES: &str = "/usr/share/planet/images";
/// Pause between attempts to apply the cluster's workloads.
const APPLY_RETRY: Duration = Duration::from_secs(3);

pub trait PlanetControl {
    /// Starts planet under its supervisor; returns once its systemd runs.
    fn start(&self, state_dir: &Path, timeout: Duration) -> anyhow::Result<()>;
    /// Waits until planet's services answer.
    fn wait_healthy(&self, state_dir: &Path, timeout: Duration) -> anyhow::Result<()>;
    /// Waits until kube-apiserver in planet is ready.
    fn wait_apiserver(&self, state_dir: &Path, timeout: Duration) -> anyhow::Result<()>;
    /// Waits until this node is Ready in Kubernetes.
    fn wait_node_ready(&self, state_dir: &Path, timeout: Duration) -> anyhow::Result<()>;
    /// The OCI layout of planet's system images (pause, CoreDNS) in the running planet, if its
    /// image has them.
    fn system_images(&self, state_dir: &Path) -> Option<PathBuf>;
    /// Applies the cluster's own workloads (CoreDNS) and waits until they are ready.
    fn start_system_workloads(&self, state_dir: &Path, timeout: Duration) -> anyhow::Result<()>;
    /// Stops planet and removes what it put on the host, keeping its data.
    fn teardown(&self, state_dir: &Path) -> anyhow::Result<()>;
    /// Stops planet (its supervisor and container), leaving everything else in place.
    /// systemd's words for the units whose stop timed out since `since` (why a stop was
    /// slow); none where the journal says nothing or cannot be read.
    fn stop_timeouts(&self, _state_dir: &Path, _since: std::time::SystemTime) -> Vec<String> {
        Vec::new()
    }
    fn stop(&self, state_dir: &Path, timeout: Duration) -> anyhow::Result<()>;
    /// Saves a snapshot of etcd's keyspace at `inside` (a path inside planet).
    fn etcd_snapshot(&self, state_dir: &Path, inside: &str) -> anyhow::Result<()>;
    /// Cordons the node and evicts its pods (deletes them, where `evict` is false).
    fn drain(&self, state_dir: &Path, node: &str, evict: bool) -> anyhow::Result<()>;
    /// Makes the node schedulable again.
    fn uncordon(&self, state_dir: &Path, node: &str) -> anyhow::Result<()>;
    /// How many nodes the cluster has.
    fn node_count(&self, state_dir: &Path) -> anyhow::Result<usize>;
    /// Stops this node's control plane (kube-scheduler and kube-controller-manager run in the
    /// apiserver's process) and deletes their leader leases, so that the next ones lead at
    /// once instead of waiting out the leases (a minute): only for a node alone in its
    /// cluster, where no other holder can exist.
    fn release_leader_leases(&self, state_dir: &Path) -> anyhow::Result<()>;
}

/// The leader leases of the controllers that elect one (in kube-system).
const LEADER_LEASES: &[&str] = &["kube-scheduler", "kube-controller-manager"];

/// How long a snapshot of etcd may take.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a drain may wait for the node's pods to go.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

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
            "kube-apiserver did not become ready: see `gravity planet enter -- journalctl -u planet-kube-control-plane`",
        )?;
        Ok(())
    }
    fn wait_node_ready(&self, state_dir: &Path, timeout: Duration) -> anyhow::Result<()> {
        Planet::load(state_dir)?.wait_node_ready(timeout).context(
            "the node did not become Ready: see `gravity kubectl describe node` and `gravity planet enter -- journalctl -u planet-kube-node`",
        )?;
        Ok(())
    }
    fn system_images(&self, state_dir: &Path) -> Option<PathBuf> {
        Planet::load(state_dir)
            .ok()?
            .path_inside(SYSTEM_IMAGES)
            .filter(|p| p.join("index.json").exists())
    }
    fn start_system_workloads(&self, state_dir: &Path, timeout: Duration) -> anyhow::Result<()> {
        let planet = Planet::load(state_dir)?;
        let deadline = Instant::now() + timeout;
        // A busy apiserver (its first OpenAPI document takes a slow CPU longer than kubectl's
        // request timeout) fails an apply that a retry makes: retry until the phase's time is up.
        while let Err(e) = planet.apply_addons() {
            if Instant::now() + APPLY_RETRY >= deadline {
                return Err(e).context(
                    "cannot apply the cluster's workloads (CoreDNS) from /run/planet/addons inside planet",
                );
            }
            tracing::info!("applying the cluster's workloads failed, retrying: {e}");
            std::thread::sleep(APPLY_RETRY);
        }
        let timeout = deadline.saturating_duration_since(Instant::now());
        planet.wait_coredns(timeout).context(
            "CoreDNS did not become ready: see `gravity kubectl -n kube-system describe pods -l k8s-app=kube-dns`",
        )?;
        Ok(())
    }
    fn teardown(&self, state_dir: &Path) -> anyhow::Result<()> {
        planet::teardown(state_dir)?;
        Ok(())
    }
    fn stop_timeouts(&self, state_dir: &Path, since: std::time::SystemTime) -> Vec<String> {
        planet::shutdown::timed_out(state_dir, since)
    }
    fn stop(&self, state_dir: &Path, timeout: Duration) -> anyhow::Result<()> {
        Planet::load(state_dir)?.stop(timeout)?;
        Ok(())
    }
    fn etcd_snapshot(&self, state_dir: &Path, inside: &str) -> anyhow::Result<()> {
        let pid = planet::status::Status::running_init_pid(state_dir)
            .context("planet is not running: etcd cannot be snapshotted")?;
        planet::etcdctl::etcdctl(pid, &["snapshot", "save", inside], SNAPSHOT_TIMEOUT)
            .with_context(|| format!("etcdctl snapshot save {inside} inside planet failed"))?;
        Ok(())
    }
    fn drain(&self, state_dir: &Path, node: &str, evict: bool) -> anyhow::Result<()> {
        let timeout = format!("--timeout={}s", DRAIN_TIMEOUT.as_secs());
        let mut args = vec![
            "drain",
            node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--force",
            &timeout,
        ];
        if !evict {
            args.push("--disable-eviction");
        }
        crate::hooks::kubectl::Kubectl::of(state_dir)?
            .run_for(&args, DRAIN_TIMEOUT + Duration::from_secs(30))
            .map(drop)
    }
    fn uncordon(&self, state_dir: &Path, node: &str) -> anyhow::Result<()> {
        crate::hooks::kubectl::Kubectl::of(state_dir)?
            .run(&["uncordon", node])
            .map(drop)
    }
    fn release_leader_leases(&self, state_dir: &Path) -> anyhow::Result<()> {
        let pid =
            planet::status::Status::running_init_pid(state_dir).context("planet is not running")?;
        let args = ["stop", planet::health::CONTROL_PLANE_UNIT];
        let out = planet::inside::query(pid, "/usr/bin/systemctl", &args, Duration::from_secs(60))
            .context("systemctl stop inside planet did not finish")?;
        anyhow::ensure!(
            out.status.success(),
            "systemctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        // The apiserver stopped with them: the leases go from its storage, etcd.
        for lease in LEADER_LEASES {
            let key = format!("/registry/leases/kube-system/{lease}");
            planet::etcdctl::etcdctl(pid, &["del", &key], Duration::from_secs(30))
                .with_context(|| format!("cannot delete {key} from etcd"))?;
        }
        Ok(())
    }
    fn node_count(&self, state_dir: &Path) -> anyhow::Result<usize> {
        let names =
            crate::hooks::kubectl::Kubectl::of(state_dir)?.run(&["get", "nodes", "-o", "name"])?;
        Ok(names.lines().filter(|l| !l.trim().is_empty()).count())
    }
}
