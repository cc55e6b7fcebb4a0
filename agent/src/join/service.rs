//! Keeping the join agent running on the first node: `gravity-agent.service` where systemd is
//! PID 1, gravity's own daemon elsewhere (the one that keeps planet running, in a second
//! instance: `gravity agent daemon`, pid in `<state>/agent/daemon.pid`, output in
//! `<state>/logs/agent.log`).

use std::ffi::OsString;
use std::time::{Duration, Instant};

use anyhow::Context;
use systemd::manager::{ServiceManager, Systemctl};
use systemd::units::{AGENT_UNIT, AgentUnit};

use crate::state_dir::StateDir;

/// How long the agent may take to answer after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

pub trait AgentService {
    /// Starts the agent (or restarts it, to run a new gravity) and waits until it answers.
    fn start(&self, layout: &StateDir, unit: &AgentUnit) -> anyhow::Result<()>;
    /// Stops the agent and removes its unit; nothing running is fine.
    fn remove(&self, layout: &StateDir) -> anyhow::Result<()>;
}

/// The agent on this host.
pub struct HostAgentService {
    systemd: bool,
}

impl HostAgentService {
    pub fn host() -> HostAgentService {
        HostAgentService {
            systemd: systemd::is_pid1(),
        }
    }
}

impl AgentService for HostAgentService {
    fn start(&self, layout: &StateDir, unit: &AgentUnit) -> anyhow::Result<()> {
        if self.systemd {
            Systemctl.install_unit(AGENT_UNIT, &unit.render())?;
            Systemctl.daemon_reload()?;
            Systemctl.enable(AGENT_UNIT)?;
            // A restart: an upgrade's new gravity must be the one that runs.
            let _ = Systemctl.stop(AGENT_UNIT);
            Systemctl.start(AGENT_UNIT)?;
        } else {
            stop_daemon(layout)?;
            let args: Vec<OsString> = vec![
                "agent".into(),
                "daemon".into(),
                "--state-dir".into(),
                layout.root().into(),
            ];
            planet::service::spawn_detached(&unit.gravity, &args, &layout.agent_log(), "info")?;
        }
        // Only the first node's agent answers; a joined node's asks, and on a worker proxies
        // to the apiservers: planet's kubelet starts next.
        if !layout.agent_cert().exists() {
            if layout.apiservers().exists() {
                wait_proxy(layout, READY_TIMEOUT)?;
            }
            return Ok(());
        }
        wait_ready(layout, READY_TIMEOUT)
    }

    fn remove(&self, layout: &StateDir) -> anyhow::Result<()> {
        if self.systemd && Systemctl.has_unit(AGENT_UNIT) {
            let _ = Systemctl.stop(AGENT_UNIT);
            let _ = Systemctl.disable(AGENT_UNIT);
            Systemctl.remove_unit(AGENT_UNIT)?;
            Systemctl.daemon_reload()?;
        }
        stop_daemon(layout)
    }
}

/// Whether this node's agent runs (its unit active, or gravity's daemon alive).
pub fn runs(layout: &StateDir) -> bool {
    if systemd::is_pid1() {
        Systemctl.is_active(AGENT_UNIT)
    } else {
        planet::service::running_pid(&layout.agent_pid()).is_some()
    }
}

fn stop_daemon(layout: &StateDir) -> anyhow::Result<()> {
    let pid_file = layout.agent_pid();
    let Some(pid) = planet::service::running_pid(&pid_file) else {
        return Ok(());
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
    let started = Instant::now();
    while planet::service::running_pid(&pid_file).is_some() {
        if started.elapsed() > Duration::from_secs(10) {
            anyhow::bail!(
                "gravity's agent daemon (pid {pid}) did not stop within 10 s: see {}",
                layout.agent_log().display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Waits until a worker's agent takes connections for the apiservers.
fn wait_proxy(layout: &StateDir, timeout: Duration) -> anyhow::Result<()> {
    let addr = std::net::SocketAddr::from(crate::node::kubernetes::APISERVER_PROXY);
    let started = Instant::now();
    while let Err(e) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        if started.elapsed() > timeout {
            anyhow::bail!(
                "the node's agent does not take connections for the apiservers at {addr} ({e}): see {}",
                layout.agent_log().display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Waits until the agent answers a hello over TLS with the cluster's CA.
pub fn wait_ready(layout: &StateDir, timeout: Duration) -> anyhow::Result<()> {
    let hash = super::command::ca_hash(layout)?;
    let client = rpc::agent::Client::new(&format!("127.0.0.1:{}", rpc::agent::PORT), &hash, None)?;
    let started = Instant::now();
    loop {
        match client.hello() {
            Ok(_) => return Ok(()),
            Err(e) if started.elapsed() > timeout => {
                return Err(e).with_context(|| {
                    format!(
                        "the join agent did not answer within {timeout:?}: see {}",
                        layout.agent_log().display()
                    )
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
