//! The rolling part of the upgrade: every joined node, one at a time, runs the new version.
//! The first node writes each node's target ([`rpc::agent::rollout`]); the node's agent asks
//! for it, upgrades itself (fetch, drain, restart, health gate, uncordon: see
//! [`crate::upgrade::node`]) and reports how it went. The next node starts only once this
//! one is healthy on the new version. The rollback returns every node this upgrade reached
//! to its previous version, the last one first.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use operation::{Phase, Report, failpoint};
use rpc::agent::rollout::{Action, Rollout, Staged, StepState, Target};

use crate::upgrade::Ctx;

pub struct Nodes;

/// A node's whole step, its image's transfer included.
const NODE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A node's agent asks every few seconds: this long without a word, it is not running.
const SILENCE: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(500);
/// A node's checks (a disk's fdatasync and the like: seconds; minutes on a slow host).
const CHECK_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// A node's transfer of the new image (hundreds of MiB; minutes on a slow link).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long an agent that asks may take to start a check or a transfer before it is taken
/// for one that cannot (it asks every 2 s).
const TAKE_UP: Duration = Duration::from_secs(60);
/// A node's agent heard within this long is running (it asks every 2 s).
const ASKING: Duration = Duration::from_secs(10);

impl Phase<Ctx> for Nodes {
    fn name(&self) -> &'static str {
        "nodes"
    }
    fn description(&self) -> &'static str {
        "Upgrade the other nodes, one at a time"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let nodes = joined(ctx)?;
        if nodes.is_empty() {
            out.say("the cluster has no other nodes");
            return Ok(());
        }
        let rollout = Rollout::of(&ctx.node.layout.joined_nodes());
        let operation = super::operation_id(ctx)?;
        let version = ctx.node.manifest().metadata.resource_version.clone();
        for node in &nodes {
            let target = Target {
                ignore_preflight_errors: upgrade_ignores(ctx),
                ..Target::new(&operation, Action::Upgrade, &version)
            };
            let started = Instant::now();
            rollout.set_target(node, &target)?;
            wait(&rollout, node, &target, out, NODE_TIMEOUT)?;
            out.say(format!(
                "node {node} runs {version} ({:.1}s)",
                started.elapsed().as_secs_f64()
            ));
        }
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let rollout = Rollout::of(&ctx.node.layout.joined_nodes());
        let operation = super::operation_id(ctx)?;
        for node in joined(ctx)?.iter().rev() {
            // Nodes this upgrade never asked run what they ran.
            if rollout
                .target(node)?
                .is_none_or(|t| t.operation != operation)
            {
                continue;
            }
            let target = Target::new(&operation, Action::Rollback, &ctx.from.version);
            rollout.set_target(node, &target)?;
            wait(&rollout, node, &target, out, NODE_TIMEOUT)
                .with_context(|| format!("node {node} did not return to {}", ctx.from.version))?;
            out.say(format!("node {node} runs {} again", ctx.from.version));
        }
        Ok(())
    }
}

/// Before the upgrade changes anything: every joined node runs the new version's checks for its
/// profile, all at once, and judges them as the first node does its own
/// ([`crate::upgrade::requirements`]); any node's failure fails the upgrade, all named.
pub(super) fn check(ctx: &Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
    let nodes = joined(ctx)?;
    if nodes.is_empty() {
        return Ok(());
    }
    let path = ctx.node.image.path(cluster_image::layout::MANIFEST);
    let manifest = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let target = Target {
        manifest: Some(manifest),
        ignore_preflight_errors: upgrade_ignores(ctx),
        ..Target::new(
            &super::operation_id(ctx)?,
            Action::Check,
            &ctx.node.manifest().metadata.resource_version,
        )
    };
    let rollout = Rollout::of(&ctx.node.layout.joined_nodes());
    let failed = on_every_node(
        &rollout,
        &nodes,
        &target,
        out,
        CHECK_TIMEOUT,
        "did not take up the checks (its gravity predates them?): it checks itself when its turn comes",
    )?;
    if !failed.is_empty() {
        bail!(
            "the new version's checks fail on {} of the other nodes, and nothing was changed: {}",
            failed.len(),
            failed.join("; ")
        );
    }
    Ok(())
}

/// Before the first node changes anything: its agent serves the new version beside the
/// installed one, and every joined node fetches its image, all at once. Any node's failure
/// fails the upgrade; a node whose gravity predates this fetches it when its turn comes.
pub(super) fn transfer(ctx: &Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
    let nodes = joined(ctx)?;
    if nodes.is_empty() {
        out.say("the cluster has no other nodes");
        return Ok(());
    }
    let version = ctx.node.manifest().metadata.resource_version.clone();
    let rollout = Rollout::of(&ctx.node.layout.joined_nodes());
    rollout.stage(&Staged {
        version: version.clone(),
        image_dir: ctx.node.params.image_dir.clone(),
    })?;
    let target = Target::new(&super::operation_id(ctx)?, Action::Fetch, &version);
    let started = Instant::now();
    let failed = on_every_node(
        &rollout,
        &nodes,
        &target,
        out,
        TRANSFER_TIMEOUT,
        "did not take up the transfer (its gravity predates it?): it fetches the image when its turn comes",
    )?;
    if !failed.is_empty() {
        bail!(
            "the new version's image did not reach {} of the other nodes, and nothing was changed: {}",
            failed.len(),
            failed.join("; ")
        );
    }
    out.say(format!(
        "{} {version} is on every node ({:.1}s)",
        ctx.node.manifest().metadata.name,
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Asks every node for `target` at once, and waits for them all: what each said is said, and
/// each failure comes back (`not_taken_up` is said of a node whose agent never takes the
/// target up).
fn on_every_node(
    rollout: &Rollout,
    nodes: &[String],
    target: &Target,
    out: &mut Report<'_>,
    timeout: Duration,
    not_taken_up: &str,
) -> anyhow::Result<Vec<String>> {
    for node in nodes {
        rollout.set_target(node, target)?;
    }
    let mut failed = Vec::new();
    for node in nodes {
        match wait(rollout, node, target, out, timeout) {
            Ok(Some(said)) => out.say(format!("node {node}: {said}")),
            Ok(None) => out.say(format!("node {node} {not_taken_up}")),
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    Ok(failed)
}

/// The `--ignore-preflight-errors` of this upgrade (not the first node's install's), which
/// every node applies.
fn upgrade_ignores(ctx: &Ctx) -> Vec<String> {
    let installed = &ctx.from.params.ignore_preflight_errors;
    ctx.node
        .params
        .ignore_preflight_errors
        .iter()
        .filter(|e| !installed.contains(e))
        .cloned()
        .collect()
}

/// The joined nodes, by name: the records under `<state>/agent/nodes/`.
fn joined(ctx: &Ctx) -> anyhow::Result<Vec<String>> {
    let dir = ctx.node.layout.joined_nodes();
    rpc::agent::joined_in(&dir).with_context(|| format!("cannot list {}", dir.display()))
}

/// Waits until `node` reports `target` done, and returns what it said last; its progress is
/// said as it comes. Fails with the node's own error, or when its agent falls silent, or after
/// `timeout`. None where the node's agent keeps asking but never takes a check or a transfer
/// up.
fn wait(
    rollout: &Rollout,
    node: &str,
    target: &Target,
    out: &mut Report<'_>,
    timeout: Duration,
) -> anyhow::Result<Option<String>> {
    let started = Instant::now();
    let mut said = String::new();
    let mut taken_up = false;
    loop {
        let report = rollout.report(node)?;
        let step = report.as_ref().and_then(|r| r.step.as_ref());
        if let Some(step) =
            step.filter(|s| s.operation == target.operation && s.action == target.action)
        {
            taken_up = true;
            match step.state {
                StepState::Done => return Ok(Some(step.message.clone())),
                StepState::Failed => bail!("node {node}: {}", step.message),
                StepState::Running if step.message != said => {
                    out.say(format!("{node}: {}", step.message));
                    said = step.message.clone();
                    // The crash tests' point: the first node gone while a node is mid-step.
                    if target.action == Action::Upgrade {
                        failpoint("nodes", "during");
                    }
                }
                StepState::Running => {}
            }
        }
        let heard = report.as_ref().map_or(0, |r| r.at_ms);
        let silent = Duration::from_millis(durable::now_ms().saturating_sub(heard));
        if silent > SILENCE && started.elapsed() > SILENCE {
            bail!(
                "node {node}'s agent has not asked for its upgrade for {}s: is it running there (`gravity agent status` on the node, its log in <state>/logs/agent.log)?",
                silent.as_secs().min(started.elapsed().as_secs())
            );
        }
        // An agent that keeps asking and does not start a check does not know it. One that
        // does not ask at all is down: the silence above fails the checks then.
        if matches!(target.action, Action::Check | Action::Fetch)
            && !taken_up
            && started.elapsed() > TAKE_UP
            && silent < ASKING
        {
            return Ok(None);
        }
        if started.elapsed() > timeout {
            bail!(
                "node {node} did not finish within {} minutes (its last word: {said})",
                timeout.as_secs() / 60
            );
        }
        std::thread::sleep(POLL);
    }
}
