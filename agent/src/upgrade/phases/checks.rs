//! Before anything changes: the image is of this cluster and newer, etcd and Kubernetes move at
//! most one minor version, and the preflight checks of the new profile pass where its
//! requirements differ from the installed ones ([`crate::upgrade::requirements`]), here and,
//! on the first node, on every joined node.

use anyhow::Context;

use crate::install::state::{self, ClusterRecord};
use crate::upgrade::requirements::NodeCheck;
use crate::upgrade::{Ctx, components, versions};
use operation::{Phase, Report};

pub struct Checks;

impl Phase<Ctx> for Checks {
    fn name(&self) -> &'static str {
        "checks"
    }
    fn description(&self) -> &'static str {
        "Check the new version and the host"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let layout = &ctx.node.layout;
        let record = ClusterRecord::load(layout)?.context("no cluster is installed here")?;
        let m = ctx.node.manifest();
        versions::check_cluster(
            &record.name,
            &ctx.from.version,
            &m.metadata.name,
            &m.metadata.resource_version,
        )?;
        let old = components(&layout.planet().images().join(&ctx.from.planet_version));
        let new = components(&new_planet_dir(ctx)?);
        for (component, key) in [("etcd", "etcd"), ("Kubernetes", "kubernetes")] {
            if let (Some(from), Some(to)) = (old.get(key), new.get(key)) {
                versions::check_component(component, from, to)?;
                if from != to {
                    out.say(format!("{component} {from} -> {to}"));
                }
            }
        }

        let opts = preflight::Options {
            state_dir: ctx.node.params.state_dir.clone(),
            ..preflight::Options::default()
        };
        let check = NodeCheck {
            checks: ctx.node.effects.checks.as_ref(),
            manifest: ctx.node.manifest(),
            profile: &ctx.node.profile,
            scripts_dir: &ctx.node.image.dir,
            opts: &opts,
            ignore: &ctx.node.params.ignore_preflight_errors,
            role: &ctx.node.params.node.role,
            installed_dirs: vec![ctx.from.params.image_dir.clone(), layout.resources()],
            installed_report: layout.checks_report(),
            report: layout.upgrade_checks_report(),
        };
        let verdict = check.run()?;
        for line in &verdict.said {
            out.say(line.clone());
        }
        verdict.result()?;
        // The first node's upgrade asks the others; a joined node's own plan checks itself.
        if ctx.cluster.is_none() {
            super::nodes::check(ctx, out)?;
        }
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        state::remove_file(&ctx.node.layout.upgrade_checks_report())?;
        Ok(())
    }
}

/// The planet image of the new cluster image for this node's profile.
pub(super) fn new_planet_dir(ctx: &Ctx) -> anyhow::Result<std::path::PathBuf> {
    Ok(crate::upgrade::planet_dir(
        &ctx.node.image,
        &ctx.node.profile,
    )?)
}
