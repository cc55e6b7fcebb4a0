//! Copies the planet image out of the cluster image into the state directory and verifies it.

use anyhow::Context;

use crate::install::Ctx;
use operation::{Phase, Report};

pub struct PlanetImage;

impl Phase<Ctx> for PlanetImage {
    fn name(&self) -> &'static str {
        "planet-image"
    }
    fn description(&self) -> &'static str {
        "Import the planet system container image"
    }
    fn run(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        let planet_dir = ctx.image.path(cluster_image::layout::PLANET_DIR);
        // A profile may run its own planet (`systemOptions.baseImage`).
        let base_image = ctx.manifest().system_options_for(&ctx.profile).base_image;
        if base_image.is_none() {
            anyhow::ensure!(
                planet_dir.join("planet.json").exists(),
                "this cluster image carries no planet image ({} is missing): it was built without `tele build --planet`, and can only be checked, not installed",
                planet_dir.join("planet.json").display()
            );
        }
        let src = crate::node::source_for(&planet_dir, base_image.as_deref())?;
        // The cluster image was verified when the install opened it.
        planet::artifact::import(
            &src,
            &ctx.params.state_dir,
            planet::artifact::Source::Verified,
        )
        .with_context(|| format!("cannot import the planet image from {}", src.display()))?;
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        planet::artifact::remove_all(&ctx.params.state_dir)?;
        Ok(())
    }
}
