//! Records what is installed, and makes `gravity` available on the PATH.

use std::path::Path;

use crate::install::Ctx;
use crate::install::state::{self, ClusterRecord, Supervisor};
use durable::now_ms;
use operation::{Phase, Report};
use planet::host::fs::HostFs;

pub struct Finish;

/// Where the `gravity` command is linked for the administrator.
pub const PATH_LINK: &str = "/usr/local/bin/gravity";

impl Phase<Ctx> for Finish {
    fn name(&self) -> &'static str {
        "finish"
    }
    fn description(&self) -> &'static str {
        "Record the installed cluster"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let m = ctx.manifest();
        let record = ClusterRecord {
            name: m.metadata.name.clone(),
            version: m.metadata.resource_version.clone(),
            installed_ms: now_ms(),
            node: ctx.params.node.clone(),
            flavor: ctx.params.flavor.clone(),
            service_uid: ctx.params.service_uid,
            service_gid: ctx.params.service_gid,
            supervisor: if ctx.effects.services.is_some() {
                Supervisor::Systemd
            } else {
                Supervisor::Gravity
            },
            image_dir: ctx.params.image_dir.clone(),
        };
        state::write_record(&ctx.layout.cluster_record(), &record)?;
        if let Err(why) = link_on_path(
            ctx.effects.fs.as_ref(),
            &ctx.layout.gravity(),
            Path::new(PATH_LINK),
        ) {
            out.say(format!("gravity is not linked on the PATH: {why}"));
        }
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        unlink_from_path(
            ctx.effects.fs.as_ref(),
            &ctx.layout.gravity(),
            Path::new(PATH_LINK),
        );
        state::remove_file(&ctx.layout.cluster_record())?;
        Ok(())
    }
}

/// Links `link` to our gravity unless something else already lives there: never replace a
/// file we did not put there. Says why not, when not.
pub fn link_on_path(fs: &dyn HostFs, gravity: &Path, link: &Path) -> Result<(), String> {
    match fs.read_link(link) {
        Ok(target) if target == gravity => Ok(()),
        Ok(_) | Err(_) if fs.occupied(link) => {
            Err(format!("something else is at {}", link.display()))
        }
        _ => fs
            .symlink(gravity, link)
            .map_err(|e| format!("cannot link {}: {e}", link.display())),
    }
}

/// Removes `link` only if it is our symlink.
pub fn unlink_from_path(fs: &dyn HostFs, gravity: &Path, link: &Path) {
    if fs.read_link(link).is_ok_and(|t| t == gravity) {
        let _ = fs.remove_file(link);
    }
}
