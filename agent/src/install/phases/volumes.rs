//! The node profile's volumes on the host: directories created with their owner and mode, and a
//! record of what this install created, so rollback and uninstall remove exactly that.

use crate::state_dir::StateDir;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::install::{Ctx, state};
use operation::{Phase, Report};
use planet::config::PlanetConfig;
use planet::host::fs::RealFs;
use planet::volumes;

pub struct Volumes;

/// `<state>/volumes.json`: host directories this install created (the topmost new one of each
/// path), outside the state directory.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Created {
    pub dirs: Vec<PathBuf>,
}

impl Phase<Ctx> for Volumes {
    fn name(&self) -> &'static str {
        "volumes"
    }
    fn description(&self) -> &'static str {
        "Create the node's volumes"
    }
    fn run(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        let config = PlanetConfig::load(&ctx.params.state_dir)?;
        let record_path = record(&ctx.layout);
        let mut created: Created = state::read_record(&record_path)?;
        // Only what does not exist yet is ours to remove later.
        for v in config
            .volumes
            .iter()
            .filter(|v| !v.wildcard && v.create_if_missing)
        {
            let source = Path::new(&v.source);
            if source.starts_with(&ctx.params.state_dir) {
                continue;
            }
            if let Some(top) = first_missing(source)
                && !created.dirs.contains(&top)
            {
                created.dirs.push(top);
            }
        }
        // Record before creating: a crash in between must not leave an unrecorded directory.
        state::write_record(&record_path, &created)?;
        volumes::prepare(&config.volumes, &RealFs::host())?;
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        for kept in remove_created(&ctx.layout)? {
            out.say(format!("kept {}: it holds data", kept.display()));
        }
        Ok(())
    }
}

fn record(layout: &StateDir) -> PathBuf {
    layout.volumes_record()
}

/// The topmost component of `path` that does not exist (`/srv/a/b` when only `/srv` exists).
fn first_missing(path: &Path) -> Option<PathBuf> {
    if path.exists() {
        return None;
    }
    let mut top = path.to_path_buf();
    while let Some(parent) = top.parent() {
        if parent.exists() {
            break;
        }
        top = parent.to_path_buf();
    }
    Some(top)
}

/// Removes the directories this install created, where they are empty (or hold only empty
/// directories): data a user put there is never deleted. Returns the ones kept.
pub fn remove_created(layout: &StateDir) -> anyhow::Result<Vec<PathBuf>> {
    let path = record(layout);
    let created: Created = state::read_record(&path)?;
    let kept: Vec<PathBuf> = created
        .dirs
        .into_iter()
        .filter(|d| !remove_empty_tree(d))
        .collect();
    let _ = state::remove_file(&path);
    Ok(kept)
}

/// Removes `dir` if it holds nothing but empty directories; returns whether it is gone.
fn remove_empty_tree(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return !dir.exists();
    };
    let mut empty = true;
    for entry in entries.flatten() {
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !(is_dir && remove_empty_tree(&entry.path())) {
            empty = false;
        }
    }
    empty && std::fs::remove_dir(dir).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_empty_trees_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("a/b/c");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(remove_empty_tree(&dir.path().join("a")));
        assert!(!dir.path().join("a").exists());

        let full = dir.path().join("x/y");
        std::fs::create_dir_all(&full).unwrap();
        std::fs::write(full.join("data"), b"user data").unwrap();
        assert!(!remove_empty_tree(&dir.path().join("x")));
        assert!(full.join("data").exists());
    }

    #[test]
    fn the_topmost_missing_component_is_found() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            first_missing(&dir.path().join("a/b/c")),
            Some(dir.path().join("a"))
        );
        assert_eq!(first_missing(dir.path()), None);
    }
}
