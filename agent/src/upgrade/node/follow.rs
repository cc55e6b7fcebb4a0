//! `gravity agent serve` on a joined node: asks the first node's agent every few seconds what
//! this node should run ([`rpc::agent::Request::Sync`]), saying what it runs and how its
//! current step goes; a new target is carried out in a thread of its own (an upgrade, the
//! rollback of one, or the checks and the image's transfer before one), so that its progress
//! keeps being reported.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use rpc::agent::rollout::{Action, Step, StepState, Target};
use rpc::agent::{AgentError, ErrorKind};

use crate::effects::Effects;
use crate::install::state::ClusterRecord;
use crate::node::apiserver_proxy;
use crate::state_dir::StateDir;
use operation::{Observer, PhaseOutcome};

const POLL: Duration = Duration::from_secs(2);

type Progress = Arc<Mutex<Option<Step>>>;

/// Follows the cluster until the process is stopped, once the node's join recorded it. On a
/// worker, proxies to the cluster's apiservers too ([`crate::node::apiserver_proxy`]), from
/// the start: the join starts this agent before planet, whose kubelet needs the proxy.
pub fn run(layout: &StateDir) -> anyhow::Result<()> {
    let proxy = apiserver_proxy::start(layout)?;
    // The join records the node once its planet is healthy.
    while ClusterRecord::load(layout)?.is_none() {
        std::thread::sleep(POLL);
    }
    let client = super::client(layout)?;
    let progress: Progress = Arc::default();
    let mut worker: Option<JoinHandle<()>> = None;
    let mut last_error = String::new();
    let mut started_as = stamp(&layout.gravity());
    tracing::info!("following the cluster's upgrades");
    loop {
        let runs = ClusterRecord::load(layout)?
            .context("cluster.json is missing")?
            .version;
        let step = progress.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let synced = client.sync(&runs, step.clone());
        if let (Some(proxy), Ok(synced)) = (&proxy, &synced)
            && let Err(e) = proxy.update(layout, &synced.apiservers)
        {
            tracing::warn!(error = %format!("{e:#}"), "cannot keep the apiservers' list");
        }
        match synced.map(|s| s.target) {
            // A finished step the cluster heard of, and an upgrade (or its rollback) replaced
            // this node's gravity: go on as the new one.
            Ok(_) if finished(&step) && stamp(&layout.gravity()) != started_as => {
                restart(layout);
                started_as = stamp(&layout.gravity());
            }
            Ok(Some(target)) => {
                let busy = worker.as_ref().is_some_and(|w| !w.is_finished());
                let started = step
                    .as_ref()
                    .is_some_and(|s| s.operation == target.operation && s.action == target.action);
                if !busy && !started {
                    worker = Some(start(layout.clone(), target, progress.clone()));
                }
                last_error.clear();
            }
            Ok(None) => last_error.clear(),
            Err(AgentError::Refused {
                kind: ErrorKind::NotFound,
                message,
                ..
            }) if last_error != message => {
                tracing::warn!("{message}");
                last_error = message;
            }
            Err(e) if last_error != e.to_string() => {
                tracing::warn!(error = %e, "cannot reach the cluster's agent; asking again");
                last_error = e.to_string();
            }
            Err(_) => {}
        }
        std::thread::sleep(POLL);
    }
}

fn finished(step: &Option<Step>) -> bool {
    step.as_ref()
        .is_some_and(|s| matches!(s.state, StepState::Done | StepState::Failed))
}

/// Which file `path` is (device, inode, change time): a replaced binary is another file.
fn stamp(path: &std::path::Path) -> Option<(u64, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.ctime()))
}

/// Replaces this process with the node's gravity, same arguments (systemd and gravity's
/// daemon see the same process); returns only if that fails, and is not tried again then.
fn restart(layout: &StateDir) {
    use std::os::unix::process::CommandExt;
    tracing::info!("restarting on {}", layout.gravity().display());
    let e = std::process::Command::new(layout.gravity())
        .args(["agent", "serve", "--state-dir"])
        .arg(layout.root())
        .exec();
    tracing::warn!(error = %e, "cannot restart on the new gravity; this one goes on");
}

/// Carries `target` out in a thread; its outcome ends up in `progress`.
fn start(layout: StateDir, target: Target, progress: Progress) -> JoinHandle<()> {
    let (operation, action) = (target.operation.clone(), target.action);
    let step = move |state, message: String| Step {
        operation: operation.clone(),
        action,
        state,
        message,
    };
    *progress.lock().unwrap_or_else(|e| e.into_inner()) =
        Some(step(StepState::Running, "starting".into()));
    std::thread::spawn(move || {
        tracing::info!(?target, "the cluster asks");
        let mut observer = Reporter {
            progress: progress.clone(),
        };
        let runs = || format!("runs {}", target.version);
        let result = match target.action {
            Action::Upgrade => {
                super::upgrade(&layout, &target, Effects::host(), &mut observer).map(|()| runs())
            }
            Action::Rollback => {
                super::rollback(&layout, &target, Effects::host(), &mut observer).map(|()| runs())
            }
            Action::Check => super::check(&layout, &target, Effects::host(), &mut observer),
            Action::Fetch => super::fetch(&layout, &target, &mut observer),
        };
        let done = match result {
            Ok(said) => {
                tracing::info!(?target, "done");
                step(StepState::Done, said)
            }
            Err(e) => {
                tracing::error!(?target, error = %format!("{e:#}"), "failed");
                step(StepState::Failed, format!("{e:#}"))
            }
        };
        *progress.lock().unwrap_or_else(|e| e.into_inner()) = Some(done);
    })
}

/// Hands the plan's progress to the next sync, and to the agent's log.
struct Reporter {
    progress: Progress,
}

impl Reporter {
    fn say(&self, message: String) {
        tracing::info!("{message}");
        if let Some(step) = self
            .progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            step.message = message;
        }
    }
}

impl Observer for Reporter {
    fn phase_started(&mut self, name: &str, description: &str) {
        self.say(format!("{name}: {description}"));
    }
    fn phase_finished(&mut self, name: &str, _description: &str, outcome: PhaseOutcome<'_>) {
        if let PhaseOutcome::Failed(e) = outcome {
            self.say(format!("{name} failed: {e}"));
        }
    }
    fn phase_message(&mut self, name: &str, text: &str) {
        self.say(format!("{name}: {text}"));
    }
}
