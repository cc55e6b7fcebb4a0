//! The plan: what an operation does, phase by phase, and how far it got.

use serde::{Deserialize, Serialize};

pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseState {
    Unstarted,
    InProgress,
    Completed,
    Failed,
    RolledBack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpState {
    InProgress,
    Completed,
    Failed,
    RollingBack,
    RolledBack,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseRecord {
    pub name: String,
    pub description: String,
    pub state: PhaseState,
    /// Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PhaseRecord {
    pub fn duration_ms(&self) -> Option<u64> {
        Some(self.finished_ms?.saturating_sub(self.started_ms?))
    }
}

/// The journal record, `<state>/operation/current.json`: a contract across versions (upgrades
/// read what older versions wrote), pinned by `tests/golden/journal.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub format: u32,
    pub id: String,
    /// `install`, ...
    pub kind: String,
    pub state: OpState,
    pub created_ms: u64,
    /// The operation's parameters (e.g. install flags), so `resume` needs none.
    pub params: serde_json::Value,
    pub phases: Vec<PhaseRecord>,
}

impl Plan {
    pub fn new(kind: &str, params: serde_json::Value, phases: &[(&str, &str)]) -> Plan {
        let created_ms = durable::now_ms();
        Plan {
            format: FORMAT,
            id: format!("{kind}-{created_ms}"),
            kind: kind.to_string(),
            state: OpState::InProgress,
            created_ms,
            params,
            phases: phases
                .iter()
                .map(|(name, description)| PhaseRecord {
                    name: (*name).to_string(),
                    description: (*description).to_string(),
                    state: PhaseState::Unstarted,
                    started_ms: None,
                    finished_ms: None,
                    attempts: 0,
                    error: None,
                })
                .collect(),
        }
    }

    pub fn phase(&self, name: &str) -> Option<&PhaseRecord> {
        self.phases.iter().find(|p| p.name == name)
    }

    pub fn phase_mut(&mut self, name: &str) -> Option<&mut PhaseRecord> {
        self.phases.iter_mut().find(|p| p.name == name)
    }

    /// The first phase that has not completed: where a resume starts.
    pub fn next_phase(&self) -> Option<&PhaseRecord> {
        self.phases
            .iter()
            .find(|p| p.state != PhaseState::Completed)
    }

    pub fn is_complete(&self) -> bool {
        self.phases.iter().all(|p| p.state == PhaseState::Completed)
    }
}
