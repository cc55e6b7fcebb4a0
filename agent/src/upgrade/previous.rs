//! The node's configuration as it was before an upgrade, kept in `<state>/upgrade/previous/`
//! so that a rollback puts it back: planet's configuration, the gravity the host unit runs, the
//! records, hooks, resources and Helm values. Saved once per upgrade (a marker names the
//! operation), before the upgrade changes any of it; kept until the next upgrade.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::install::phases::configure::{copy_tree, sync_dir};
use crate::install::state;
use crate::state_dir::StateDir;

/// planet's configuration and the gravity the host unit runs: what a restart switches.
pub const PLANET: &[&str] = &["planet/config.json", "bin/gravity"];
/// The record of the volumes' directories the install (and upgrades) created.
pub const VOLUMES: &str = "volumes.json";
/// The rest, relative to the state directory.
pub const APPLICATION: &[&str] = &[
    "cluster.json",
    "checks/install.json",
    VOLUMES,
    "hooks",
    "resources",
    "helm",
];
/// Names the operation the copy was made for; written last.
const MARKER: &str = ".operation";

/// Copies what the upgrade will change, unless this operation has done so already (a resume
/// must not take the half-upgraded state for the previous one).
pub fn save(layout: &StateDir, operation: &str) -> anyhow::Result<()> {
    let dir = layout.upgrade_previous();
    if saved_by(&dir).as_deref() == Some(operation) {
        return Ok(());
    }
    state::remove_dir(&dir)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for item in PLANET.iter().chain(APPLICATION) {
        let (from, to) = (layout.root().join(item), dir.join(item));
        copy(&from, &to)?;
    }
    sync_dir(&dir)?;
    durable::write_atomic(&dir.join(MARKER), operation.as_bytes())
        .with_context(|| format!("cannot write {}", dir.join(MARKER).display()))
}

/// Puts `items` back as they were when [`save`] ran for `operation`; one that did not exist
/// then is removed. Refuses when the copy is of another operation, or missing.
pub fn restore(layout: &StateDir, operation: &str, items: &[&str]) -> anyhow::Result<()> {
    let dir = layout.upgrade_previous();
    match saved_by(&dir) {
        Some(op) if op == operation => {}
        Some(op) => bail!(
            "{} holds the configuration from before the upgrade {op}, not {operation}: it cannot be put back from there",
            dir.display()
        ),
        // Nothing was changed before the copy was complete.
        None => return Ok(()),
    }
    for item in items {
        let (from, to) = (dir.join(item), layout.root().join(item));
        if from.is_dir() {
            state::remove_dir(&to)?;
            copy_tree(&from, &to)?;
        } else if from.exists() {
            durable::copy_atomic(&from, &to)
                .with_context(|| format!("cannot put back {}", to.display()))?;
        } else if to.is_dir() {
            state::remove_dir(&to)?;
        } else {
            state::remove_file(&to)?;
        }
    }
    Ok(())
}

/// The previous Helm values files (the install's `--values`, as kept), in order.
pub fn values_files(layout: &StateDir) -> anyhow::Result<Vec<PathBuf>> {
    crate::install::values::kept(&layout.upgrade_previous().join("helm/inputs"))
}

fn saved_by(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(MARKER)).ok()
}

fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    if from.is_dir() {
        copy_tree(from, to)
    } else if from.exists() {
        durable::copy_atomic(from, to).with_context(|| format!("cannot copy {}", from.display()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restores_what_was_there_and_removes_what_was_not() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = StateDir::new(tmp.path());
        let root = tmp.path();
        for (path, text) in [
            ("planet/config.json", "old config"),
            ("hooks/install.yaml", "old install hook"),
            ("cluster.json", "old record"),
        ] {
            std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            std::fs::write(root.join(path), text).unwrap();
        }
        save(&layout, "upgrade-1").unwrap();
        // The upgrade changes them, then is resumed: the copy stays the one from before.
        std::fs::write(root.join("planet/config.json"), "new config").unwrap();
        std::fs::write(root.join("hooks/update.yaml"), "new update hook").unwrap();
        std::fs::create_dir_all(root.join("helm")).unwrap();
        std::fs::write(root.join("helm/values.yaml"), "new: values").unwrap();
        save(&layout, "upgrade-1").unwrap();

        restore(&layout, "upgrade-1", PLANET).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("planet/config.json")).unwrap(),
            "old config"
        );
        assert!(
            root.join("hooks/update.yaml").exists(),
            "only the items asked for"
        );
        restore(&layout, "upgrade-1", APPLICATION).unwrap();
        assert!(!root.join("hooks/update.yaml").exists());
        assert!(root.join("hooks/install.yaml").exists());
        assert!(!root.join("helm").exists(), "there were no values before");

        let other = restore(&layout, "upgrade-2", APPLICATION).unwrap_err();
        assert!(other.to_string().contains("upgrade-1"), "{other}");
    }
}
