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
        // Atomic and durable: the journal marks this phase done right after.
        durable::copy_atomic(&src, &dst)
            .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        state::remove_file_and_empty_parent(&ctx.layout.gravity())?;
        Ok(())
    }
}
