//! `gravity join` on a new host, as a journaled plan: authenticate with the token (the node
//! gets its own certificate), then fetch the cluster image from the first node. The token
//! itself is never journaled: a resume before the node has its certificate needs it again.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::phases;
use crate::effects::Effects;
use crate::install::state::{ClusterRecord, read_versioned};
use crate::install::{Ctx as InstallCtx, InstallParams};
use crate::state_dir::StateDir;
use operation::{Engine, Journal, Observer, OpState, Phase, Plan};

pub const KIND: &str = "join";

/// What a join was asked to do (journaled: no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinParams {
    /// The first node's agent, `HOST[:PORT]`.
    pub addr: String,
    pub ca_hash: String,
    pub node_name: String,
    pub role: Option<String>,
    pub advertise_ip: Option<IpAddr>,
    /// Preflight check ids (or `all`) whose failures do not stop the join.
    #[serde(default)]
    pub ignore_preflight_errors: Vec<String>,
    /// `--mount name:path` overrides of profile volumes.
    #[serde(default)]
    pub mounts: Vec<(String, PathBuf)>,
}

pub struct Ctx {
    pub params: JoinParams,
    pub layout: StateDir,
    /// From the command line; needed until the node has its certificate.
    pub token: Option<String>,
    /// Until [`Ctx::node`] takes them.
    effects: Option<Effects>,
    /// The install steps' context, once the node knows its cluster.
    node: Option<InstallCtx>,
}

impl Ctx {
    pub fn new(
        params: JoinParams,
        layout: StateDir,
        token: Option<String>,
        effects: Effects,
    ) -> Ctx {
        Ctx {
            params,
            layout,
            token,
            effects: Some(effects),
            node: None,
        }
    }

    pub fn effects(&mut self) -> &mut Effects {
        match (&mut self.node, &mut self.effects) {
            (Some(node), _) => &mut node.effects,
            (None, Some(effects)) => effects,
            (None, None) => unreachable!("the effects are in the node's context or here"),
        }
    }

    /// The context the install's phases run in on this node: its cluster record (made by
    /// the credentials phase) as the install's parameters, over the fetched image (opened
    /// and verified once per run).
    pub fn node(&mut self) -> anyhow::Result<&mut InstallCtx> {
        if self.node.is_none() {
            // What the node runs now: an upgrade changes cluster.json (and `gravity gc` may
            // have removed the image the node joined with).
            let path = match self.layout.cluster_record() {
                current if current.exists() => current,
                _ => self.layout.join_record(),
            };
            let record: ClusterRecord = read_versioned(&path)?.with_context(|| {
                format!(
                    "{} is missing: the credentials phase makes it (`gravity join --resume`)",
                    path.display()
                )
            })?;
            let params = InstallParams {
                image_dir: record.image_dir,
                state_dir: self.layout.root().to_path_buf(),
                service_uid: record.service_uid,
                service_gid: record.service_gid,
                node: record.node,
                flavor: record.flavor,
                mounts: self.params.mounts.clone(),
                ignore_preflight_errors: self.params.ignore_preflight_errors.clone(),
                values: Vec::new(),
                set: Vec::new(),
            };
            // On an error install::context has consumed the effects: this run stops here, the
            // next one starts with the host's again.
            let effects = self.effects.take().expect("effects not taken yet");
            self.node = Some(crate::install::context(params, effects)?);
        }
        Ok(self.node.as_mut().expect("just made"))
    }

    /// What undoing the join asks of the cluster: `None` where the cluster forgot this node
    /// already (`gravity remove` on a master), which leaves it nothing to do for it.
    pub fn unless_forgotten<T>(
        &self,
        asked: Result<T, rpc::agent::AgentError>,
        out: &mut operation::Report<'_>,
    ) -> anyhow::Result<Option<T>> {
        match asked {
            Ok(answer) => Ok(Some(answer)),
            Err(e) if e.node_forgotten() => {
                out.say(format!(
                    "the cluster forgot node {} already: nothing to undo there",
                    self.params.node_name
                ));
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A client of the cluster's agent that authenticates with this node's certificate.
    pub fn client(&self) -> anyhow::Result<rpc::agent::Client> {
        let read = |p: PathBuf| {
            std::fs::read_to_string(&p).with_context(|| {
                format!(
                    "cannot read {}: the authenticate phase makes it (`gravity join --resume --token ...`)",
                    p.display()
                )
            })
        };
        let cert = read(self.layout.node_cert())?;
        let key = read(self.layout.node_key())?;
        Ok(rpc::agent::Client::new(
            &self.params.addr,
            &self.params.ca_hash,
            Some((&cert, &key)),
        )?)
    }
}

pub fn phases() -> Vec<Box<dyn Phase<Ctx>>> {
    phases::all()
}

pub fn engine(state_dir: &Path) -> Engine<'static, Ctx> {
    Engine::new(Journal::new(state_dir), phases())
}

pub enum Start {
    New(JoinParams),
    Resume,
}

/// Runs (or continues) the join.
pub fn run(
    start: Start,
    state_dir: &Path,
    token: Option<String>,
    effects: Effects,
    observer: &mut dyn Observer,
) -> anyhow::Result<(Ctx, Plan)> {
    let journal = Journal::new(state_dir);
    let _lock = journal.lock()?;
    let engine = engine(state_dir);
    let mut plan = match (journal.load()?, start) {
        (Some(plan), Start::Resume)
            if plan.kind == KIND && matches!(plan.state, OpState::InProgress | OpState::Failed) =>
        {
            plan
        }
        (_, Start::Resume) => bail!(
            "there is no unfinished join in {} to resume",
            state_dir.display()
        ),
        (Some(plan), Start::New(_)) => bail!(
            "{} already holds a {} ({}): this host is part of a cluster or has an unfinished operation; see `gravity plan`, or use another --state-dir",
            state_dir.display(),
            plan.kind,
            format!("{:?}", plan.state).to_lowercase()
        ),
        (None, Start::New(params)) => {
            Plan::new(KIND, serde_json::to_value(&params)?, &engine.outline())
        }
    };
    let params: JoinParams = serde_json::from_value(plan.params.clone())
        .context("the journaled join parameters are unreadable")?;
    let mut ctx = Ctx::new(params, StateDir::new(state_dir), token, effects);
    engine.run(&mut plan, &mut ctx, observer)?;
    Ok((ctx, plan))
}

/// Removes the journal of a join that never got past authenticating (a refused one).
pub fn forget(state_dir: &Path) -> anyhow::Result<()> {
    let journal = Journal::new(state_dir);
    let _lock = journal.lock()?;
    if journal.load()?.is_some_and(|p| p.kind == KIND) {
        crate::install::state::remove_dir(&state_dir.join("operation"))?;
        let _ = crate::install::state::remove_dir(&StateDir::new(state_dir).agent());
    }
    Ok(())
}

/// Undoes the journaled join on both sides (`gravity plan rollback`).
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
        .with_context(|| format!("there is no join to roll back in {}", state_dir.display()))?;
    let params: JoinParams = serde_json::from_value(plan.params.clone())
        .context("the journaled join parameters are unreadable")?;
    let mut ctx = Ctx::new(params, StateDir::new(state_dir), None, effects);
    engine(state_dir).rollback(&mut plan, &mut ctx, observer)?;
    // Rolled back is finished: a new join may start (as after an install's rollback).
    journal.archive(&plan)?;
    Ok(plan)
}

/// Join as a kind of plan, for `gravity plan resume|rollback`.
pub struct JoinKind;

impl operation::PlanKind for JoinKind {
    fn kind(&self) -> &'static str {
        KIND
    }
    fn phase_count(&self) -> usize {
        phases().len()
    }
    fn resume(&self, state_dir: &Path, observer: &mut dyn Observer) -> anyhow::Result<Plan> {
        Ok(run(Start::Resume, state_dir, None, Effects::host(), observer)?.1)
    }
    fn rollback(&self, state_dir: &Path, observer: &mut dyn Observer) -> anyhow::Result<Plan> {
        rollback(state_dir, Effects::host(), observer)
    }
}
