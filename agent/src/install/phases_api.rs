//! The parts of the install phases that uninstall reuses without a cluster image at hand.

use crate::state_dir::StateDir;
use std::path::Path;

use super::phases::{finish, kernel, service, user, volumes};

pub fn remove_unit() -> anyhow::Result<()> {
    service::remove_unit(&systemd::manager::Systemctl)
}

pub fn unlink_from_path(layout: &StateDir) {
    finish::unlink_from_path(&layout.gravity(), Path::new(finish::PATH_LINK));
}

pub fn remove_user(layout: &StateDir) -> anyhow::Result<()> {
    user::remove_recorded(layout)
}

/// Removes the volume directories the install created, where empty; returns those kept.
pub fn remove_volumes(layout: &StateDir) -> anyhow::Result<Vec<std::path::PathBuf>> {
    volumes::remove_created(layout)
}

/// Puts back the kernel settings files the install changed.
pub fn restore_kernel(layout: &StateDir) -> anyhow::Result<()> {
    kernel::restore(layout)
}
