//! `gravity gc`: what upgrades leave on a node for a rollback that can no longer happen once
//! they finished: planet images (with their writable layers) other than the running one,
//! cluster images unpacked or fetched for other versions, and the configuration saved before
//! the last upgrade. Data is never touched (etcd's snapshots included).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use operation::{Journal, OpState};

use crate::install::state::{self, ClusterRecord};
use crate::state_dir::StateDir;

/// Something gc removes (or would), and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Garbage {
    pub what: String,
    pub path: PathBuf,
    pub bytes: u64,
}

/// What is no longer needed on this node. Refused while an operation is unfinished: its
/// rollback may need any of it.
pub fn find(layout: &StateDir) -> anyhow::Result<Vec<Garbage>> {
    for journal in [layout.journal(), super::node::journal(layout)] {
        if let Some(plan) = journal.load()?
            && !matches!(plan.state, OpState::Completed | OpState::RolledBack)
        {
            bail!(
                "the {} in {} is not finished (it is {}): continue it or roll it back first, its rollback may need what gc would remove",
                plan.kind,
                layout.root().display(),
                format!("{:?}", plan.state).to_lowercase()
            );
        }
    }
    let record = ClusterRecord::load(layout)?
        .with_context(|| format!("no cluster is installed in {}", layout.root().display()))?;
    let running = planet::artifact::imported(layout.root())?
        .context("no planet image is imported")?
        .version;
    let planet = layout.planet();
    let mut garbage = Vec::new();
    for (what, dir) in [
        ("planet image", planet.images()),
        ("planet's writable layer of", planet.overlay("")),
    ] {
        for (name, path) in entries(&dir)? {
            if name != running {
                garbage.push(Garbage {
                    what: format!("{what} {name}"),
                    path: path.clone(),
                    bytes: size(&path),
                });
            }
        }
    }
    let images = layout.unpacked_image("");
    for (name, path) in entries(&images)? {
        if path != record.image_dir {
            garbage.push(Garbage {
                what: format!("cluster image {name}"),
                bytes: size(&path),
                path,
            });
        }
    }
    let previous = layout.upgrade_previous();
    if previous.exists() {
        garbage.push(Garbage {
            what: "the configuration from before the last upgrade".into(),
            bytes: size(&previous),
            path: previous,
        });
    }
    Ok(garbage)
}

/// Removes what [`find`] found, holding the operations' locks so none starts meanwhile.
pub fn remove(layout: &StateDir, garbage: &[Garbage]) -> anyhow::Result<()> {
    let _locks = (
        layout.journal().lock()?,
        Journal::lock(&super::node::journal(layout))?,
    );
    for g in garbage {
        state::remove_dir(&g.path)
            .with_context(|| format!("cannot remove {} ({})", g.what, g.path.display()))?;
    }
    Ok(())
}

/// The directories in `dir` by name (none where it does not exist).
fn entries(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in listing {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            found.push((
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            ));
        }
    }
    found.sort();
    Ok(found)
}

/// The bytes of the files under `path` (links not followed).
fn size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|l| l.flatten().map(|e| size(&e.path())).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_the_running_version_does_not_need_and_refuses_during_an_operation() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = StateDir::new(tmp.path());
        let root = tmp.path();
        let image_dir = layout.unpacked_image("example-1.1.0");
        for dir in [
            image_dir.clone(),
            layout.unpacked_image("example-1.0.0"),
            layout.planet().images().join("p-1.0.0"),
            layout.planet().overlay("p-1.0.0"),
            layout.planet().overlay("p-1.1.0"),
            layout.upgrade_previous(),
            root.join("planet/data/etcd/snapshots"),
        ] {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("f"), "12345").unwrap();
        }
        let record = serde_json::json!({
            "format": 1, "name": "example", "version": "1.1.0", "installedMs": 1,
            "nodeName": "n", "advertiseIp": "10.0.0.1", "role": "node", "flavor": "one",
            "serviceUid": 1000, "serviceGid": 1000, "supervisor": "gravity",
            "imageDir": image_dir,
        });
        std::fs::write(layout.cluster_record(), record.to_string()).unwrap();
        planet_image(root, "p-1.1.0");
        let found = find(&layout).unwrap();
        let what: Vec<&str> = found.iter().map(|g| g.what.as_str()).collect();
        assert_eq!(
            what,
            [
                "planet image p-1.0.0",
                "planet's writable layer of p-1.0.0",
                "cluster image example-1.0.0",
                "the configuration from before the last upgrade"
            ]
        );
        assert!(found.iter().all(|g| g.bytes == 5), "{found:?}");
        remove(&layout, &found).unwrap();
        assert!(found.iter().all(|g| !g.path.exists()));
        assert!(image_dir.exists() && layout.planet().overlay("p-1.1.0").exists());
        assert!(root.join("planet/data/etcd/snapshots/f").exists());
        assert!(find(&layout).unwrap().is_empty());

        // An unfinished operation's rollback may need it all.
        let plan = operation::Plan::new("upgrade", serde_json::json!({}), &[("a", "A")]);
        layout.journal().save(&plan).unwrap();
        let e = find(&layout).unwrap_err().to_string();
        assert!(
            e.contains("the upgrade") && e.contains("not finished"),
            "{e}"
        );
    }

    /// An imported planet image `version`, as `planet::artifact::imported` reads it.
    fn planet_image(root: &Path, version: &str) {
        let images = StateDir::new(root).planet().images();
        let file = images.join(version).join("rootfs.erofs");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "12345").unwrap();
        let imported = serde_json::json!({
            "path": file, "sha256": "x", "version": version, "format": "erofs",
        });
        std::fs::write(images.join("imported.json"), imported.to_string()).unwrap();
    }
}
