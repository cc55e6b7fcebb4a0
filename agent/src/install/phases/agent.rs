//! Keeps a copy of gravity in the state directory: the host unit and later commands run it
//! even after the unpacked image is deleted.

use anyhow::Context;

use crate::install::{Ctx, state};
use operation::{Phase, Report};

pub struct Agent;

impl Phase<Ctx> for Agent {
    fn name(&self) -> &'static str {
        "agent"
    }
    fn description(&self) -> &'static str {
        "Keep a copy of gravity in the state directory"
    }
    fn run(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        let src = ctx.image.path(cluster_image::layout::GRAVITY_BIN);
        let dst = ctx.layout.gravity();
        let dir = dst.parent().expect("bin dir");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // Copy to a temporary name and rename, so a crash never leaves half a binary.
        let tmp = dir.join(".gravity.tmp");
        std::fs::copy(&src, &tmp)
            .with_context(|| format!("cannot copy {} to {}", src.display(), tmp.display()))?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &dst)?;
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        state::remove_file_and_empty_parent(&ctx.layout.gravity())?;
        Ok(())
    }
}
