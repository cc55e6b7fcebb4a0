//! Controlling units: `systemctl` on real hosts, a recorder in tests.

use std::process::Command;
use std::sync::Mutex;

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
}

/// Records calls instead of making them.
#[derive(Default)]
pub struct Recorder {
    pub calls: Mutex<Vec<String>>,
    pub active: Mutex<Vec<String>>,
}

impl Recorder {
    fn record(&self, call: String) {
        self.calls.lock().expect("recorder lock").push(call);
    }
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("recorder lock").clone()
    }
}

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
}
