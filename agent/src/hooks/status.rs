//! The status hook's last answer, kept at `<state>/hooks/status.json` for `gravity status`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Ran;
use crate::effects::Effects;
use crate::state_dir::StateDir;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    /// When it was asked (ms since the epoch).
    pub at_ms: u64,
    /// Whether the status hook's Job succeeded.
    pub ok: bool,
    /// Why not: the hook's failure with its last log lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AppStatus {
    pub fn render(&self) -> String {
        match &self.error {
            None => "application: ok (its status hook succeeded)".into(),
            Some(e) => format!("application: NOT ok: {e}"),
        }
    }
}

fn path(layout: &StateDir) -> PathBuf {
    layout.hooks().join("status.json")
}

/// Runs the status hook and records its answer; `None` when the application has none. One run
/// at a time (`gravity status` and the supervisor's timer would replace each other's Job).
pub fn run(effects: &Effects, layout: &StateDir) -> anyhow::Result<Option<AppStatus>> {
    let dir = layout.hooks();
    if !dir.is_dir() {
        return Ok(None);
    }
    let lock = std::fs::File::create(dir.join(".status.lock"))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| std::io::Error::from(e))?;
    let error = match super::run_now(
        effects,
        layout,
        "status",
        super::STATUS_TIMEOUT,
        &mut |_| {},
    ) {
        Ok(Ran::NotDefined) => return Ok(None),
        Ok(Ran::Done) => None,
        Err(e) => Some(format!("{e:#}")),
    };
    let status = AppStatus {
        at_ms: durable::now_ms(),
        ok: error.is_none(),
        error,
    };
    // Not into a state directory an uninstall removed meanwhile.
    if dir.is_dir() {
        durable::write_atomic(&path(layout), &serde_json::to_vec_pretty(&status)?)?;
    }
    Ok(Some(status))
}
