//! The node profile's volumes on the host: directories created with their owner and mode, and a
//! record of what this install created, so rollback and uninstall remove exactly that.

use crate::state_dir::StateDir;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::install::{Ctx, state};
use operation::{Phase, Report};
use planet::config::PlanetConfig;
use planet::host::fs::HostFs;
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
            if let Some(top) = first_missing(ctx.effects.fs.as_ref(), source)
                && !created.dirs.contains(&top)
            {
                created.dirs.push(top);
            }
        }
        // Record before creating: a crash in between must not leave an unrecorded directory.
        state::write_record(&record_path, &created)?;
        volumes::prepare(&config.volumes, ctx.effects.fs.as_ref())?;
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        for kept in remove_created(&ctx.layout, ctx.effects.fs.as_ref())? {
            out.say(format!("kept {}: it holds data", kept.display()));
        }
        Ok(())
    }
}

fn record(layout: &StateDir) -> PathBuf {
    layout.volumes_record()
}

/// The topmost component of `path` that does not exist (`/srv/a/b` when only `/srv` exists).
fn first_missing(fs: &dyn HostFs, path: &Path) -> Option<PathBuf> {
    if fs.exists(path) {
        return None;
    }
    let mut top = path.to_path_buf();
    while let Some(parent) = top.parent() {
        if fs.exists(parent) {
            break;
        }
        top = parent.to_path_buf();
    }
    Some(top)
}

/// Removes the directories this install created, where they are empty (or hold only empty
/// directories): data a user put there is never deleted. Returns the ones kept.
pub fn remove_created(layout: &StateDir, fs: &dyn HostFs) -> anyhow::Result<Vec<PathBuf>> {
    let path = record(layout);
    let created: Created = state::read_record(&path)?;
    let kept: Vec<PathBuf> = created
        .dirs
        .into_iter()
        .filter(|d| !fs.remove_empty_tree(d))
        .collect();
    let _ = state::remove_file(&path);
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topmost_missing_component_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let fs = planet::host::fs::RealFs::host();
        assert_eq!(
            first_missing(&fs, &dir.path().join("a/b/c")),
            Some(dir.path().join("a"))
        );
        assert_eq!(first_missing(&fs, dir.path()), None);
    }
}
