//! A check's outcome as data: what was checked, what was found, what was needed, what to do.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    // Declaration order is the report's order: failures first.
    Fail,
    Warn,
    Pass,
    Skip,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        })
    }
}

/// One check's result. `id` is stable across versions so that people can name it in
/// `--ignore-preflight-errors` and in scripts that read the JSON report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub id: String,
    pub title: String,
    pub status: Status,
    /// What this host has, e.g. `2 CPUs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<String>,
    /// What the profile asks for, e.g. `at least 8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<String>,
    /// One line that says what to do; set whenever the status is not `pass`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Longer text: a script's output, the error behind a measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// How long the check took, for the ones that measure (rates, latencies, scripts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Set when `--ignore-preflight-errors` turned this failure into a warning.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignored: bool,
}

impl CheckResult {
    pub fn new(id: impl Into<String>, title: impl Into<String>, status: Status) -> Self {
        CheckResult {
            id: id.into(),
            title: title.into(),
            status,
            measured: None,
            required: None,
            fix: None,
            detail: None,
            duration_ms: None,
            ignored: false,
        }
    }

    pub fn pass(id: impl Into<String>, title: impl Into<String>) -> Self {
        Self::new(id, title, Status::Pass)
    }

    pub fn fail(id: impl Into<String>, title: impl Into<String>) -> Self {
        Self::new(id, title, Status::Fail)
    }

    pub fn warn(id: impl Into<String>, title: impl Into<String>) -> Self {
        Self::new(id, title, Status::Warn)
    }

    pub fn skip(id: impl Into<String>, title: impl Into<String>) -> Self {
        Self::new(id, title, Status::Skip)
    }

    pub fn measured(mut self, m: impl Into<String>) -> Self {
        self.measured = Some(m.into());
        self
    }

    pub fn required(mut self, r: impl Into<String>) -> Self {
        self.required = Some(r.into());
        self
    }

    pub fn fix(mut self, f: impl Into<String>) -> Self {
        self.fix = Some(f.into());
        self
    }

    pub fn detail(mut self, d: impl Into<String>) -> Self {
        let d = d.into();
        if !d.trim().is_empty() {
            self.detail = Some(d);
        }
        self
    }

    pub fn took(mut self, d: std::time::Duration) -> Self {
        self.duration_ms = Some(d.as_millis() as u64);
        self
    }

    /// Sets the status, e.g. after comparing a measurement with a requirement.
    pub fn with_status(mut self, status: Status) -> Self {
        self.status = status;
        self
    }

    /// The fix only applies when the check did not pass.
    pub fn fix_unless_pass(self, f: impl Into<String>) -> Self {
        if self.status == Status::Pass {
            self
        } else {
            self.fix(f)
        }
    }
}
