//! A rolling upgrade's exchange with each joined node. The first node's upgrade writes what a
//! node should run (its [`Target`]); the node's agent asks for it ([`super::Request::Sync`])
//! and says what it runs and how its step goes ([`Report`]). Both are files under one
//! directory with one writer each (the upgrade writes targets, the agent reports), so the two
//! processes need no lock, and either may restart at any time.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a node is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Run `version` (fetched from the first node's agent).
    Upgrade,
    /// Undo the operation's upgrade: run what the node ran before it.
    Rollback,
    /// Run `version`'s preflight checks (its manifest comes with the target) and change
    /// nothing: before the upgrade changes anything anywhere.
    Check,
    /// Fetch `version`'s cluster image (the first node serves it staged, beside the installed
    /// one) and change nothing else: before the first node's restart.
    Fetch,
}

/// What the cluster wants a node to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// The first node's upgrade operation.
    pub operation: String,
    pub action: Action,
    /// The version the node runs once the action is done (the one checked, for a check).
    pub version: String,
    /// A check's: the new version's manifest (`app.yaml`, its check scripts inline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// The checks the upgrade was told to ignore (`--ignore-preflight-errors`): on every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_preflight_errors: Vec<String>,
}

impl Target {
    pub fn new(operation: &str, action: Action, version: &str) -> Target {
        Target {
            operation: operation.to_string(),
            action,
            version: version.to_string(),
            manifest: None,
            ignore_preflight_errors: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    Running,
    Done,
    Failed,
}

/// How a node's step for a target goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub operation: String,
    pub action: Action,
    pub state: StepState,
    /// The step's last line of progress, or why it failed.
    pub message: String,
}

impl Step {
    /// Whether this step is `target`'s, finished as `state`.
    pub fn is(&self, target: &Target, state: StepState) -> bool {
        self.operation == target.operation && self.action == target.action && self.state == state
    }
}

/// A version the first node's agent serves beside the installed one (an upgrade's, before it
/// runs anywhere), so that every node can fetch its image before anything changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Staged {
    pub version: String,
    /// Its unpacked cluster image.
    pub image_dir: PathBuf,
}

/// What a node's agent last said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The cluster version the node runs.
    pub runs: String,
    pub step: Option<Step>,
    /// When it said so (milliseconds since the epoch, the first node's clock).
    pub at_ms: u64,
}

/// A node's files end in `.target.json` or `.report.json`: this is none of theirs.
const STAGED: &str = "staged.json";

/// The targets and reports of every joined node.
#[derive(Debug, Clone)]
pub struct Rollout {
    dir: PathBuf,
}

impl Rollout {
    pub fn new(dir: &Path) -> Rollout {
        Rollout {
            dir: dir.to_path_buf(),
        }
    }

    /// The cluster's, beside the records of its joined nodes.
    pub fn of(nodes_dir: &Path) -> Rollout {
        Rollout::new(&nodes_dir.join("rollout"))
    }

    fn path(&self, node: &str, what: &str) -> PathBuf {
        self.dir.join(format!("{node}.{what}.json"))
    }

    fn read<T: serde::de::DeserializeOwned>(&self, path: &Path) -> io::Result<Option<T>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is damaged: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn write<T: Serialize>(&self, path: &Path, value: &T) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
        durable::write_atomic(path, &bytes)
    }

    pub fn target(&self, node: &str) -> io::Result<Option<Target>> {
        self.read(&self.path(node, "target"))
    }

    pub fn set_target(&self, node: &str, target: &Target) -> io::Result<()> {
        self.write(&self.path(node, "target"), target)
    }

    pub fn report(&self, node: &str) -> io::Result<Option<Report>> {
        self.read(&self.path(node, "report"))
    }

    pub fn set_report(&self, node: &str, report: &Report) -> io::Result<()> {
        self.write(&self.path(node, "report"), report)
    }

    /// The version staged for the nodes to fetch, if any.
    pub fn staged(&self) -> io::Result<Option<Staged>> {
        self.read(&self.dir.join(STAGED))
    }

    pub fn stage(&self, staged: &Staged) -> io::Result<()> {
        self.write(&self.dir.join(STAGED), staged)
    }

    pub fn unstage(&self) -> io::Result<()> {
        durable::remove_file(&self.dir.join(STAGED))
    }

    /// Forgets a node that left the cluster.
    pub fn forget(&self, node: &str) -> io::Result<()> {
        for what in ["target", "report"] {
            durable::remove_file(&self.path(node, what))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_reports_are_kept_per_node_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let rollout = Rollout::new(&dir.path().join("rollout"));
        assert_eq!(rollout.target("b").unwrap(), None);
        let target = Target::new("op", Action::Upgrade, "1.1.0");
        rollout.set_target("b", &target).unwrap();
        let step = Step {
            operation: "op".into(),
            action: Action::Upgrade,
            state: StepState::Done,
            message: "ok".into(),
        };
        assert!(step.is(&target, StepState::Done));
        assert!(!step.is(
            &Target {
                action: Action::Rollback,
                ..target.clone()
            },
            StepState::Done
        ));
        let report = Report {
            runs: "1.1.0".into(),
            step: Some(step),
            at_ms: 1,
        };
        rollout.set_report("b", &report).unwrap();
        assert_eq!(rollout.target("b").unwrap(), Some(target));
        assert_eq!(rollout.report("b").unwrap(), Some(report));
        assert_eq!(rollout.target("c").unwrap(), None);
        rollout.forget("b").unwrap();
        rollout.forget("b").unwrap();
        assert_eq!(rollout.report("b").unwrap(), None);
        std::fs::write(dir.path().join("rollout/c.target.json"), "{").unwrap();
        let e = rollout.target("c").unwrap_err();
        assert!(e.to_string().contains("c.target.json is damaged"), "{e}");
        assert_eq!(rollout.staged().unwrap(), None);
        let staged = Staged {
            version: "1.1.0".into(),
            image_dir: "/images/x-1.1.0".into(),
        };
        rollout.stage(&staged).unwrap();
        assert_eq!(rollout.staged().unwrap(), Some(staged));
        rollout.unstage().unwrap();
        rollout.unstage().unwrap();
        assert_eq!(rollout.staged().unwrap(), None);
    }
}
