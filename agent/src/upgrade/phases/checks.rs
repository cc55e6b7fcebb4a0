//! Before anything changes: the image is of this cluster and newer, etcd and Kubernetes move at
//! most one minor version, and the preflight checks of the new profile pass where its
//! requirements differ from the installed ones: the installed profile's checks run too, and a
//! check they share (same id, same requirement) fails nothing: a failure there is the running
//! cluster's own doing (it holds the ports it asked for) or a measurement of a busy host.

use std::collections::BTreeSet;

use anyhow::{Context, bail};

use crate::install::state::{self, ClusterRecord};
use crate::upgrade::Ctx;
use crate::upgrade::{components, versions};
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
        let mut report = ctx.node.effects.checks.run(
            ctx.node.manifest(),
            &ctx.node.profile,
            &opts,
            &ctx.node.image.dir,
        );
        report.apply_ignores(&preflight::IgnoreList::from_entries(
            &ctx.node.params.ignore_preflight_errors,
        ));
        let value: serde_json::Value = serde_json::from_str(&report.to_json())?;
        state::write_json(&layout.upgrade_checks_report(), &value)?;
        let installed = match installed_manifest(ctx) {
            Some((manifest, dir)) => {
                let profile = manifest
                    .profile(Some(&ctx.node.params.node.role))
                    .context("the installed manifest has no profile for this node")?;
                let old = ctx
                    .node
                    .effects
                    .checks
                    .run(&manifest, &profile, &opts, &dir);
                old.checks
                    .iter()
                    .map(|c| (c.id.clone(), c.required.clone().unwrap_or_default()))
                    .collect()
            }
            // Without the installed manifest: what the install's report checked.
            None => requirements(&layout.checks_report()),
        };
        let mut failed = Vec::new();
        for c in &report.checks {
            let key = (c.id.clone(), c.required.clone().unwrap_or_default());
            if c.status == preflight::Status::Pass {
                continue;
            }
            // What the installed version asked for already is no difference: a measurement
            // (a disk's latency, busy now) may fail once and pass the next time.
            if installed.contains(&key) {
                if c.status == preflight::Status::Fail {
                    out.say(format!(
                        "{} {}: {} ({}; the installed version asks the same: not failing the upgrade)",
                        c.status,
                        c.id,
                        c.title,
                        c.required.as_deref().unwrap_or("")
                    ));
                }
                continue;
            }
            out.say(format!(
                "{} {}: {} ({})",
                c.status,
                c.id,
                c.title,
                c.required.as_deref().unwrap_or("new")
            ));
            if c.status == preflight::Status::Fail {
                failed.push(c.id.clone());
            }
        }
        if !failed.is_empty() {
            bail!(
                "the new version's requirements that differ from the installed ones fail on this host ({}): fix them, or pass --ignore-preflight-errors={}",
                failed.join(", "),
                failed.join(",")
            );
        }
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        state::remove_file(&ctx.node.layout.upgrade_checks_report())?;
        Ok(())
    }
}

/// The installed version's manifest and the directory its check scripts are in: its unpacked
/// image where it still is, else the copy of its resources the install kept.
fn installed_manifest(ctx: &Ctx) -> Option<(cluster_image::Manifest, std::path::PathBuf)> {
    [
        ctx.from.params.image_dir.clone(),
        ctx.node.layout.resources(),
    ]
    .into_iter()
    .find_map(|dir| {
        let manifest =
            cluster_image::manifest::load_resolved(&dir.join(cluster_image::layout::MANIFEST))
                .ok()?;
        Some((manifest, dir))
    })
}

/// The planet image of the new cluster image for this node's profile.
pub(super) fn new_planet_dir(ctx: &Ctx) -> anyhow::Result<std::path::PathBuf> {
    Ok(crate::upgrade::planet_dir(
        &ctx.node.image,
        &ctx.node.profile,
    )?)
}

/// (id, requirement) of every check in a saved report: what the installed version asked for.
fn requirements(report: &std::path::Path) -> BTreeSet<(String, String)> {
    let Ok(bytes) = std::fs::read(report) else {
        return BTreeSet::new();
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    value["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c["id"].as_str()?.to_string(),
                c["required"].as_str().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}
