//! planet's health: the supervisor's state, planet's systemd and each of its units, and the
//! endpoints that say the daemons really serve: etcd's `/health`, dockerd's `/_ping` (on its
//! socket inside planet) and the registry's `/v2/`.
//!
//! Safe to call from any process (threads or not): units are queried with a short
//! `systemctl show` run in planet's namespaces (see [`super::inside`]), endpoints over plain
//! sockets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::inside;
use super::paths::Paths;
use super::status::{RunState, Status, Timings};
use super::sys::SupervisorLock;

/// The units planet's health is made of; kubelet is optional (absent from images built
/// without Kubernetes binaries, and restarting until the cluster configures it).
pub const UNITS: &[(&str, bool)] = &[
    ("planet-setup.service", true),
    ("planet-etcd.service", true),
    ("planet-containerd.service", true),
    ("planet-docker.socket", true),
    ("planet-docker.service", true),
    ("planet-registry.service", true),
    ("planet-kube-control-plane.service", false),
    ("planet-kube-node.service", false),
    ("planet-podnet.service", false),
    ("planet.target", true),
];

/// The control plane's unit that health requires: skipped on a worker (a joined node that
/// uses the cluster's).
const ETCD_UNIT: &str = "planet-etcd.service";
/// Runs on the cluster's first node only.
const REGISTRY_UNIT: &str = "planet-registry.service";

/// What of the cluster a node runs besides its own daemons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runs {
    /// etcd and the Kubernetes control plane.
    pub control_plane: bool,
    /// The cluster's registry.
    pub registry: bool,
}

impl Runs {
    /// The first node's (and a bare planet's): everything.
    pub const ALL: Runs = Runs {
        control_plane: true,
        registry: true,
    };
}

/// kube-apiserver, kube-controller-manager and kube-scheduler: one process.
pub const CONTROL_PLANE_UNIT: &str = "planet-kube-control-plane.service";
/// kubelet and kube-proxy: one process.
pub const NODE_UNIT: &str = "planet-kube-node.service";

/// Units started at the first connection to their socket: healthy while not started yet.
const ON_DEMAND: &[&str] = &[DOCKER_UNIT];
const DOCKER_UNIT: &str = "planet-docker.service";

/// The cluster's DNS Deployment (planet-image/rootfs/usr/lib/planet/addons/coredns.yaml).
pub const COREDNS: &str = "coredns";
pub const COREDNS_NAMESPACE: &str = "kube-system";

const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(2);
/// kubectl is one large static binary (the multi-call `kube`): on a slow or emulated CPU (the
/// QEMU TCG guests of vm-tests) starting it alone takes seconds.
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanetState {
    Running,
    Degraded,
    Starting,
    Stopped,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitHealth {
    pub name: String,
    /// systemd's ActiveState (`active`, `activating`, `failed`, ...).
    pub active_state: String,
    pub healthy: bool,
    /// Whether planet's health depends on it.
    pub required: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointHealth {
    pub name: String,
    pub url: String,
    pub healthy: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanetHealth {
    pub state: PlanetState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_version: Option<String>,
    /// `systemctl is-system-running` inside planet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_state: Option<String>,
    pub units: Vec<UnitHealth>,
    pub endpoints: Vec<EndpointHealth>,
    /// Why planet is not running (the supervisor's error or planet's exit), if it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
}

impl PlanetHealth {
    /// Running, every required unit active and every endpoint answering.
    pub fn is_healthy(&self) -> bool {
        self.state == PlanetState::Running
            && self.units.iter().all(|u| u.healthy || !u.required)
            && self.endpoints.iter().all(|e| e.healthy)
    }

    /// What is wrong, in one line (empty when healthy).
    pub fn problems(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        if self.state != PlanetState::Running {
            out.push(format!(
                "planet is {}{}",
                state_word(self.state),
                self.detail
                    .as_ref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ));
        }
        for u in self.units.iter().filter(|u| u.required && !u.healthy) {
            out.push(format!("{} is {} ({})", u.name, u.active_state, u.detail));
        }
        for e in self.endpoints.iter().filter(|e| !e.healthy) {
            out.push(format!(
                "{} {} does not answer: {}",
                e.name, e.url, e.detail
            ));
        }
        out.join("; ")
    }
}

fn state_word(s: PlanetState) -> &'static str {
    match s {
        PlanetState::Running => "running",
        PlanetState::Degraded => "degraded",
        PlanetState::Starting => "starting",
        PlanetState::Stopped => "stopped",
        PlanetState::Failed => "failed",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("planet is not healthy after {waited:?}: {}", last.problems())]
    Timeout {
        waited: Duration,
        last: Box<PlanetHealth>,
    },
    #[error("planet is {}: {}", state_word(last.state), last.problems())]
    NotRunning { last: Box<PlanetHealth> },
    #[error("kube-apiserver is not ready after {waited:?}: {last}")]
    Apiserver { waited: Duration, last: String },
    #[error("the node is not Ready after {waited:?}: {last}")]
    Node { waited: Duration, last: String },
    #[error("CoreDNS is not ready after {waited:?}: {last}")]
    Dns { waited: Duration, last: String },
    #[error(
        "{} keeps exiting ({} restarts in {} s, last exit status {}), its last words: {}",
        .failing.unit, .failing.restarts, .waited.as_secs(), .failing.status, .failing.log
    )]
    CrashLoop {
        waited: Duration,
        failing: super::restarts::CrashLoop,
    },
}

/// planet's health now.
pub fn check(state_dir: &Path) -> PlanetHealth {
    let paths = Paths::new(state_dir);
    let status = Status::load(state_dir);
    let supervised = SupervisorLock::held(&paths.lock());
    let mut health = PlanetHealth {
        state: PlanetState::Stopped,
        init_pid: None,
        supervisor_pid: None,
        image_version: status.as_ref().map(|s| s.image_version.clone()),
        system_state: None,
        units: Vec::new(),
        endpoints: Vec::new(),
        detail: None,
        timings: status.as_ref().map(|s| s.timings.clone()),
    };
    let Some(status) = status else {
        health.detail = Some("it was never started".into());
        return health;
    };
    if !supervised {
        health.state = match status.state {
            RunState::Failed => PlanetState::Failed,
            _ => PlanetState::Stopped,
        };
        health.detail = status
            .error
            .clone()
            .or_else(|| status.exit.as_ref().map(|e| e.reason.clone()));
        if let Some(pid) = status.init_pid.filter(|p| super::sys::alive(*p))
            && paths.container_state().exists()
        {
            // The supervisor died (SIGKILL, OOM) and left planet running unsupervised.
            health.state = PlanetState::Failed;
            health.init_pid = Some(pid);
            health.detail = Some(format!(
                "its supervisor is gone but planet's init (pid {pid}) still runs: `gravity planet start` replaces it, `gravity planet teardown` removes it"
            ));
        }
        return health;
    }
    health.supervisor_pid = Some(status.supervisor_pid);
    health.init_pid = status.init_pid;
    health.state = match status.state {
        RunState::Starting => PlanetState::Starting,
        RunState::Stopping | RunState::Stopped => {
            health.detail = Some("stopping".into());
            PlanetState::Stopped
        }
        RunState::Failed => PlanetState::Failed,
        RunState::Running | RunState::Degraded => PlanetState::Running,
    };
    let Some(pid) = status.init_pid.filter(|p| super::sys::alive(*p)) else {
        return health;
    };
    health.system_state = inside::system_state(pid);
    let config = crate::config::PlanetConfig::load(state_dir).ok();
    let runs = config.as_ref().map_or(Runs::ALL, |c| Runs {
        control_plane: c.node.control_plane(),
        registry: c.node.runs_registry(),
    });
    health.units = units(pid, runs);
    let node = config.map(|c| c.node.name);
    let docker_started = health
        .units
        .iter()
        .any(|u| u.name == DOCKER_UNIT && u.active_state == "active");
    let node = node.as_deref().map(|n| (n, status.started_at_ms / 1000));
    health.endpoints = endpoints(pid, node, docker_started, runs);
    if health.state == PlanetState::Running
        && (health.system_state.as_deref() != Some("running")
            || health.units.iter().any(|u| u.required && !u.healthy)
            || health.endpoints.iter().any(|e| !e.healthy))
    {
        health.state = PlanetState::Degraded;
    }
    health
}

/// Waits until planet is healthy, or fails (at once when its supervisor stopped or failed).
pub fn wait_healthy(state_dir: &Path, timeout: Duration) -> Result<PlanetHealth, HealthError> {
    let started = Instant::now();
    // kubelet is not a required unit, but the node it registers is: one that cannot run at
    // all (containerd without its CRI, a bad argument) ends the wait with its words.
    let mut kubelet = super::restarts::Watch::new(NODE_UNIT);
    loop {
        let checked = Instant::now();
        let h = check(state_dir);
        if h.is_healthy() {
            return Ok(h);
        }
        if matches!(h.state, PlanetState::Failed | PlanetState::Stopped)
            && !super::service::is_running(state_dir)
        {
            return Err(HealthError::NotRunning { last: Box::new(h) });
        }
        let node_waits = h.endpoints.iter().any(not_ready_node);
        if let Some(pid) = h.init_pid.filter(|_| node_waits)
            && let Some(failing) = kubelet.check(pid)
        {
            return Err(HealthError::CrashLoop {
                waited: started.elapsed(),
                failing,
            });
        }
        if started.elapsed() >= timeout {
            let mut h = h;
            let since_s = planet_started_s(state_dir);
            for node in h.endpoints.iter_mut().filter(|e| not_ready_node(e)) {
                node.detail.push_str(&kubelet_says(state_dir, since_s));
            }
            return Err(HealthError::Timeout {
                waited: started.elapsed(),
                last: Box::new(h),
            });
        }
        std::thread::sleep(poll_pause(checked.elapsed()));
    }
}

/// The pause between two probes that took `probe` to run: at least 250 ms, and twice the probe's
/// own time, so that probing (kubectl processes) takes at most a third of a slow CPU.
fn poll_pause(probe: Duration) -> Duration {
    (probe * 2).max(Duration::from_millis(250))
}

/// Waits until kube-apiserver inside planet answers `/readyz`.
pub fn wait_apiserver(state_dir: &Path, timeout: Duration) -> Result<(), HealthError> {
    wait_inside(
        state_dir,
        timeout,
        CONTROL_PLANE_UNIT,
        apiserver_ready,
        |waited, last| HealthError::Apiserver { waited, last },
    )
}

/// Waits until this planet's Kubernetes node is Ready.
pub fn wait_node_ready(state_dir: &Path, timeout: Duration) -> Result<(), HealthError> {
    let node = crate::config::PlanetConfig::load(state_dir)
        .map(|c| c.node.name)
        .unwrap_or_default();
    wait_inside(
        state_dir,
        timeout,
        NODE_UNIT,
        |pid| node_ready(pid, &node, planet_started_s(state_dir)),
        |waited, last| HealthError::Node {
            waited,
            last: last + &kubelet_says(state_dir, planet_started_s(state_dir)),
        },
    )
}

/// Why a node does not become Ready, in its kubelet's words: its last errors since planet
/// started (`; its kubelet's last errors: ...`), or nothing.
fn kubelet_says(state_dir: &Path, since_s: u64) -> String {
    let errors = crate::journal::klog_errors(state_dir, NODE_UNIT, since_s);
    if errors.is_empty() {
        return String::new();
    }
    format!("; its kubelet's last errors: {}", errors.join(" | "))
}

/// The endpoint that is this planet's Kubernetes node, Ready.
const NODE_ENDPOINT: &str = "node";

fn not_ready_node(e: &EndpointHealth) -> bool {
    e.name == NODE_ENDPOINT && !e.healthy
}

/// When planet last started, in seconds since the Unix epoch.
fn planet_started_s(state_dir: &Path) -> u64 {
    Status::load(state_dir).map_or(0, |s| s.started_at_ms / 1000)
}

/// Waits until the cluster's DNS (CoreDNS) is ready.
pub fn wait_coredns(state_dir: &Path, timeout: Duration) -> Result<(), HealthError> {
    wait_inside(
        state_dir,
        timeout,
        // CoreDNS runs as pods: kubelet runs them.
        NODE_UNIT,
        |pid| {
            coredns_ready(pid)?
                .ok_or_else(|| std::io::Error::other("the cluster has no CoreDNS Deployment"))
        },
        |waited, last| HealthError::Dns { waited, last },
    )
}

/// Polls `probe` against the running planet until it succeeds; fails at once when planet
/// stops or `unit`, the daemon that serves what the probe asks, keeps exiting, and with
/// `timed_out` and the probe's last error after `timeout`.
fn wait_inside(
    state_dir: &Path,
    timeout: Duration,
    unit: &'static str,
    probe: impl Fn(i32) -> std::io::Result<String>,
    timed_out: impl FnOnce(Duration, String) -> HealthError,
) -> Result<(), HealthError> {
    let started = Instant::now();
    let mut restarts = super::restarts::Watch::new(unit);
    loop {
        let checked = Instant::now();
        // Only the init's pid: a whole check would run every kubectl probe each time.
        let running = Status::load(state_dir)
            .filter(|s| !matches!(s.state, RunState::Stopping | RunState::Stopped))
            .and_then(|s| s.init_pid)
            .filter(|pid| super::sys::alive(*pid));
        let Some(pid) = running else {
            return Err(HealthError::NotRunning {
                last: Box::new(check(state_dir)),
            });
        };
        let last = match probe(pid) {
            Ok(_) => return Ok(()),
            Err(e) => e.to_string(),
        };
        if let Some(failing) = restarts.check(pid) {
            return Err(HealthError::CrashLoop {
                waited: started.elapsed(),
                failing,
            });
        }
        if started.elapsed() >= timeout {
            return Err(timed_out(started.elapsed(), last));
        }
        std::thread::sleep(poll_pause(checked.elapsed()).max(Duration::from_millis(500)));
    }
}

/// One `systemctl show` for every unit.
fn units(pid: i32, runs: Runs) -> Vec<UnitHealth> {
    let mut args = vec![
        "show",
        "-p",
        "Id",
        "-p",
        "ActiveState",
        "-p",
        "SubState",
        "-p",
        "Result",
        "-p",
        "ConditionResult",
        "-p",
        "ConditionTimestampMonotonic",
    ];
    args.extend(UNITS.iter().map(|(n, _)| *n));
    let out = inside::query(pid, "/usr/bin/systemctl", &args, Duration::from_secs(5));
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    parse_units(&text, runs)
}

/// Parses `systemctl show` blocks into unit health, in [`UNITS`] order; on a node without
/// the control plane or the registry their units are not required.
pub fn parse_units(text: &str, runs: Runs) -> Vec<UnitHealth> {
    let blocks: Vec<std::collections::HashMap<&str, &str>> = text
        .split("\n\n")
        .map(|b| b.lines().filter_map(|l| l.split_once('=')).collect())
        .collect();
    UNITS
        .iter()
        .map(|(name, required)| {
            let required = *required
                && (runs.control_plane || *name != ETCD_UNIT)
                && (runs.registry || *name != REGISTRY_UNIT);
            let Some(b) = blocks.iter().find(|b| b.get("Id") == Some(name)) else {
                return UnitHealth {
                    name: name.to_string(),
                    active_state: "unknown".into(),
                    healthy: false,
                    required,
                    detail: "systemd inside planet did not answer".into(),
                };
            };
            let active = b.get("ActiveState").copied().unwrap_or("unknown");
            let sub = b.get("SubState").copied().unwrap_or("");
            let result = b.get("Result").copied().unwrap_or("");
            // A unit never started also says ConditionResult=no: only an evaluated condition
            // (a timestamp) means skipped.
            let evaluated = b.get("ConditionTimestampMonotonic") != Some(&"0");
            let skipped = b.get("ConditionResult") == Some(&"no") && evaluated;
            let (healthy, detail) = match active {
                "active" => (true, sub.to_string()),
                "inactive" if ON_DEMAND.contains(name) && matches!(result, "" | "success") => (
                    true,
                    "not started (starts on demand, through its socket)".into(),
                ),
                _ if skipped => (
                    !required,
                    "not in this image (condition failed)".to_string(),
                ),
                _ if !result.is_empty() && result != "success" => {
                    (false, format!("{sub}, result {result}"))
                }
                "inactive" if !evaluated => (
                    false,
                    "never started (nothing pulled it in: see the boot's first messages)".into(),
                ),
                _ => (false, sub.to_string()),
            };
            UnitHealth {
                name: name.to_string(),
                active_state: active.to_string(),
                healthy,
                required,
                detail,
            }
        })
        .collect()
}

/// dockerd's `/_ping` is asked only once it was started: a connection to its socket starts it.
/// `node`: the node's name and planet's start (its kubelet's reports before do not count).
fn endpoints(
    pid: i32,
    node: Option<(&str, u64)>,
    docker_started: bool,
    runs: Runs,
) -> Vec<EndpointHealth> {
    let control_plane = runs.control_plane;
    let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let docker_sock = inside::host_path(pid, "/run/docker.sock");
    let mut out = Vec::new();
    if control_plane {
        // etcd's metrics listener: plain HTTP on loopback, also where clients need TLS.
        out.push(endpoint("etcd", "http://127.0.0.1:2381/health", || {
            let (code, body) = http_get(
                TcpStream::connect_timeout(&local(2381), ENDPOINT_TIMEOUT)?,
                "/health",
            )?;
            if code == 200 && body.replace(' ', "").contains("\"health\":\"true\"") {
                Ok(body.trim().to_string())
            } else {
                Err(std::io::Error::other(format!(
                    "HTTP {code}: {}",
                    body.trim()
                )))
            }
        }));
    }
    out.push(endpoint(
        "dockerd",
        "unix:///run/docker.sock /_ping",
        || {
            if !docker_started {
                return Ok("not running (starts on demand)".to_string());
            }
            let (code, body) = http_get(UnixStream::connect(&docker_sock)?, "/_ping")?;
            if code == 200 && body.trim() == "OK" {
                Ok("OK".to_string())
            } else {
                Err(std::io::Error::other(format!(
                    "HTTP {code}: {}",
                    body.trim()
                )))
            }
        },
    ));
    if runs.registry {
        out.push(endpoint("registry", "http://127.0.0.1:5000/v2/", || {
            let (code, body) = http_get(
                TcpStream::connect_timeout(&local(5000), ENDPOINT_TIMEOUT)?,
                "/v2/",
            )?;
            if code == 200 {
                Ok(format!("HTTP {code}"))
            } else {
                Err(std::io::Error::other(format!(
                    "HTTP {code}: {}",
                    body.trim()
                )))
            }
        }));
    }
    if kubernetes(pid) {
        let apiserver = endpoint("kube-apiserver", "https://127.0.0.1:6443/readyz", || {
            apiserver_ready(pid)
        });
        // Each probe is a kubectl process: asking an apiserver that is not ready only adds
        // load where CPU is short (its first start on a slow machine).
        let apiserver_up = apiserver.healthy;
        out.push(apiserver);
        if let Some((node, since_s)) = node {
            out.push(endpoint(
                NODE_ENDPOINT,
                &format!("node/{node} Ready"),
                || {
                    if apiserver_up {
                        node_ready(pid, node, since_s)
                    } else {
                        Err(std::io::Error::other("the apiserver is not ready"))
                    }
                },
            ));
        }
        // Only once the install has applied it; a worker may not read Deployments.
        let coredns = if apiserver_up && control_plane {
            coredns_ready(pid)
        } else {
            Ok(None)
        };
        match coredns {
            Ok(None) => {}
            result => out.push(endpoint(
                "coredns",
                &format!("deployment/{COREDNS} -n {COREDNS_NAMESPACE}"),
                || result.and_then(|r| r.ok_or_else(|| std::io::Error::other("gone"))),
            )),
        }
    }
    out
}

/// Runs kubectl inside planet with the admin kubeconfig (TLS with the cluster's CA: planet's own
/// tools, no TLS stack in gravity for it): its stdout, or its last line of stderr as the error.
/// A worker has no admin kubeconfig: there kubectl asks as the node (kubelet's credentials).
pub fn kubectl(pid: i32, args: &[&str]) -> std::io::Result<String> {
    let pki = inside::host_path(pid, crate::paths::PKI_INSIDE);
    let user = if pki.join("admin.kubeconfig").exists() {
        "admin"
    } else {
        "kubelet"
    };
    let kubeconfig = format!(
        "--kubeconfig={}/{user}.kubeconfig",
        crate::paths::PKI_INSIDE
    );
    let mut all = vec![kubeconfig.as_str(), "--request-timeout=10s"];
    all.extend_from_slice(args);
    let out = inside::query(pid, "/usr/bin/kubectl", &all, KUBECTL_TIMEOUT)
        .ok_or_else(|| std::io::Error::other("kubectl inside planet did not answer"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(std::io::Error::other(
        stderr
            .lines()
            .last()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .unwrap_or("kubectl failed without a message")
            .to_string(),
    ))
}

/// Whether the Kubernetes node `node` is Ready, as its Ready condition says.
pub fn node_ready(pid: i32, node: &str, since_s: u64) -> std::io::Result<String> {
    let stdout = kubectl(
        pid,
        &[
            "get",
            "node",
            node,
            "-o",
            "jsonpath={range .status.conditions[?(@.type==\"Ready\")]}{.status} {.lastHeartbeatTime} {.reason}: {.message}{end}",
        ],
    )?;
    let mut words = stdout.splitn(3, ' ');
    let (ready, heartbeat, why) = (
        words.next().unwrap_or(""),
        words.next().unwrap_or(""),
        words.next().unwrap_or(""),
    );
    match ready {
        _ if stdout.is_empty() => Err(std::io::Error::other("not registered yet")),
        // What the node's kubelet said before planet (re)started is not about this one.
        "True" if durable::parse_utc(heartbeat).is_none_or(|t| t < since_s) => {
            Err(std::io::Error::other(format!(
                "its kubelet has not reported since planet started (last report {heartbeat})"
            )))
        }
        "True" => Ok(why.to_string()),
        _ => Err(std::io::Error::other(format!("not Ready: {ready} {why}"))),
    }
}

/// The cluster's DNS: CoreDNS's Deployment has all its replicas ready. `Ok(None)` where the
/// cluster has none (not applied yet by the install).
pub fn coredns_ready(pid: i32) -> std::io::Result<Option<String>> {
    let stdout = kubectl(
        pid,
        &[
            "-n",
            COREDNS_NAMESPACE,
            "get",
            "deployment",
            COREDNS,
            "--ignore-not-found",
            "-o",
            "jsonpath={.status.readyReplicas}/{.spec.replicas}",
        ],
    )?;
    if stdout.is_empty() {
        return Ok(None);
    }
    match stdout.split_once('/') {
        Some((ready, want)) if ready == want && !want.is_empty() => {
            Ok(Some(format!("{ready}/{want} replicas ready")))
        }
        Some((ready, want)) => Err(std::io::Error::other(format!(
            "{}/{want} replicas ready",
            if ready.is_empty() { "0" } else { ready }
        ))),
        None => Err(std::io::Error::other(format!(
            "unexpected answer: {stdout}"
        ))),
    }
}

/// Whether this planet runs Kubernetes (the cluster's PKI is mounted).
fn kubernetes(pid: i32) -> bool {
    inside::host_path(pid, crate::paths::PKI_INSIDE)
        .join("ca.crt")
        .exists()
}

/// kube-apiserver's `/readyz`.
pub fn apiserver_ready(pid: i32) -> std::io::Result<String> {
    match kubectl(pid, &["get", "--raw=/readyz"])? {
        ok if ok == "ok" => Ok(ok),
        other => Err(std::io::Error::other(format!("not ready: {other}"))),
    }
}

fn endpoint(
    name: &str,
    url: &str,
    probe: impl FnOnce() -> std::io::Result<String>,
) -> EndpointHealth {
    let (healthy, detail) = match probe() {
        Ok(d) => (true, d),
        Err(e) => (false, e.to_string()),
    };
    EndpointHealth {
        name: name.into(),
        url: url.into(),
        healthy,
        detail,
    }
}

/// A minimal HTTP/1.0 GET: the status code and the body.
trait Stream: Read + Write {
    fn set_timeouts(&self, t: Duration) -> std::io::Result<()>;
}
impl Stream for TcpStream {
    fn set_timeouts(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}
impl Stream for UnixStream {
    fn set_timeouts(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

fn http_get(mut s: impl Stream, path: &str) -> std::io::Result<(u16, String)> {
    s.set_timeouts(ENDPOINT_TIMEOUT)?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut buf = Vec::new();
    s.take(64 * 1024).read_to_end(&mut buf)?;
    parse_response(&String::from_utf8_lossy(&buf))
}

fn parse_response(text: &str) -> std::io::Result<(u16, String)> {
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((code, body.to_string()))
}

/// Text for terminals (`gravity planet status`, `gravity status`).
pub fn render(h: &PlanetHealth) -> String {
    let mut out = format!("planet:     {}", state_word(h.state));
    let mut facts = Vec::new();
    if let Some(v) = &h.image_version {
        facts.push(format!("image {v}"));
    }
    if let Some(p) = h.init_pid {
        facts.push(format!("init pid {p}"));
    }
    if let Some(s) = &h.system_state {
        facts.push(format!("systemd {s}"));
    }
    if !facts.is_empty() {
        out.push_str(&format!(" ({})", facts.join(", ")));
    }
    out.push('\n');
    if let Some(d) = &h.detail {
        out.push_str(&format!("            {d}\n"));
    }
    if let Some(t) = &h.timings
        && h.init_pid.is_some()
    {
        let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
        out.push_str(&format!(
            "            started: rootfs ready {}, systemd ready {}\n",
            ms(t.rootfs_ready_ms),
            ms(t.systemd_ready_ms)
        ));
    }
    let width = h
        .units
        .iter()
        .map(|u| u.name.len())
        .chain(h.endpoints.iter().map(|e| e.name.len()))
        .max()
        .unwrap_or(0);
    for u in &h.units {
        let mark = if u.healthy {
            "ok"
        } else if u.required {
            "FAILED"
        } else {
            "-"
        };
        out.push_str(&format!(
            "  {:<width$} {:<12} {:<7} {}\n",
            u.name, u.active_state, mark, u.detail
        ));
    }
    for e in &h.endpoints {
        out.push_str(&format!(
            "  {:<width$} {:<12} {:<7} {}\n",
            e.name,
            "endpoint",
            if e.healthy { "ok" } else { "FAILED" },
            if e.healthy {
                e.url.clone()
            } else {
                format!("{}: {}", e.url, e.detail)
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW: &str = "Id=planet-setup.service\nActiveState=active\nSubState=exited\nResult=success\nConditionResult=yes\n\n\
Id=planet-etcd.service\nActiveState=active\nSubState=running\nResult=success\nConditionResult=yes\n\n\
Id=planet-containerd.service\nActiveState=active\nSubState=running\nResult=success\nConditionResult=yes\n\n\
Id=planet-docker.socket\nActiveState=active\nSubState=listening\nResult=success\nConditionResult=yes\n\n\
Id=planet-docker.service\nActiveState=activating\nSubState=auto-restart\nResult=exit-code\nConditionResult=yes\n\n\
Id=planet-registry.service\nActiveState=active\nSubState=running\nResult=success\nConditionResult=yes\n\n\
Id=planet-kube-control-plane.service\nActiveState=activating\nSubState=auto-restart\nResult=exit-code\nConditionResult=yes\n\n\
Id=planet-kube-node.service\nActiveState=inactive\nSubState=dead\nResult=success\nConditionResult=no\nConditionTimestampMonotonic=5000\n\n\
Id=planet.target\nActiveState=active\nSubState=active\nResult=success\nConditionResult=yes\n";

    #[test]
    fn parses_units() {
        let units = parse_units(SHOW, Runs::ALL);
        assert_eq!(units.len(), UNITS.len());
        assert!(units[1].healthy);
        let docker = &units[4];
        assert!(!docker.healthy);
        assert_eq!(docker.detail, "auto-restart, result exit-code");
        let unit = |name: &str| units.iter().find(|u| u.name == name).unwrap();
        assert!(!unit("planet-kube-control-plane.service").healthy);
        let kubelet = unit("planet-kube-node.service");
        assert!(kubelet.healthy, "skipped optional unit is fine");
        assert!(kubelet.detail.contains("not in this image"));
        let missing = parse_units("", Runs::ALL);
        assert!(missing.iter().all(|u| !u.healthy));
        // Never started: not "skipped", whatever ConditionResult says.
        let never = parse_units(
            &SHOW.replace(
            "Id=planet.target\nActiveState=active\nSubState=active\nResult=success\nConditionResult=yes",
            "Id=planet.target\nActiveState=inactive\nSubState=dead\nResult=success\nConditionResult=no\nConditionTimestampMonotonic=0",
        ),
        Runs::ALL,
        );
        let target = never.iter().find(|u| u.name == "planet.target").unwrap();
        assert!(
            !target.healthy && target.detail.starts_with("never started"),
            "{target:?}"
        );
    }

    const WORKER: Runs = Runs {
        control_plane: false,
        registry: false,
    };

    #[test]
    fn a_worker_needs_no_control_plane_units() {
        let skipped = |unit: &str| {
            SHOW.replace(
                &format!("Id={unit}\nActiveState=active\nSubState=running\nResult=success\nConditionResult=yes"),
                &format!("Id={unit}\nActiveState=inactive\nSubState=dead\nResult=success\nConditionResult=no\nConditionTimestampMonotonic=7"),
            )
        };
        let show = skipped("planet-etcd.service");
        let show = show.replace(
            &SHOW[SHOW.find("Id=planet-registry").unwrap()..].split("\n\n").next().unwrap().to_string(),
            "Id=planet-registry.service\nActiveState=inactive\nSubState=dead\nResult=success\nConditionResult=no\nConditionTimestampMonotonic=7",
        );
        let find = |units: &[UnitHealth], name: &str| {
            units.iter().find(|u| u.name == name).unwrap().clone()
        };
        let worker = parse_units(&show, WORKER);
        for name in [ETCD_UNIT, REGISTRY_UNIT] {
            let u = find(&worker, name);
            assert!(u.healthy && !u.required, "{u:?}");
        }
        // The same skipped etcd on a control plane's node is a failure; a skipped registry
        // only on the first node.
        let first = parse_units(&show, Runs::ALL);
        assert!(!find(&first, ETCD_UNIT).healthy);
        assert!(!find(&first, REGISTRY_UNIT).healthy);
        let other = parse_units(
            &show,
            Runs {
                control_plane: true,
                registry: false,
            },
        );
        assert!(!find(&other, ETCD_UNIT).healthy);
        assert!(find(&other, REGISTRY_UNIT).healthy);
        // A worker still needs its own runtime.
        let down = parse_units(
            &show.replace(
                "Id=planet-containerd.service\nActiveState=active",
                "Id=planet-containerd.service\nActiveState=failed",
            ),
            WORKER,
        );
        assert!(!find(&down, "planet-containerd.service").healthy);
    }

    #[test]
    fn on_demand_units_are_healthy_until_they_fail() {
        let docker = |active: &str, sub: &str, result: &str| {
            let show = SHOW.replace(
                "Id=planet-docker.service\nActiveState=activating\nSubState=auto-restart\nResult=exit-code",
                &format!("Id=planet-docker.service\nActiveState={active}\nSubState={sub}\nResult={result}"),
            );
            parse_units(&show, Runs::ALL)
                .into_iter()
                .find(|u| u.name == DOCKER_UNIT)
                .unwrap()
        };
        let idle = docker("inactive", "dead", "success");
        assert!(idle.healthy, "{idle:?}");
        assert!(idle.detail.contains("on demand"), "{idle:?}");
        assert!(docker("active", "running", "success").healthy);
        assert!(!docker("failed", "failed", "exit-code").healthy);
        // Only units started by a socket: an inactive core daemon is down.
        let etcd = parse_units(
            &SHOW.replace(
                "Id=planet-etcd.service\nActiveState=active",
                "Id=planet-etcd.service\nActiveState=inactive",
            ),
            Runs::ALL,
        );
        assert!(!etcd[1].healthy, "{:?}", etcd[1]);
    }

    #[test]
    fn health_verdicts() {
        let mut h = PlanetHealth {
            state: PlanetState::Running,
            init_pid: Some(1),
            supervisor_pid: Some(2),
            image_version: Some("1".into()),
            system_state: Some("running".into()),
            units: parse_units(
                &SHOW.replace("ActiveState=activating", "ActiveState=active"),
                Runs::ALL,
            ),
            endpoints: vec![EndpointHealth {
                name: "etcd".into(),
                url: "http://127.0.0.1:2379/health".into(),
                healthy: true,
                detail: String::new(),
            }],
            detail: None,
            timings: None,
        };
        assert!(h.is_healthy(), "{}", h.problems());
        h.endpoints[0].healthy = false;
        h.endpoints[0].detail = "connection refused".into();
        assert!(!h.is_healthy());
        assert!(
            h.problems()
                .contains("etcd http://127.0.0.1:2379/health does not answer")
        );
        let text = render(&h);
        assert!(
            text.starts_with("planet:     running (image 1, init pid 1, systemd running)"),
            "{text}"
        );
        assert!(text.contains("FAILED"), "{text}");
    }

    #[test]
    fn parses_http_responses() {
        let (code, body) =
            parse_response("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nOK").unwrap();
        assert_eq!((code, body.as_str()), (200, "OK"));
        assert!(parse_response("garbage").is_err());
    }
}
