//! Planet's configuration (image, service user, volumes, devices, daemon arguments), the Helm
//! values file, and the resources hooks read (with `runAsUser: -1` made the service uid).

use anyhow::Context;

use crate::install::{Ctx, state, values};
use crate::node::PlanetOptions;
use operation::{Phase, Report};
use planet::config::PlanetConfig;

pub struct Configure;

impl Phase<Ctx> for Configure {
    fn name(&self) -> &'static str {
        "configure"
    }
    fn description(&self) -> &'static str {
        "Configure planet, Helm values and hooks"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let state_dir = &ctx.params.state_dir;
        let image = planet::artifact::imported(state_dir)?.context(
            "the planet image is not imported: run `gravity install --resume` to redo that phase",
        )?;
        let saved = crate::hooks::save(ctx.manifest(), &ctx.layout)?;
        if !saved.is_empty() {
            out.say(format!("hooks saved: {}", saved.join(", ")));
        }
        let opts = PlanetOptions {
            state_dir: state_dir.clone(),
            service_uid: ctx.params.service_uid,
            service_gid: ctx.params.service_gid,
            node: ctx.params.node.clone(),
            cluster_name: ctx.manifest().metadata.name.clone(),
            mounts: ctx.params.mounts.clone(),
            image: image.path.clone(),
            image_sha256: image.sha256.clone(),
            image_version: image.version.clone(),
            pki: crate::node::kubernetes::version_of(&image.path).map(|_| ctx.layout.pki()),
            status_hook: false,
        };
        // Hooks need Kubernetes: only then does the supervisor ask the status hook, and only on
        // the node that installed the cluster (a joined node has no admin credentials).
        let opts = PlanetOptions {
            status_hook: saved.contains(&"status")
                && opts.pki.is_some()
                && ctx.params.node.joined.is_none(),
            ..opts
        };
        let config = crate::node::planet_config(ctx.manifest(), &ctx.profile, &opts)?;
        config.save(state_dir)?;

        // helm merges them once planet runs (the values phase); keep what was given till then.
        values::check(&ctx.params.values, &ctx.params.set)?;
        values::keep(&ctx.params.values, &ctx.layout.helm_inputs())?;

        // Hooks see the cluster's resources; copy them so they outlive the unpacked image.
        let resources = ctx.layout.resources();
        state::remove_dir(&resources)?;
        copy_tree(
            &ctx.image.path(cluster_image::layout::RESOURCES_DIR),
            &resources,
        )?;
        // The tree's own entry in the state directory (each directory synced its entries).
        sync_dir(resources.parent().unwrap_or(&resources))?;
        // `runAsUser: -1` in them means the service user (the spec's "Service User").
        let uid = ctx.params.service_uid;
        for t in cluster_image::service_user::translate_dir(&resources, uid)? {
            let lines: Vec<String> = t.lines.iter().map(usize::to_string).collect();
            out.say(format!(
                "runAsUser -1 -> {uid} (the service user) in {}, line {}",
                t.file.display(),
                lines.join(", ")
            ));
        }
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        PlanetConfig::remove(&ctx.params.state_dir)?;
        state::remove_dir(&ctx.layout.helm_inputs())?;
        state::remove_file_and_empty_parent(&ctx.layout.helm_values())?;
        state::remove_dir(&ctx.layout.resources())?;
        state::remove_dir(&ctx.layout.hooks())?;
        Ok(())
    }
}

/// Copies the resources durably: the phase is journaled as done right after, and a power cut
/// must not leave the files it names empty (a VM scenario's cut did: `web.yaml` of 0 bytes).
pub(crate) fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    if from.exists() {
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            let (src, dst) = (entry.path(), to.join(entry.file_name()));
            let ft = entry.file_type()?;
            if ft.is_dir() {
                copy_tree(&src, &dst)?;
            } else if ft.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
            } else {
                durable::copy_atomic(&src, &dst)
                    .with_context(|| format!("cannot copy {}", src.display()))?;
            }
        }
    }
    // The entries (files, symlinks, subdirectories) of this directory.
    sync_dir(to)
}

pub(crate) fn sync_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}
