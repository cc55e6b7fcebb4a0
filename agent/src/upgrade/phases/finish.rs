//! Records the new version (cluster.json, the preflight report of what is installed), no
//! longer stages it for the other nodes, and removes planet images older than the previous
//! one.

use anyhow::Context;
use operation::{Phase, Report};

use crate::install::state::{self, ClusterRecord};
use crate::upgrade::Ctx;

pub struct Finish;

impl Phase<Ctx> for Finish {
    fn name(&self) -> &'static str {
        "finish"
    }
    fn description(&self) -> &'static str {
        "Record the upgraded cluster"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let layout = &ctx.node.layout;
        let record = ClusterRecord::load(layout)?.context("cluster.json is gone")?;
        let record = ClusterRecord {
            version: ctx.node.manifest().metadata.resource_version.clone(),
            image_dir: ctx.node.params.image_dir.clone(),
            ..record
        };
        state::write_record(&layout.cluster_record(), &record)?;
        // The first node's agent serves the new version as the installed one now.
        if ctx.cluster.is_none() {
            super::transfer::unstage(ctx)?;
        }
        if layout.upgrade_checks_report().exists() {
            durable::copy_atomic(&layout.upgrade_checks_report(), &layout.checks_report())?;
        }
        // The running image and the previous one (a rollback's) stay.
        let running = planet::artifact::imported(layout.root())?
            .context("no planet image is imported")?
            .version;
        let images = layout.planet().images();
        for entry in std::fs::read_dir(&images)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !entry.file_type()?.is_dir() || name == running || name == ctx.from.planet_version {
                continue;
            }
            durable::remove_dir_all(&entry.path())?;
            durable::remove_dir_all(&layout.planet().overlay(&name))?;
            out.say(format!(
                "removed planet {name}, older than the previous version"
            ));
        }
        Ok(())
    }
    fn rollback(&self, _ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        // The records are put back by the configure phase's rollback, from the saved copy.
        Ok(())
    }
}
