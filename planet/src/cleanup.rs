//! Removing what a planet run put on the host: its container (libcontainer state and
//! processes), its cgroups (deepest first, in every hierarchy), its mounts and loop devices.
//! Used after every run, before every run (a crashed one's leftovers), and by teardown.

use std::path::{Path, PathBuf};
use std::time::Duration;

use libcontainer::container::Container;
use serde::Serialize;

use super::paths::Paths;
use super::status::Status;
use super::sys;
use crate::host::cgroups::{self, CgroupError, CgroupLayout, CgroupPlan, Membership};
use crate::host::{loopdev, mountinfo};

#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("cannot remove planet's container state {path}: {detail}")]
    State { path: PathBuf, detail: String },
    #[error("planet's init (pid {pid}) of an earlier run does not die: kill it, then retry")]
    Undying { pid: i32 },
    #[error("cannot unmount {path} (left by an earlier run): {source}")]
    Unmount { path: PathBuf, source: nix::Error },
}

/// Kills planet's leftover processes, removes its cgroups and then its libcontainer state.
pub fn container_and_cgroups(
    paths: &Paths,
    layout: &CgroupLayout,
    plan: &CgroupPlan,
) -> Result<(), CleanupError> {
    kill_init(paths)?;
    // Nested cgroups first (systemd's and docker's inside planet): libcontainer's v1 removal
    // is not recursive.
    layout.remove(&plan.path, Duration::from_secs(10))?;
    // The supervisor's own leaf (cgroup2), once it has left it (a teardown after its exit).
    if let Some(leaf) = &plan.supervisor {
        for dir in layout.dirs(leaf) {
            let _ = std::fs::remove_dir(crate::host::under(&layout.root, &dir));
        }
    }
    if let Some(base) = &plan.owned_base {
        for dir in layout.dirs(base) {
            // Only when empty: another planet (another state dir) may live there too.
            let _ = std::fs::remove_dir(crate::host::under(&layout.root, &dir));
        }
    }
    container_state(paths)
}

/// Removes libcontainer's state of planet, once its processes and cgroups are gone. This is
/// what libcontainer's `delete` would still do at that point; calling it instead would only
/// have it re-detect the cgroup layout (and log warnings about controllers this host lacks).
pub fn container_state(paths: &Paths) -> Result<(), CleanupError> {
    let dir = paths.container_state();
    durable::remove_dir_all(&dir).map_err(|e| CleanupError::State {
        path: dir,
        detail: e.to_string(),
    })
}

/// SIGKILLs the init of planet's container if it still runs (killing the whole pid namespace)
/// and waits for it to go.
fn kill_init(paths: &Paths) -> Result<(), CleanupError> {
    if !paths.container_state().join("state.json").exists() {
        return Ok(());
    }
    let Ok(c) = Container::load(paths.container_state()) else {
        return Ok(());
    };
    let Some(pid) = c.pid().map(|p| p.as_raw()) else {
        return Ok(());
    };
    if !sys::alive(pid) || !is_container_init(pid) {
        return Ok(());
    }
    tracing::warn!(pid, "killing planet's init left by an earlier run");
    let pidfd = sys::pidfd_open(pid).ok();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    // Our own child (we are its parent) must also be reaped to disappear.
    let _ = nix::sys::wait::waitpid(
        nix::unistd::Pid::from_raw(pid),
        Some(nix::sys::wait::WaitPidFlag::__WALL | nix::sys::wait::WaitPidFlag::WNOHANG),
    );
    let gone = match &pidfd {
        Some(fd) => sys::wait_pidfd(fd, Duration::from_secs(10)),
        None => true,
    };
    if gone || !sys::alive(pid) {
        Ok(())
    } else {
        Err(CleanupError::Undying { pid })
    }
}

/// A recycled pid must not get killed: planet's init lives in a mount namespace of its own,
/// never in ours (nor in the host's).
fn is_container_init(pid: i32) -> bool {
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/mnt")).ok();
    let theirs = ns(&pid.to_string());
    theirs.is_some() && theirs != ns("self") && theirs != ns("1")
}

/// Everything a crashed run can leave, removed: its container, its cgroups, mounts under
/// `<state>/planet` in the current mount namespace, and loop devices on planet's images.
pub fn stale(paths: &Paths) -> Result<(), CleanupError> {
    let layout = CgroupLayout::detect(Path::new("/"))?;
    let plan = match Status::load(&paths.state_dir).and_then(|s| s.cgroup) {
        Some(p) => p,
        None => cgroups::plan(
            &layout,
            &Membership::read(Path::new("/"), "self")?,
            &paths.instance(),
        ),
    };
    let had_state = paths.container_state().exists();
    let had_cgroups = !layout.existing(&plan.path).is_empty();
    if had_state || had_cgroups {
        tracing::warn!(cgroup = %plan.path, "removing the container of an earlier run");
    }
    container_and_cgroups(paths, &layout, &plan)?;
    let mounts = mountinfo::read(Path::new("/")).unwrap_or_default();
    for target in mountinfo::below(&mounts, &paths.dir) {
        tracing::warn!(target = %target.display(), "unmounting what an earlier run left");
        nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH).map_err(|source| {
            CleanupError::Unmount {
                path: target.clone(),
                source,
            }
        })?;
    }
    for (dev, backing) in loopdev::backed_by(Path::new("/"), &paths.images()) {
        if let Err(e) = loopdev::detach(&dev) {
            tracing::debug!(error = %e, backing = %backing.display(), "loop device still busy");
        }
    }
    Ok(())
}

/// What planet left on the host (empty when it is clean). Cgroups are those of this state
/// directory's planet only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Leftovers {
    pub supervisor_running: bool,
    pub processes: Vec<i32>,
    pub mounts: Vec<PathBuf>,
    pub loop_devices: Vec<PathBuf>,
    pub cgroups: Vec<PathBuf>,
    pub container_state: Option<PathBuf>,
}

impl Leftovers {
    pub fn is_clean(&self) -> bool {
        *self == Leftovers::default()
    }
}

impl std::fmt::Display for Leftovers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_clean() {
            return f.write_str("nothing");
        }
        let mut parts = Vec::new();
        if self.supervisor_running {
            parts.push("a running supervisor".to_string());
        }
        if !self.processes.is_empty() {
            parts.push(format!("processes {:?}", self.processes));
        }
        let list = |v: &[PathBuf]| {
            v.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.mounts.is_empty() {
            parts.push(format!("mounts {}", list(&self.mounts)));
        }
        if !self.loop_devices.is_empty() {
            parts.push(format!("loop devices {}", list(&self.loop_devices)));
        }
        if !self.cgroups.is_empty() {
            parts.push(format!("cgroups {}", list(&self.cgroups)));
        }
        if let Some(p) = &self.container_state {
            parts.push(format!("container state {}", p.display()));
        }
        f.write_str(&parts.join("; "))
    }
}

/// Looks for everything planet can leave on the host, as seen from the calling process.
pub fn leftovers(state_dir: &Path) -> Leftovers {
    let paths = Paths::new(state_dir);
    let mut out = Leftovers {
        supervisor_running: sys::SupervisorLock::held(&paths.lock()),
        ..Leftovers::default()
    };
    if let Ok(layout) = CgroupLayout::detect(Path::new("/")) {
        let plan = Status::load(state_dir).and_then(|s| s.cgroup).or_else(|| {
            Membership::read(Path::new("/"), "self")
                .ok()
                .map(|m| cgroups::plan(&layout, &m, &paths.instance()))
        });
        if let Some(plan) = plan {
            out.cgroups = layout.existing(&plan.path);
            for dir in &out.cgroups {
                out.processes.extend(cgroups::procs_below(dir));
            }
            out.processes.sort_unstable();
            out.processes.dedup();
        }
    }
    if let Ok(mounts) = mountinfo::read(Path::new("/")) {
        out.mounts = mountinfo::below(&mounts, &paths.dir);
    }
    out.loop_devices = loopdev::backed_by(Path::new("/"), &paths.images())
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    let state = paths.container_state();
    if state.exists() {
        out.container_state = Some(state);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_render() {
        let clean = Leftovers::default();
        assert!(clean.is_clean());
        assert_eq!(clean.to_string(), "nothing");
        let dirty = Leftovers {
            mounts: vec!["/s/planet/rootfs".into()],
            cgroups: vec!["/sys/fs/cgroup/memory/gravity/planet-0a1b2c3d".into()],
            ..Leftovers::default()
        };
        assert_eq!(
            dirty.to_string(),
            "mounts /s/planet/rootfs; cgroups /sys/fs/cgroup/memory/gravity/planet-0a1b2c3d"
        );
    }
}
