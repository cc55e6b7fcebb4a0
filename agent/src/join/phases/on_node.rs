//! An install phase run as a step of the join: the same phase that set up the first node,
//! over this node's record and fetched image.

use operation::{Phase, Report};

use crate::install::Ctx as InstallCtx;
use crate::join::plan::Ctx;

pub struct OnNode(pub Box<dyn Phase<InstallCtx>>);

impl Phase<Ctx> for OnNode {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn description(&self) -> &'static str {
        self.0.description()
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        self.0.run(ctx.node()?, out)
    }
    fn rollback(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        // Nothing of the install's steps can have happened without the record they read.
        if !ctx.layout.join_record().exists() && !ctx.layout.cluster_record().exists() {
            return Ok(());
        }
        self.0.rollback(ctx.node()?, out)
    }
}
