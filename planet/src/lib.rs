//! planet, the system container: its configuration, image, OCI spec, the supervisor that runs
//! it with youki's libcontainer, and the service, health, exec and teardown operations around
//! it.
//!
//! Every libcontainer call happens in a fresh, single-threaded `gravity` process
//! (`gravity planet run`, `gravity planet exec`): libcontainer forks with clone3 and runs Rust
//! code in the child, which deadlocks in a multi-threaded caller. The library functions meant
//! for other code ([`service`], [`health`], [`teardown`]) therefore never call libcontainer to
//! start anything; they run the `gravity` binary or use plain system calls.

pub mod access;
pub mod artifact;
pub mod cleanup;
pub mod config;
pub mod devices;
pub mod env;
pub mod etcdctl;
pub mod exec;
mod handle;
pub mod health;
pub mod host;
pub mod inside;
pub mod journal;
pub mod paths;
pub mod restarts;
pub mod rootfs;
pub mod service;
pub mod shutdown;
pub mod spec;
pub mod status;
pub mod supervisor;
pub mod sys;
pub mod volumes;

use std::path::Path;
use std::time::Duration;

pub use cleanup::{Leftovers, leftovers};
pub use handle::Planet;

/// How long [`teardown`] waits for a running planet to stop.
pub const TEARDOWN_STOP_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    #[error(transparent)]
    Service(#[from] service::ServiceError),
    #[error(transparent)]
    Cleanup(#[from] cleanup::CleanupError),
    #[error("cannot take planet's supervisor lock {path}: {source}")]
    Lock {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("planet was started again while it was being torn down: stop it first")]
    Running,
    #[error("planet left on the host after teardown: {0}")]
    Left(Box<Leftovers>),
}

/// What Kubernetes put on the host's network (iptables chains, the pod bridge) goes while
/// planet still runs, with planet's own tools (`/usr/lib/planet/kube-cleanup`); a planet that
/// does not run, or has no such script, has nothing to clean.
fn clean_kubernetes(state_dir: &Path) {
    const SCRIPT: &str = "/usr/lib/planet/kube-cleanup";
    let Some(pid) = status::Status::running_init_pid(state_dir) else {
        return;
    };
    if !inside::host_path(pid, SCRIPT).exists() {
        return;
    }
    match inside::query(pid, SCRIPT, &[], Duration::from_secs(60)) {
        Some(out) => {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                tracing::info!("{line}");
            }
        }
        None => tracing::warn!("{SCRIPT} inside planet did not finish"),
    }
}

/// Stops planet if it runs and removes everything it put on the host (container, cgroups,
/// mounts, loop devices, runtime files) except its persistent data, its configuration and
/// its images: for uninstall. Returns what is left (nothing, or it fails).
pub fn teardown(state_dir: &Path) -> Result<Leftovers, TeardownError> {
    let paths = paths::Paths::new(state_dir);
    clean_kubernetes(state_dir);
    service::stop(state_dir, TEARDOWN_STOP_TIMEOUT)?;
    if !paths.dir.exists() {
        return Ok(leftovers(state_dir));
    }
    // Hold the supervisor's lock while removing: no supervisor of this state directory can
    // start meanwhile and have its fresh container taken for leftovers.
    let lock = sys::SupervisorLock::try_acquire(&paths.lock())
        .map_err(|source| TeardownError::Lock {
            path: paths.lock(),
            source,
        })?
        .ok_or(TeardownError::Running)?;
    cleanup::stale(&paths)?;
    for file in [
        paths.environment(),
        paths.notify_socket(),
        paths.daemon_pid(),
    ] {
        let _ = std::fs::remove_file(file);
    }
    for dir in [paths.bundle(), paths.runtime(), paths.run()] {
        let _ = std::fs::remove_dir_all(dir);
    }
    for dir in [paths.rootfs(), paths.image_mount()] {
        let _ = std::fs::remove_dir(dir);
    }
    // Our own hold on the lock would read as a running supervisor.
    drop(lock);
    let left = leftovers(state_dir);
    if left.is_clean() {
        Ok(left)
    } else {
        Err(TeardownError::Left(Box::new(left)))
    }
}

pub use durable::write_atomic;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path().join("a")).unwrap().count(), 1);
    }
}
