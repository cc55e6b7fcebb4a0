//! Where planet's files live under the state directory.
//!
//! ```text
//! <state>/planet/config.json              PlanetConfig (what to run)
//! <state>/planet/images/<version>/        imported images (planet.erofs + planet.json)
//! <state>/planet/overlay/<version>/       the overlay's upper and work dirs (writable state)
//! <state>/planet/data/<name>/             persistent data volumes: etcd, docker, ... (kept)
//! <state>/planet/image/  rootfs/          mount points: the image, the overlay
//! <state>/planet/bundle/config.json       the generated OCI spec
//! <state>/planet/runtime/                 libcontainer's state
//! <state>/planet/run/                     planet's notify socket (bound into planet)
//! <state>/planet/container-environment    bound read-only at /etc/container-environment
//! <state>/planet/status.json              the supervisor's view (state, pids, timings)
//! <state>/planet/supervisor.lock          held by the running supervisor
//! <state>/planet/supervisor.pid           gravity's own daemon (hosts without systemd)
//! <state>/logs/planet.log                 that daemon's output
//! ```

use std::path::{Path, PathBuf};

/// The container id, in libcontainer's state and in log lines.
pub const CONTAINER_ID: &str = "planet";

#[derive(Debug, Clone)]
pub struct Paths {
    pub state_dir: PathBuf,
    pub dir: PathBuf,
}

impl Paths {
    pub fn new(state_dir: &Path) -> Self {
        Paths {
            state_dir: state_dir.to_path_buf(),
            dir: state_dir.join("planet"),
        }
    }
    /// A short id of this state directory (8 hex digits of the SHA-256 of its absolute path):
    /// host-wide names (cgroups) carry it so that planets of different state directories
    /// never touch each other's.
    pub fn instance(&self) -> String {
        use sha2::Digest;
        let abs = std::fs::canonicalize(&self.state_dir).unwrap_or_else(|_| {
            std::env::current_dir()
                .map(|d| d.join(&self.state_dir))
                .unwrap_or_else(|_| self.state_dir.clone())
        });
        let digest = sha2::Sha256::digest(abs.as_os_str().as_encoded_bytes());
        hex::encode(&digest[..4])
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    pub fn images(&self) -> PathBuf {
        self.dir.join("images")
    }
    pub fn overlay(&self, version: &str) -> PathBuf {
        self.dir.join("overlay").join(version)
    }
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }
    /// planet's journal as the host sees it: journald's persistent directory, on `data`.
    pub fn journal(&self) -> PathBuf {
        self.data().join("log/journal")
    }
    pub fn image_mount(&self) -> PathBuf {
        self.dir.join("image")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    pub fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }
    pub fn runtime(&self) -> PathBuf {
        self.dir.join("runtime")
    }
    pub fn container_state(&self) -> PathBuf {
        self.runtime().join(CONTAINER_ID)
    }
    pub fn run(&self) -> PathBuf {
        self.dir.join("run")
    }
    pub fn notify_socket(&self) -> PathBuf {
        self.run().join("notify.sock")
    }
    pub fn environment(&self) -> PathBuf {
        self.dir.join("container-environment")
    }
    pub fn status(&self) -> PathBuf {
        self.dir.join("status.json")
    }
    pub fn lock(&self) -> PathBuf {
        self.dir.join("supervisor.lock")
    }
    /// The copy of gravity an install keeps in the state directory: what runs planet's
    /// daemon where it exists (the binary that started it may be replaced by an upgrade).
    pub fn gravity(&self) -> PathBuf {
        self.state_dir.join("bin/gravity")
    }
    pub fn daemon_pid(&self) -> PathBuf {
        self.dir.join("supervisor.pid")
    }
    pub fn log(&self) -> PathBuf {
        self.state_dir.join("logs").join("planet.log")
    }
}

/// Inside planet: where the supervisor's notify socket directory appears.
pub const NOTIFY_DIR_INSIDE: &str = "/run/gravity";
/// Inside planet: the agent's environment file, read by planet-setup and the daemon units.
pub const ENVIRONMENT_INSIDE: &str = "/etc/container-environment";

/// Where planet sees the cluster's PKI and kubeconfigs (mounted read-only when the node runs
/// Kubernetes; the control plane's units are skipped without it).
pub const PKI_INSIDE: &str = "/etc/kubernetes/pki";
/// Where planet-setup renders the cluster's own workloads (CoreDNS) for the install to apply.
pub const ADDONS_INSIDE: &str = "/run/planet/addons";

/// What `kubectl` and `etcdctl` inside planet need to work without flags, as in Gravity's
/// planet: the admin kubeconfig and etcd's client TLS.
pub const KUBERNETES_ENV: &[(&str, &str)] = &[
    ("KUBECONFIG", "/etc/kubernetes/pki/admin.kubeconfig"),
    ("ETCDCTL_ENDPOINTS", "https://127.0.0.1:2379"),
    ("ETCDCTL_CACERT", "/etc/kubernetes/pki/ca.crt"),
    ("ETCDCTL_CERT", "/etc/kubernetes/pki/etcdctl.crt"),
    ("ETCDCTL_KEY", "/etc/kubernetes/pki/etcdctl.key"),
];
