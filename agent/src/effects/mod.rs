//! The host effects of an operation, chosen once by the command that runs it and carried in
//! the operation's context: phases never pick the real host themselves. Tests run whole plans
//! over the recording fakes of [`fake`] (compiled for tests only).

mod checks;
#[cfg(test)]
pub mod fake;
mod images;
mod planet;

pub use checks::{HostChecks, NodeChecks};
pub use images::{ImagePush, RegistryPush};
pub use planet::{HostPlanet, PlanetControl};

use crate::host::user::{Accounts, SystemAccounts};
use ::planet::host::fs::{HostFs, RealFs};
use preflight::HostChanger;
use systemd::manager::{ServiceManager, Systemctl};

/// Everything an operation may change or measure outside its state directory.
pub struct Effects {
    pub accounts: Box<dyn Accounts>,
    /// Volumes and links outside the state directory.
    pub fs: Box<dyn HostFs>,
    /// The host's systemd where it is PID 1; `None`: gravity supervises planet itself.
    pub services: Option<Box<dyn ServiceManager>>,
    pub kernel: Kernel,
    pub checks: Box<dyn NodeChecks>,
    pub planet: Box<dyn PlanetControl>,
    pub images: Box<dyn ImagePush>,
    /// The application's hooks, as Jobs in planet's Kubernetes.
    pub hooks: Box<dyn crate::hooks::HookRunner>,
    /// The join agent's host service.
    pub agent: Box<dyn crate::join::AgentService>,
}

/// Kernel settings: read through `host`, changed through `changer`.
pub struct Kernel {
    pub host: preflight::Host,
    pub changer: Box<dyn HostChanger>,
}

impl Effects {
    /// The real host.
    pub fn host() -> Effects {
        let host = preflight::Host::real();
        Effects {
            accounts: Box::new(SystemAccounts::host()),
            fs: Box::new(RealFs::host()),
            services: systemd::is_pid1().then(|| Box::new(Systemctl) as Box<dyn ServiceManager>),
            kernel: Kernel {
                host: host.clone(),
                changer: Box::new(preflight::RealChanger::new(host)),
            },
            checks: Box::new(HostChecks),
            planet: Box::new(HostPlanet),
            images: Box::new(RegistryPush),
            hooks: Box::new(crate::hooks::KubeHooks),
            agent: Box::new(crate::join::HostAgentService::host()),
        }
    }
}
