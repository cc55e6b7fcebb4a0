//! The application's life cycle hooks: each a Kubernetes Job (the manifest's `hooks.<name>.job`)
//! run in planet's Kubernetes when its event happens. The install saves the manifest's hooks
//! into the state directory (`<state>/hooks/<name>.yaml`), so later commands run them without
//! the cluster image.

pub mod job;
pub mod kubectl;
pub mod run;
pub mod status;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use cluster_image::Manifest;

use crate::effects::Effects;
use crate::state_dir::StateDir;

/// How long a hook may run before its operation fails (the Job is left for inspection).
pub const TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// The status hook answers a question someone waits for.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(120);

/// The hooks that see the merged Helm values at `/var/lib/gravity/helm/values.yaml`.
pub fn takes_values(hook: &str) -> bool {
    matches!(hook, "install" | "postInstall" | "update" | "postUpdate")
}

/// Whether a hook ran, or the manifest has none of that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    Done,
    NotDefined,
}

/// Writes the manifest's hooks to `<state>/hooks/`; the names of those it wrote.
pub fn save(manifest: &Manifest, layout: &StateDir) -> anyhow::Result<Vec<&'static str>> {
    let dir = layout.hooks();
    crate::install::state::remove_dir(&dir)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut saved = Vec::new();
    if let Some(hooks) = &manifest.hooks {
        for (name, hook) in hooks.iter() {
            durable::write_atomic(&dir.join(format!("{name}.yaml")), hook.job.as_bytes())
                .with_context(|| format!("cannot save the {name} hook in {}", dir.display()))?;
            saved.push(name);
        }
    }
    Ok(saved)
}

/// The saved Job of `hook`, if the manifest has it.
pub fn saved(layout: &StateDir, hook: &str) -> anyhow::Result<Option<String>> {
    let path = layout.hooks().join(format!("{hook}.yaml"));
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Where a hook run's log lines are kept.
pub fn log_path(layout: &StateDir, hook: &str, operation: &str) -> PathBuf {
    layout
        .logs()
        .join("hooks")
        .join(format!("{hook}-{operation}.log"))
}

/// Runs `hook` for `operation` and waits for its Job; `say` gets its progress and log lines.
pub fn run(
    effects: &Effects,
    layout: &StateDir,
    hook: &str,
    operation: &str,
    service_uid: u32,
    timeout: Duration,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<Ran> {
    run_with(
        effects,
        layout,
        hook,
        operation,
        service_uid,
        None,
        timeout,
        say,
    )
}

/// The node hooks, run on the node that installed the cluster when other nodes join or leave.
pub const NODE_HOOKS: &[&str] = &[
    "preNodeAdd",
    "postNodeAdd",
    "preNodeRemove",
    "postNodeRemove",
];

/// Runs the node hook `hook` (one of [`NODE_HOOKS`]) for `node`, which its Job sees as
/// `GRAVITY_NODE_NAME`; planet must run.
pub fn run_for_node(
    effects: &Effects,
    layout: &StateDir,
    hook: &str,
    node: &str,
    timeout: Duration,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<Ran> {
    anyhow::ensure!(NODE_HOOKS.contains(&hook), "{hook} is not a node hook");
    if saved(layout, hook)?.is_none() {
        return Ok(Ran::NotDefined);
    }
    let config = planet::config::PlanetConfig::load(layout.root())
        .with_context(|| format!("no cluster is installed in {}", layout.root().display()))?;
    let operation = format!("{node}-{}", durable::now_ms());
    run_with(
        effects,
        layout,
        hook,
        &operation,
        config.service_uid,
        Some(node),
        timeout,
        say,
    )
}

/// [`run_for_node`] on this host, with the hooks' time limit.
pub fn run_node_hook(
    layout: &StateDir,
    hook: &str,
    node: &str,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<Ran> {
    run_for_node(&Effects::host(), layout, hook, node, TIMEOUT, say)
}

#[allow(clippy::too_many_arguments)]
fn run_with(
    effects: &Effects,
    layout: &StateDir,
    hook: &str,
    operation: &str,
    service_uid: u32,
    node: Option<&str>,
    timeout: Duration,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<Ran> {
    let Some(text) = saved(layout, hook)? else {
        return Ok(Ran::NotDefined);
    };
    let this_node = planet::config::PlanetConfig::load(layout.root())
        .ok()
        .map(|c| c.node.name);
    let prepared = job::prepare(
        &text,
        &job::Context {
            hook,
            operation,
            service_uid,
            values: takes_values(hook),
            backup: matches!(hook, "backup" | "restore"),
            node,
            on_node: this_node.as_deref(),
        },
    )?;
    effects.hooks.run(
        layout.root(),
        hook,
        &prepared,
        timeout,
        &log_path(layout, hook, operation),
        say,
    )?;
    Ok(Ran::Done)
}

/// Runs a hook Job in the Kubernetes of planet of a state directory.
pub trait HookRunner {
    fn run(
        &self,
        state_dir: &Path,
        hook: &str,
        job: &job::PreparedJob,
        timeout: Duration,
        log: &Path,
        say: &mut dyn FnMut(String),
    ) -> anyhow::Result<()>;

    /// helm's merge of Helm values files and `--set` assignments, as YAML (planet's helm).
    fn merge_values(
        &self,
        state_dir: &Path,
        files: &[PathBuf],
        sets: &[String],
    ) -> anyhow::Result<String>;
}

/// Through planet's kubectl.
pub struct KubeHooks;

impl HookRunner for KubeHooks {
    fn run(
        &self,
        state_dir: &Path,
        hook: &str,
        job: &job::PreparedJob,
        timeout: Duration,
        log: &Path,
        say: &mut dyn FnMut(String),
    ) -> anyhow::Result<()> {
        let kubectl = kubectl::Kubectl::of(state_dir)?;
        run::run(&kubectl, hook, job, timeout, log, say)
    }

    fn merge_values(
        &self,
        state_dir: &Path,
        files: &[PathBuf],
        sets: &[String],
    ) -> anyhow::Result<String> {
        let pid = planet::status::Status::running_init_pid(state_dir)
            .context("planet is not running: helm in it merges the values")?;
        let helm = planet::inside::host_path(pid, "/usr/bin/helm");
        anyhow::ensure!(
            helm.exists(),
            "this planet image has no helm (/usr/bin/helm) to merge the Helm values with"
        );
        crate::install::values::merge_with_helm(&helm, files, sets)
    }
}

/// Runs `hook` now for a command (`gravity app start`, `gravity backup`, ...): planet must run.
pub fn run_now(
    effects: &Effects,
    layout: &StateDir,
    hook: &str,
    timeout: Duration,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<Ran> {
    if saved(layout, hook)?.is_none() {
        return Ok(Ran::NotDefined);
    }
    let config = planet::config::PlanetConfig::load(layout.root())
        .with_context(|| format!("no cluster is installed in {}", layout.root().display()))?;
    let operation = format!("now-{}", durable::now_ms());
    run(
        effects,
        layout,
        hook,
        &operation,
        config.service_uid,
        timeout,
        say,
    )
}

/// For [`run_now`]: the hook's progress and log lines on stderr.
pub fn to_stderr(hook: &str) -> impl FnMut(String) + '_ {
    move |line| eprintln!("  {hook}: {line}")
}
