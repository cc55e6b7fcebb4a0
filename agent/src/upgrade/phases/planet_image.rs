//! Imports the new planet image beside the running one (which stays on disk for a rollback).

use anyhow::Context;
use operation::{Phase, Report};

use crate::upgrade::Ctx;

pub struct PlanetImage;

impl Phase<Ctx> for PlanetImage {
    fn name(&self) -> &'static str {
        "planet-image"
    }
    fn description(&self) -> &'static str {
        "Import the new planet image"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let src = super::checks::new_planet_dir(ctx)?;
        let image = planet::artifact::import(
            &src,
            &ctx.node.params.state_dir,
            planet::artifact::Source::Verified,
        )
        .with_context(|| format!("cannot import the planet image from {}", src.display()))?;
        if image.version == ctx.from.planet_version {
            out.say(format!("planet {} stays (the same image)", image.version));
        } else {
            out.say(format!(
                "planet {} -> {}",
                ctx.from.planet_version, image.version
            ));
        }
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        let paths = ctx.node.layout.planet();
        let state_dir = &ctx.node.params.state_dir;
        // The previous image becomes the imported one again (it never left the disk).
        let previous = paths.images().join(&ctx.from.planet_version);
        planet::artifact::import(&previous, state_dir, planet::artifact::Source::Unverified)
            .with_context(|| {
                format!(
                    "cannot take the previous planet image {} back",
                    previous.display()
                )
            })?;
        // The new image, and its writable layer, where it is not the previous one.
        let new = planet::artifact::ImageMeta::load(
            &super::checks::new_planet_dir(ctx)?.join(planet::artifact::META_FILE),
        )?;
        if new.version != ctx.from.planet_version {
            durable::remove_dir_all(&paths.images().join(&new.version))?;
            durable::remove_dir_all(&paths.overlay(&new.version))?;
        }
        Ok(())
    }
}
