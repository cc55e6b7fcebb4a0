//! The parts of the install phases that uninstall reuses without a cluster image at hand.

use crate::effects::Effects;
use crate::state_dir::StateDir;
use std::path::Path;

use super::phases::{finish, kernel, service, user, volumes};

pub fn remove_unit(effects: &Effects) -> anyhow::Result<()> {
    service::remove_unit(effects.services.as_deref())
}

pub fn unlink_from_path(effects: &Effects, layout: &StateDir) {
    finish::unlink_from_path(
        effects.fs.as_ref(),
        &layout.gravity(),
        Path::new(finish::PATH_LINK),
    );
}

pub fn remove_user(effects: &Effects, layout: &StateDir) -> anyhow::Result<()> {
    user::remove_recorded(layout, effects.accounts.as_ref())
}

/// Removes the volume directories the install created, where empty; returns those kept.
pub fn remove_volumes(
    effects: &Effects,
    layout: &StateDir,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    volumes::remove_created(layout, effects.fs.as_ref())
}

/// Puts back the kernel settings files the install changed.
pub fn restore_kernel(effects: &mut Effects, layout: &StateDir) -> anyhow::Result<()> {
    kernel::restore(layout, effects.kernel.changer.as_mut())
}
