//! What an upgrade was asked to do, and what the node ran before it. Journaled with the plan,
//! so a resume or a rollback needs no flags.

use serde::{Deserialize, Serialize};

use crate::install::InstallParams;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeParams {
    /// The node as it runs before the upgrade: what a rollback returns to.
    pub from: Installed,
    /// The node as the upgrade leaves it: the install's parameters over the new image (and the
    /// upgrade's values, where it was given any).
    pub node: InstallParams,
    /// The new image's cluster version.
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Installed {
    pub params: InstallParams,
    /// The cluster's version (`metadata.resourceVersion`).
    pub version: String,
    /// The planet image it runs.
    pub planet_version: String,
}

/// Whether the upgrade keeps the installed Helm values: it was given no `--values`, and its
/// `--set` are the installed ones (the command copies them when it was given none).
pub fn keeps_installed_values(node: &InstallParams, from: &InstallParams) -> bool {
    node.values.is_empty() && node.set == from.set
}
