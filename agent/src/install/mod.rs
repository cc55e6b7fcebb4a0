//! `gravity install` as an operation: a journaled plan of idempotent phases from a verified
//! cluster image to a healthy planet, resumable after any interruption.

pub mod network;
pub mod params;
pub(crate) mod phases;
pub mod phases_api;
pub mod progress;
pub mod prompt;
pub mod state;
#[cfg(test)]
pub(crate) mod tests;
pub mod values;

use crate::state_dir::StateDir;
use std::path::Path;

use anyhow::Context;
use cluster_image::Manifest;
use cluster_image::manifest::NodeProfile;

use crate::effects::Effects;
use crate::source::ClusterImage;
use operation::{Engine, Journal, Observer, Phase, Plan};
pub use params::InstallParams;

/// Everything phases share.
pub struct Ctx {
    pub params: InstallParams,
    pub image: ClusterImage,
    pub profile: NodeProfile,
    pub layout: StateDir,
    /// What the phases change on the host, chosen by the command.
    pub effects: Effects,
}

impl Ctx {
    pub fn manifest(&self) -> &Manifest {
        &self.image.manifest
    }

    /// Whether this node runs Kubernetes (the pki phase made the cluster's CA).
    pub fn runs_kubernetes(&self) -> bool {
        self.layout.pki().join("ca.crt").exists()
    }
}

/// The install phases, in order.
pub fn phases() -> Vec<Box<dyn Phase<Ctx>>> {
    phases::all()
}

pub fn engine(state_dir: &Path) -> Engine<'static, Ctx> {
    Engine::new(Journal::new(state_dir), phases())
}

/// How an install run begins.
pub enum Start {
    /// With the cluster image the command opened (and so verified) for the parameters.
    New(Box<InstallParams>, Box<ClusterImage>),
    /// Continue the journaled install; the ids are added to its ignored preflight failures.
    Resume {
        ignore_preflight_errors: Vec<String>,
    },
}

/// Starts a new install, or continues the journaled one.
pub fn run(
    start: Start,
    state_dir: &Path,
    effects: Effects,
    observer: &mut dyn Observer,
) -> anyhow::Result<(Ctx, Plan)> {
    let journal = Journal::new(state_dir);
    let _lock = journal.lock()?;
    let engine = engine(state_dir);
    let mut opened = None;
    let mut plan = match (journal.load()?, start) {
        (
            Some(mut plan),
            Start::Resume {
                ignore_preflight_errors,
            },
        ) if plan.kind == KIND => {
            if !ignore_preflight_errors.is_empty() {
                let mut params: InstallParams = serde_json::from_value(plan.params.clone())
                    .context("the journaled install parameters are unreadable")?;
                for id in ignore_preflight_errors {
                    if !params.ignore_preflight_errors.contains(&id) {
                        params.ignore_preflight_errors.push(id);
                    }
                }
                plan.params = serde_json::to_value(&params)?;
            }
            plan
        }
        (Some(plan), Start::Resume { .. }) => anyhow::bail!(
            "the journaled operation is a {}, not an install: use `gravity plan resume`",
            plan.kind
        ),
        (None, Start::Resume { .. }) => anyhow::bail!(
            "there is no install to resume in {}: it stopped before its first phase was recorded, so nothing was changed; run the install again without --resume",
            state_dir.display()
        ),
        (Some(plan), Start::New(..)) if plan.is_complete() || plan.kind != KIND => anyhow::bail!(
            "a cluster is already installed here ({}); run `gravity status`, or `gravity uninstall` first to install again",
            state_dir.display()
        ),
        (Some(plan), Start::New(..)) => anyhow::bail!(
            "an install is already in progress in {} (stopped at phase `{}`): continue it with `gravity install --resume`, or undo it with `gravity plan rollback`",
            state_dir.display(),
            plan.next_phase().map_or("?", |p| p.name.as_str())
        ),
        (None, Start::New(params, image)) => {
            opened = Some(*image);
            Plan::new(KIND, serde_json::to_value(&*params)?, &engine.outline())
        }
    };
    let params: InstallParams = serde_json::from_value(plan.params.clone())
        .context("the journaled install parameters are unreadable")?;
    // A new install was opened (and verified) by the command: verify once per install.
    let mut ctx = match opened {
        Some(image) => context_with(params, image, effects)?,
        None => context(params, effects)?,
    };
    engine.run(&mut plan, &mut ctx, observer)?;
    Ok((ctx, plan))
}

/// Install as a kind of plan, for `gravity plan resume|rollback`.
pub struct InstallKind;

impl operation::PlanKind for InstallKind {
    fn kind(&self) -> &'static str {
        KIND
    }
    fn phase_count(&self) -> usize {
        phases().len()
    }
    fn resume(&self, state_dir: &Path, observer: &mut dyn Observer) -> anyhow::Result<Plan> {
        let start = Start::Resume {
            ignore_preflight_errors: Vec::new(),
        };
        Ok(run(start, state_dir, Effects::host(), observer)?.1)
    }
    fn rollback(&self, state_dir: &Path, observer: &mut dyn Observer) -> anyhow::Result<Plan> {
        rollback(state_dir, Effects::host(), observer)
    }
}

/// The `kind` install plans are journaled with.
pub const KIND: &str = "install";

/// Undoes the journaled install's phases in reverse.
pub fn rollback(
    state_dir: &Path,
    effects: Effects,
    observer: &mut dyn Observer,
) -> anyhow::Result<Plan> {
    let journal = Journal::new(state_dir);
    let _lock = journal.lock()?;
    let mut plan = journal.load()?.with_context(|| {
        format!(
            "there is no operation to roll back in {}",
            state_dir.display()
        )
    })?;
    let params: InstallParams = serde_json::from_value(plan.params.clone())?;
    let mut ctx = context(params, effects)?;
    engine(state_dir).rollback(&mut plan, &mut ctx, observer)?;
    // Rolled back is finished: a new install may start.
    journal.archive(&plan)?;
    Ok(plan)
}

/// Re-opens (and re-verifies) the image and picks the profile, for a new run or a resume.
pub fn context(params: InstallParams, effects: Effects) -> anyhow::Result<Ctx> {
    let image = crate::source::open(Some(&params.image_dir), &params.state_dir)?;
    context_with(params, image, effects)
}

/// The context over an image this process has opened and verified already.
pub(crate) fn context_with(
    params: InstallParams,
    image: ClusterImage,
    effects: Effects,
) -> anyhow::Result<Ctx> {
    let profile = image
        .manifest
        .profile(Some(&params.node.role))
        .with_context(|| {
            format!(
                "the cluster image has no node profile `{}`",
                params.node.role
            )
        })?;
    let layout = StateDir::new(&params.state_dir);
    Ok(Ctx {
        params,
        image,
        profile,
        layout,
        effects,
    })
}
