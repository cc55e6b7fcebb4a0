//! `<state>/planet/status.json`: what the supervisor says about planet, for `start` (waiting
//! for running), `status`, and the cleanup of a crashed run (which cgroup it used).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::paths::Paths;
use super::write_atomic;
use crate::host::cgroups::CgroupPlan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Preparing the rootfs, or planet's systemd is booting.
    Starting,
    /// planet's systemd reported `running`.
    Running,
    /// planet's systemd finished booting with failed units.
    Degraded,
    Stopping,
    Stopped,
    /// The supervisor could not start planet, or planet died on its own.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitInfo {
    /// The supervisor's exit code.
    pub code: u8,
    pub reason: String,
}

/// Milestones of one run, in milliseconds since the supervisor started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timings {
    /// Mounts done and the container created (its init waits to exec systemd).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_ready_ms: Option<u64>,
    /// planet's systemd reported the end of its boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_ready_ms: Option<u64>,
    /// From the stop request to everything torn down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub state: RunState,
    pub supervisor_pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_pid: Option<i32>,
    pub image_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<CgroupPlan>,
    /// `systemctl is-system-running` inside planet when it finished booting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_state: Option<String>,
    pub started_at_ms: u64,
    pub updated_at_ms: u64,
    #[serde(default)]
    pub timings: Timings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Status {
    /// The pid of planet's init, where planet runs now (recorded, and that process alive).
    pub fn running_init_pid(state_dir: &Path) -> Option<i32> {
        Status::load(state_dir)?
            .init_pid
            .filter(|pid| crate::sys::alive(*pid))
    }

    pub fn load(state_dir: &Path) -> Option<Status> {
        let bytes = std::fs::read(Paths::new(state_dir).status()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn save(&mut self, state_dir: &Path) {
        self.updated_at_ms = super::sys::now_ms();
        let path = Paths::new(state_dir).status();
        let json = serde_json::to_vec_pretty(self).expect("a status serialises");
        if let Err(e) = write_atomic(&path, &json) {
            tracing::warn!(error = %e, "cannot write {}", path.display());
        }
    }
}
