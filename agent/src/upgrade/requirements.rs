//! Which of the new version's preflight checks may fail an upgrade: only those whose
//! requirement differs from the installed version's. The installed profile's checks run too,
//! and a check they share (same id, same requirement) fails nothing: a failure there is the
//! running cluster's own doing (it holds the ports it asked for) or a measurement of a busy
//! host. The first node judges its own checks so, and each joined node its own, before the
//! upgrade changes anything.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cluster_image::manifest::{Manifest, NodeProfile};

use crate::effects::NodeChecks;

/// (id, requirement) of each check.
pub type Requirements = BTreeSet<(String, String)>;

/// One node's checks of the new version.
pub struct NodeCheck<'a> {
    pub checks: &'a dyn NodeChecks,
    pub manifest: &'a Manifest,
    pub profile: &'a NodeProfile,
    /// Where the new version's check scripts run.
    pub scripts_dir: &'a Path,
    pub opts: &'a preflight::Options,
    pub ignore: &'a [String],
    /// The node's profile (the installed manifest's is looked up by it).
    pub role: &'a str,
    /// Where the installed manifest may be: its unpacked image, the copy the install kept.
    pub installed_dirs: Vec<PathBuf>,
    /// The installed version's saved report, for when no installed manifest is found.
    pub installed_report: PathBuf,
    /// Where the new version's report is written.
    pub report: PathBuf,
}

/// What the new version's checks mean for the upgrade.
#[derive(Debug, Default)]
pub struct Verdict {
    /// A line per check that did not pass.
    pub said: Vec<String>,
    /// The checks that fail the upgrade: new requirements this host does not meet.
    pub failed: Vec<String>,
}

impl NodeCheck<'_> {
    /// Runs the new version's checks (and the installed version's), writes the new version's
    /// report and judges it.
    pub fn run(&self) -> anyhow::Result<Verdict> {
        let mut report = self
            .checks
            .run(self.manifest, self.profile, self.opts, self.scripts_dir);
        report.apply_ignores(&preflight::IgnoreList::from_entries(self.ignore));
        let installed = match installed_manifest(&self.installed_dirs) {
            Some((manifest, dir)) => {
                let profile = manifest.profile(Some(self.role)).with_context(|| {
                    format!("the installed manifest has no profile {}", self.role)
                })?;
                of(&self.checks.run(&manifest, &profile, self.opts, &dir))
            }
            // Without the installed manifest: what the install's report checked.
            None => saved(&self.installed_report),
        };
        let value: serde_json::Value = serde_json::from_str(&report.to_json())?;
        crate::install::state::write_json(&self.report, &value)?;
        Ok(judge(&report, &installed))
    }
}

impl Verdict {
    /// An error naming the failed checks, if any.
    pub fn result(&self) -> anyhow::Result<()> {
        if self.failed.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "the new version's requirements that differ from the installed ones fail on this host ({}): fix them, or pass --ignore-preflight-errors={}",
            self.failed.join(", "),
            self.failed.join(",")
        )
    }
}

/// Judges `report` against the `installed` version's requirements.
pub fn judge(report: &preflight::Report, installed: &Requirements) -> Verdict {
    let mut verdict = Verdict::default();
    for c in &report.checks {
        if c.status == preflight::Status::Pass {
            continue;
        }
        let required = c.required.clone().unwrap_or_default();
        // What the installed version asked for already is no difference: a measurement (a
        // disk's latency, busy now) may fail once and pass the next time.
        if installed.contains(&(c.id.clone(), required.clone())) {
            if c.status == preflight::Status::Fail {
                // Not said as FAIL: it fails nothing (a port the running planet holds).
                verdict.said.push(format!(
                    "{}: {} ({required}) is not met here, as the installed version asks the same: it does not fail the upgrade",
                    c.id, c.title
                ));
            }
            continue;
        }
        let required = if required.is_empty() {
            "new".to_string()
        } else {
            required
        };
        verdict
            .said
            .push(format!("{} {}: {} ({required})", c.status, c.id, c.title));
        if c.status == preflight::Status::Fail {
            verdict.failed.push(c.id.clone());
        }
    }
    verdict
}

/// (id, requirement) of every check in `report`.
pub fn of(report: &preflight::Report) -> Requirements {
    report
        .checks
        .iter()
        .map(|c| (c.id.clone(), c.required.clone().unwrap_or_default()))
        .collect()
}

/// (id, requirement) of every check in a saved report; none where it cannot be read.
pub fn saved(report: &Path) -> Requirements {
    let Ok(bytes) = std::fs::read(report) else {
        return Requirements::new();
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    value["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c["id"].as_str()?.to_string(),
                c["required"].as_str().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// The manifest in the first of `dirs` that holds a readable one, and that directory (where
/// its check scripts run).
pub fn installed_manifest(dirs: &[PathBuf]) -> Option<(Manifest, PathBuf)> {
    dirs.iter().find_map(|dir| {
        let manifest =
            cluster_image::manifest::load_resolved(&dir.join(cluster_image::layout::MANIFEST))
                .ok()?;
        Some((manifest, dir.clone()))
    })
}
