//! A joined node's part of a rolling upgrade: its agent ([`follow`]) learns from the first
//! node what version to run; this node then fetches that version's image from the first node's
//! agent and runs its own journaled plan (the planet image, the configuration, drain, restart,
//! health gate, uncordon: the upgrade's node phases). A failure rolls this node back at once;
//! the first node's rollback has it undo a finished one. The plan is journaled in
//! `<state>/upgrade/`: the node's own operation stays its join (what `gravity leave` undoes).

pub mod follow;

use anyhow::{Context, bail};
use rpc::agent::rollout::Target;
use serde::{Deserialize, Serialize};

use super::{Ctx, Installed, UpgradeParams};
use crate::effects::Effects;
use crate::install::{self, InstallParams, state::ClusterRecord};
use crate::state_dir::StateDir;
use operation::{Engine, Journal, Observer, OpState, Plan};

/// The `kind` a joined node's upgrade plans are journaled with.
pub const KIND: &str = "node-upgrade";

/// A node's upgrade plan's parameters: the first node's target, and the node's upgrade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeUpgradeParams {
    pub target: Target,
    pub upgrade: UpgradeParams,
}

/// Where a joined node journals its upgrades.
pub fn journal(layout: &StateDir) -> Journal {
    Journal::new(&layout.root().join("upgrade"))
}

fn engine(layout: &StateDir) -> Engine<'static, Ctx> {
    Engine::new(journal(layout), super::phases::node())
}

/// This node's plan for the first node's `operation`, if it has one.
pub fn plan_of(
    layout: &StateDir,
    operation: &str,
) -> anyhow::Result<Option<(Plan, NodeUpgradeParams)>> {
    let Some(plan) = journal(layout).load()?.filter(|p| p.kind == KIND) else {
        return Ok(None);
    };
    let params: NodeUpgradeParams = serde_json::from_value(plan.params.clone())
        .context("the journaled node upgrade parameters are unreadable")?;
    Ok((params.target.operation == operation).then_some((plan, params)))
}

/// What this joined node runs: its record, with the mounts its join was given.
pub fn installed(layout: &StateDir) -> anyhow::Result<Installed> {
    let record = ClusterRecord::load(layout)?.with_context(|| {
        format!(
            "{} is missing: has this node finished joining?",
            layout.cluster_record().display()
        )
    })?;
    let join = layout
        .journal()
        .load()?
        .filter(|p| p.kind == crate::join::plan::KIND)
        .context(
            "this node has no join journaled: only a joined node follows the cluster's upgrades",
        )?;
    let join: crate::join::plan::JoinParams = serde_json::from_value(join.params)
        .context("the journaled join parameters are unreadable")?;
    let planet = planet::artifact::imported(layout.root())?
        .with_context(|| format!("no planet image is imported in {}", layout.root().display()))?;
    Ok(Installed {
        params: InstallParams {
            image_dir: record.image_dir,
            state_dir: layout.root().to_path_buf(),
            service_uid: record.service_uid,
            service_gid: record.service_gid,
            node: record.node,
            flavor: record.flavor,
            mounts: join.mounts,
            ignore_preflight_errors: join.ignore_preflight_errors,
            values: Vec::new(),
            set: Vec::new(),
        },
        version: record.version,
        planet_version: planet.version,
    })
}

/// A client of the first node's agent, as this node: the address it joined through, the
/// cluster CA's hash and the node's own certificate.
pub fn client(layout: &StateDir) -> anyhow::Result<rpc::agent::Client> {
    let record = ClusterRecord::load(layout)?.context("cluster.json is missing")?;
    let joined = record
        .node
        .joined
        .context("this node did not join a cluster: it installed it")?;
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))
    };
    let (cert, key) = (read(layout.node_cert())?, read(layout.node_key())?);
    let hash = crate::join::command::ca_hash(layout)?;
    Ok(rpc::agent::Client::new(
        &joined.agent,
        &hash,
        Some((&cert, &key)),
    )?)
}

/// Runs `target`'s upgrade on this node (a journaled one of the same operation continues);
/// a failure rolls the node back, and the error says so.
pub fn upgrade(
    layout: &StateDir,
    target: &Target,
    effects: Effects,
    observer: &mut dyn Observer,
) -> anyhow::Result<()> {
    let journal = journal(layout);
    let _lock = journal.lock()?;
    let client = client(layout)?;
    let (mut plan, params) = match plan_of(layout, &target.operation)? {
        Some((plan, _)) if plan.state == OpState::Completed => return Ok(()),
        Some((plan, _)) if plan.state == OpState::RolledBack => bail!(
            "this node's upgrade to {} was rolled back: {}",
            target.version,
            failure(&plan)
        ),
        Some((plan, _)) if plan.state == OpState::RollingBack => {
            drop(_lock);
            rollback(layout, target, effects, observer)?;
            bail!("this node's upgrade was rolling back when it stopped: it is rolled back")
        }
        Some((plan, params)) => (plan, params),
        None => {
            let from = installed(layout)?;
            if from.version == target.version {
                return Ok(());
            }
            let dir = fetch_image(layout, &client, target, observer)?.0;
            let mut node = InstallParams {
                image_dir: dir,
                ..from.params.clone()
            };
            node.ignore_preflight_errors
                .extend(target.ignore_preflight_errors.iter().cloned());
            let params = NodeUpgradeParams {
                target: target.clone(),
                upgrade: UpgradeParams {
                    from,
                    node,
                    version: target.version.clone(),
                },
            };
            if let Some(previous) = journal.load()? {
                journal.keep_in_history(&previous)?;
            }
            let plan = Plan::new(
                KIND,
                serde_json::to_value(&params)?,
                &engine(layout).outline(),
            );
            (plan, params)
        }
    };
    let mut ctx = context(params, effects, &journal, client)?;
    let engine = engine(layout);
    let Err(failed) = engine.run(&mut plan, &mut ctx, observer) else {
        return Ok(());
    };
    observer.phase_message(
        "rollback",
        &format!("the upgrade failed, rolling back: {failed:#}"),
    );
    match engine.rollback(&mut plan, &mut ctx, observer) {
        Ok(()) => Err(failed.context(format!(
            "this node's upgrade failed and was rolled back: it runs {} again",
            ctx.from.version
        ))),
        Err(e) => Err(e.context(format!(
            "this node's upgrade failed ({failed:#}), and rolling it back failed too (its plan: {}); the first node's rollback (`gravity plan rollback` there) asks this node again",
            journal.current_path().display()
        ))),
    }
}

/// Fetches the cluster image of the version `target` brings, where this node's upgrade to it
/// looks for it; changes nothing else. What is in place already is kept (checked when it
/// arrived), so a node's step finds the image its transfer fetched.
pub fn fetch(
    layout: &StateDir,
    target: &Target,
    observer: &mut dyn Observer,
) -> anyhow::Result<String> {
    Ok(fetch_image(layout, &client(layout)?, target, observer)?.1)
}

/// [`fetch`]'s work: the image's directory and what the fetch said.
fn fetch_image(
    layout: &StateDir,
    client: &rpc::agent::Client,
    target: &Target,
    observer: &mut dyn Observer,
) -> anyhow::Result<(std::path::PathBuf, String)> {
    // The first node serves it beside the installed version once its upgrade staged it.
    let client = client.for_version(&target.version);
    let info = client.cluster(None).with_context(|| {
        format!(
            "the first node does not serve {}: is its upgrade still running?",
            target.version
        )
    })?;
    let dir = layout.unpacked_image(&format!("{}-{}", info.name, info.version));
    observer.phase_message("fetch", &format!("fetching {} {}", info.name, info.version));
    let summary = crate::join::phases::fetch::image(&client, &info.index, &dir, &mut |l| {
        observer.phase_message("fetch", &l)
    })?;
    observer.phase_message("fetch", &summary);
    Ok((dir, summary))
}

/// Runs the checks of the version `target` brings (its manifest) for this node's profile,
/// against the installed version's, and changes nothing; says what did not pass.
pub fn check(
    layout: &StateDir,
    target: &Target,
    effects: Effects,
    observer: &mut dyn Observer,
) -> anyhow::Result<String> {
    let text = target
        .manifest
        .as_deref()
        .context("the cluster asked for checks without the new version's manifest")?;
    // Kept where the node's reports are: what was checked, and a file to load it from.
    let dir = layout.root().join("checks/upgrade");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(cluster_image::layout::MANIFEST);
    durable::write_atomic(&path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    let manifest = cluster_image::manifest::load_resolved(&path)
        .with_context(|| format!("the manifest of {} the cluster sent", target.version))?;
    let from = installed(layout)?;
    let role = &from.params.node.role;
    let profile = manifest.profile(Some(role)).with_context(|| {
        format!(
            "{} {} has no profile {role} for this node",
            manifest.metadata.name, target.version
        )
    })?;
    observer.phase_message(
        "checks",
        &format!(
            "checking {} {} ({role})",
            manifest.metadata.name, target.version
        ),
    );
    let mut ignore = from.params.ignore_preflight_errors.clone();
    ignore.extend(target.ignore_preflight_errors.iter().cloned());
    let opts = preflight::Options {
        state_dir: layout.root().to_path_buf(),
        ..preflight::Options::default()
    };
    let check = super::requirements::NodeCheck {
        checks: effects.checks.as_ref(),
        manifest: &manifest,
        profile: &profile,
        // Scripts are inline in a built manifest; they run where the installed image is.
        scripts_dir: &from.params.image_dir,
        opts: &opts,
        ignore: &ignore,
        role,
        installed_dirs: vec![from.params.image_dir.clone(), layout.resources()],
        installed_report: layout.join_checks_report(),
        report: layout.upgrade_checks_report(),
    };
    let verdict = check.run()?;
    // The checks that failed, in the words the first node passes on.
    verdict
        .result()
        .map_err(|e| anyhow::anyhow!("{}; {e:#}", verdict.said.join("; ")))?;
    Ok(if verdict.said.is_empty() {
        format!("the checks of {} pass", target.version)
    } else {
        format!(
            "the checks of {} pass ({})",
            target.version,
            verdict.said.join("; ")
        )
    })
}

/// Undoes this node's upgrade for `target.operation`, however far it went; nothing to do
/// where it never started or is rolled back already.
pub fn rollback(
    layout: &StateDir,
    target: &Target,
    effects: Effects,
    observer: &mut dyn Observer,
) -> anyhow::Result<()> {
    let journal = journal(layout);
    let _lock = journal.lock()?;
    let Some((mut plan, params)) = plan_of(layout, &target.operation)? else {
        return Ok(());
    };
    if plan.state == OpState::RolledBack {
        return Ok(());
    }
    let mut ctx = context(params, effects, &journal, client(layout)?)?;
    engine(layout).rollback(&mut plan, &mut ctx, observer)
}

/// The node's plan's context: the install's over the new image, the first node's agent to
/// drain and uncordon it.
fn context(
    params: NodeUpgradeParams,
    effects: Effects,
    journal: &Journal,
    cluster: rpc::agent::Client,
) -> anyhow::Result<Ctx> {
    Ok(Ctx {
        node: install::context(params.upgrade.node, effects)?,
        from: params.upgrade.from,
        journal: journal.clone(),
        cluster: Some(cluster),
    })
}

/// Why a rolled back plan failed: its failed phase and error.
pub fn failure(plan: &Plan) -> String {
    plan.phases
        .iter()
        .find_map(|p| Some(format!("phase {}: {}", p.name, p.error.as_deref()?)))
        .unwrap_or_else(|| "no phase recorded an error".into())
}
