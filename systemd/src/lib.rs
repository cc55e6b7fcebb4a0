//! The host side of systemd: is it PID 1, readiness notification, the unit files gravity
//! installs, and the `systemctl` calls that control them.

pub mod manager;
pub mod notify;
pub mod units;

use std::path::Path;

/// Whether the host runs systemd as its init, the way `sd_booted(3)` decides.
pub fn is_pid1() -> bool {
    is_pid1_under(Path::new("/"))
}

/// [`is_pid1`] through a root prefix, for tests over fixture trees.
pub fn is_pid1_under(root: &Path) -> bool {
    root.join("run/systemd/system").is_dir()
}
