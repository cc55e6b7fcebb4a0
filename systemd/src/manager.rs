//! Controlling units: `systemctl` on real hosts, a recorder in tests.

use std::path::Path;
use std::process::Command;

use crate::units::{self, UnitError};
#[cfg(any(test, feature = "test-util"))]
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
#[error("`systemctl {args}` failed: {detail}")]
pub struct ManagerError {
    pub args: String,
    pub detail: String,
}

pub trait ServiceManager {
    fn daemon_reload(&self) -> Result<(), ManagerError>;
    fn enable(&self, unit: &str) -> Result<(), ManagerError>;
    fn disable(&self, unit: &str) -> Result<(), ManagerError>;
    fn start(&self, unit: &str) -> Result<(), ManagerError>;
    fn stop(&self, unit: &str) -> Result<(), ManagerError>;
    fn is_active(&self, unit: &str) -> bool;
    /// Writes (or replaces) the unit file `name`; returns whether it changed.
    fn install_unit(&self, name: &str, content: &str) -> Result<bool, UnitError>;
    /// Removes the unit file `name`; returns whether there was one.
    fn remove_unit(&self, name: &str) -> Result<bool, UnitError>;
    fn has_unit(&self, name: &str) -> bool;
}

/// The host's systemd, through `systemctl`.
pub struct Systemctl;

impl Systemctl {
    fn run(args: &[&str]) -> Result<(), ManagerError> {
        let joined = args.join(" ");
        let out = Command::new("systemctl")
            .args(args)
            .output()
            .map_err(|e| ManagerError {
                args: joined.clone(),
                detail: format!("cannot run systemctl: {e}"),
            })?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(ManagerError {
            args: joined,
            detail: if stderr.is_empty() {
                out.status.to_string()
            } else {
                stderr
            },
        })
    }
}

impl ServiceManager for Systemctl {
    fn daemon_reload(&self) -> Result<(), ManagerError> {
        Self::run(&["daemon-reload"])
    }
    fn enable(&self, unit: &str) -> Result<(), ManagerError> {
        Self::run(&["enable", "--quiet", unit])
    }
    fn disable(&self, unit: &str) -> Result<(), ManagerError> {
        Self::run(&["disable", "--quiet", unit])
    }
    fn start(&self, unit: &str) -> Result<(), ManagerError> {
        Self::run(&["start", unit])
    }
    fn stop(&self, unit: &str) -> Result<(), ManagerError> {
        Self::run(&["stop", unit])
    }
    fn is_active(&self, unit: &str) -> bool {
        Self::run(&["is-active", "--quiet", unit]).is_ok()
    }
    fn install_unit(&self, name: &str, content: &str) -> Result<bool, UnitError> {
        units::install(Path::new("/"), name, content)
    }
    fn remove_unit(&self, name: &str) -> Result<bool, UnitError> {
        units::remove(Path::new("/"), name)
    }
    fn has_unit(&self, name: &str) -> bool {
        Path::new("/").join(units::UNIT_DIR).join(name).exists()
    }
}

/// Records calls instead of making them; `calls` may be shared with other recorders.
#[cfg(any(test, feature = "test-util"))]
#[derive(Default)]
pub struct Recorder {
    pub calls: Arc<Mutex<Vec<String>>>,
    pub active: Mutex<Vec<String>>,
    pub units: Mutex<Vec<(String, String)>>,
}

#[cfg(any(test, feature = "test-util"))]
impl Recorder {
    /// Records into `log` instead of a log of its own.
    pub fn sharing(log: Arc<Mutex<Vec<String>>>) -> Self {
        Recorder {
            calls: log,
            ..Default::default()
        }
    }

    fn record(&self, call: String) {
        self.calls.lock().expect("recorder lock").push(call);
    }
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("recorder lock").clone()
    }
}

#[cfg(any(test, feature = "test-util"))]
impl ServiceManager for Recorder {
    fn daemon_reload(&self) -> Result<(), ManagerError> {
        self.record("daemon-reload".into());
        Ok(())
    }
    fn enable(&self, unit: &str) -> Result<(), ManagerError> {
        self.record(format!("enable {unit}"));
        Ok(())
    }
    fn disable(&self, unit: &str) -> Result<(), ManagerError> {
        self.record(format!("disable {unit}"));
        Ok(())
    }
    fn start(&self, unit: &str) -> Result<(), ManagerError> {
        self.record(format!("start {unit}"));
        self.active
            .lock()
            .expect("recorder lock")
            .push(unit.to_string());
        Ok(())
    }
    fn stop(&self, unit: &str) -> Result<(), ManagerError> {
        self.record(format!("stop {unit}"));
        self.active
            .lock()
            .expect("recorder lock")
            .retain(|u| u != unit);
        Ok(())
    }
    fn is_active(&self, unit: &str) -> bool {
        self.active
            .lock()
            .expect("recorder lock")
            .iter()
            .any(|u| u == unit)
    }
    fn install_unit(&self, name: &str, content: &str) -> Result<bool, UnitError> {
        self.record(format!("install-unit {name}"));
        let mut units = self.units.lock().expect("recorder lock");
        let changed = !units.iter().any(|(n, c)| n == name && c == content);
        units.retain(|(n, _)| n != name);
        units.push((name.to_string(), content.to_string()));
        Ok(changed)
    }
    fn remove_unit(&self, name: &str) -> Result<bool, UnitError> {
        self.record(format!("remove-unit {name}"));
        let mut units = self.units.lock().expect("recorder lock");
        let had = units.iter().any(|(n, _)| n == name);
        units.retain(|(n, _)| n != name);
        Ok(had)
    }
    fn has_unit(&self, name: &str) -> bool {
        self.units
            .lock()
            .expect("recorder lock")
            .iter()
            .any(|(n, _)| n == name)
    }
}
