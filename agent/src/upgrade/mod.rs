//! `gravity upgrade` (the image's `./upgrade`): a newer cluster image over the running node as a
//! journaled plan: checks, an etcd snapshot, the new planet image and configuration beside the
//! old ones, drain, restart on the new image, the health gate, then the application's update
//! hooks. Any failure rolls back by itself: the node returns to its previous planet image and
//! configuration (kept in `<state>/upgrade/previous/`), its data untouched.

pub mod gc;
pub mod node;
pub mod params;
mod phases;
pub mod previous;
pub mod requirements;
#[cfg(test)]
mod tests;
pub mod versions;

use std::path::Path;

use anyhow::{Context, bail};

use crate::effects::Effects;
use crate::install::{self, InstallParams, state::ClusterRecord};
use crate::source::ClusterImage;
use crate::state_dir::StateDir;
use operation::{Engine, Journal, Observer, OpState, Phase, Plan};
pub use params::{Installed, UpgradeParams};

/// The `kind` upgrade plans are journaled with.
pub const KIND: &str = "upgrade";

/// Everything the upgrade's phases share: the node as the install's phases see it (over the
/// new image), and what it ran before.
pub struct Ctx {
    pub node: install::Ctx,
    pub from: Installed,
    /// Where the plan is journaled: the state directory's journal on the first node;
    /// `<state>/upgrade/` on a joined node, whose own operation stays its join.
    pub journal: Journal,
    /// On a joined node: the first node's agent, which drains and uncordons it.
    pub cluster: Option<rpc::agent::Client>,
}

impl Ctx {
    /// The first node's upgrade, journaled in the state directory.
    pub fn first(node: install::Ctx, from: Installed) -> Ctx {
        let journal = node.layout.journal();
        Ctx {
            node,
            from,
            journal,
            cluster: None,
        }
    }
}

pub fn phases() -> Vec<Box<dyn Phase<Ctx>>> {
    phases::all()
}

pub fn engine(state_dir: &Path) -> Engine<'static, Ctx> {
    Engine::new(Journal::new(state_dir), phases())
}

/// The directory of the planet image `image` carries for `profile` (its default one, or the
/// profile's `systemOptions.baseImage`).
pub fn planet_dir(
    image: &ClusterImage,
    profile: &cluster_image::manifest::NodeProfile,
) -> Result<std::path::PathBuf, planet::artifact::ImageError> {
    let base = image.manifest.system_options_for(profile).base_image;
    crate::node::source_for(
        &image.path(cluster_image::layout::PLANET_DIR),
        base.as_deref(),
    )
}

/// The component versions a planet image records (`kube` in its planet.json: `kubernetes`,
/// `etcd`, ...); none for an image without them.
pub fn components(dir: &Path) -> std::collections::BTreeMap<String, String> {
    planet::artifact::ImageMeta::load(&dir.join(planet::artifact::META_FILE))
        .ok()
        .and_then(|meta| meta.extra.get("kube").cloned())
        .and_then(|kube| serde_json::from_value(kube).ok())
        .unwrap_or_default()
}

/// What is installed here, for a new upgrade: the parameters of the last operation that
/// finished (an install, an upgrade, or a rolled back upgrade's starting point).
pub fn installed(layout: &StateDir) -> anyhow::Result<Installed> {
    let root = layout.root();
    let plan = layout
        .journal()
        .load()?
        .with_context(|| format!("no cluster is installed in {}", root.display()))?;
    let upgrade = |plan: &Plan| -> anyhow::Result<UpgradeParams> {
        serde_json::from_value(plan.params.clone())
            .context("the journaled upgrade parameters are unreadable")
    };
    let params: InstallParams = match (plan.kind.as_str(), plan.state) {
        (install::KIND, OpState::Completed) => serde_json::from_value(plan.params.clone())
            .context("the journaled install parameters are unreadable")?,
        (KIND, OpState::Completed) => upgrade(&plan)?.node,
        (KIND, OpState::RolledBack) => upgrade(&plan)?.from.params,
        (kind, state) => bail!(
            "the last {kind} did not finish (it is {}, at phase `{}`): continue it with `gravity plan resume` or undo it with `gravity plan rollback` first",
            format!("{state:?}").to_lowercase(),
            plan.next_phase().map_or("?", |p| p.name.as_str())
        ),
    };
    let record = ClusterRecord::load(layout)?.with_context(|| {
        format!(
            "{} is missing: is the install finished?",
            layout.cluster_record().display()
        )
    })?;
    let planet = planet::artifact::imported(root)?
        .with_context(|| format!("no planet image is imported in {}", root.display()))?;
    Ok(Installed {
        params,
        version: record.version,
        planet_version: planet.version,
    })
}

/// How an upgrade run begins.
pub enum Start {
    /// Over the image the command opened (and so verified).
    New(Box<UpgradeParams>, Box<ClusterImage>),
    /// Continue the journaled upgrade.
    Resume,
}

/// Runs (or continues) the upgrade; a failed phase rolls every started phase back, and the
/// error says whether the node runs its previous version again.
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
        (Some(plan), Start::Resume)
            if plan.kind == KIND && matches!(plan.state, OpState::InProgress | OpState::Failed) =>
        {
            plan
        }
        (Some(plan), Start::Resume) if plan.kind == KIND && plan.state == OpState::RollingBack => {
            bail!(
                "the upgrade was rolling back when it stopped: finish that with `gravity plan rollback`"
            )
        }
        (_, Start::Resume) => bail!(
            "there is no unfinished upgrade in {} to resume",
            state_dir.display()
        ),
        (current, Start::New(params, image)) => {
            // The command checked that `current` is finished (see [`installed`]).
            if let Some(previous) = current {
                journal.keep_in_history(&previous)?;
            }
            opened = Some(*image);
            Plan::new(KIND, serde_json::to_value(&*params)?, &engine.outline())
        }
    };
    let params: UpgradeParams = serde_json::from_value(plan.params.clone())
        .context("the journaled upgrade parameters are unreadable")?;
    let from = params.from.clone();
    let node = match opened {
        Some(image) => install::context_with(params.node, image, effects)?,
        None => install::context(params.node, effects)?,
    };
    let mut ctx = Ctx::first(node, from);
    let Err(failed) = engine.run(&mut plan, &mut ctx, observer) else {
        return Ok((ctx, plan));
    };
    observer.phase_message(
        "rollback",
        &format!("the upgrade failed, rolling back: {failed:#}"),
    );
    match engine.rollback(&mut plan, &mut ctx, observer) {
        Ok(()) => Err(failed.context(format!(
            "the upgrade failed and was rolled back: the node runs {} {} again",
            ctx.node.image.manifest.metadata.name, ctx.from.version
        ))),
        Err(e) => Err(e.context(format!(
            "the upgrade failed ({failed:#}), and rolling it back failed too; the plan (`gravity plan`) shows where it stopped"
        ))),
    }
}

/// Undoes the journaled upgrade's started phases in reverse (`gravity plan rollback`).
pub fn rollback(
    state_dir: &Path,
    effects: Effects,
    observer: &mut dyn Observer,
) -> anyhow::Result<Plan> {
    let journal = Journal::new(state_dir);
    let _lock = journal.lock()?;
    let mut plan = journal
        .load()?
        .filter(|p| p.kind == KIND)
        .with_context(|| {
            format!(
                "there is no upgrade to roll back in {}",
                state_dir.display()
            )
        })?;
    let params: UpgradeParams = serde_json::from_value(plan.params.clone())
        .context("the journaled upgrade parameters are unreadable")?;
    let node = install::context(params.node, effects)?;
    let mut ctx = Ctx::first(node, params.from);
    engine(state_dir).rollback(&mut plan, &mut ctx, observer)?;
    // A rolled back upgrade stays the current operation: it records what the node runs.
    Ok(plan)
}

/// Upgrade as a kind of plan, for `gravity plan resume|rollback`.
pub struct UpgradeKind;

impl operation::PlanKind for UpgradeKind {
    fn kind(&self) -> &'static str {
        KIND
    }
    fn phase_count(&self) -> usize {
        phases().len()
    }
    fn resume(&self, state_dir: &Path, observer: &mut dyn Observer) -> anyhow::Result<Plan> {
        Ok(run(Start::Resume, state_dir, Effects::host(), observer)?.1)
    }
    fn rollback(&self, state_dir: &Path, observer: &mut dyn Observer) -> anyhow::Result<Plan> {
        rollback(state_dir, Effects::host(), observer)
    }
}
