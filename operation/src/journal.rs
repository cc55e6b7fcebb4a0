//! The plan on disk: `<state>/operation/current.json`, replaced atomically and durably (write a
//! temporary file, fsync it, rename it over, fsync the directory) before and after every phase.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::plan::{FORMAT, Plan};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write the operation journal {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the operation journal {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the operation journal {} is damaged ({reason}); move it aside to start over", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("another gravity operation is running on this host (it holds {}); wait for it or stop it", path.display())]
    Busy { path: PathBuf },
}

#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    pub fn new(state_dir: &Path) -> Journal {
        Journal {
            dir: state_dir.join("operation"),
        }
    }

    pub fn current_path(&self) -> PathBuf {
        self.dir.join("current.json")
    }

    /// The current (or last) operation, if any.
    pub fn load(&self) -> Result<Option<Plan>, JournalError> {
        let path = self.current_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(JournalError::Read { path, source }),
        };
        let plan: Plan = serde_json::from_slice(&bytes).map_err(|e| JournalError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if plan.format != FORMAT {
            return Err(JournalError::Corrupt {
                path,
                reason: format!("format {} is not {FORMAT}", plan.format),
            });
        }
        Ok(Some(plan))
    }

    pub fn save(&self, plan: &Plan) -> Result<(), JournalError> {
        let path = self.current_path();
        let err = |source| JournalError::Write {
            path: path.clone(),
            source,
        };
        let mut bytes = serde_json::to_vec_pretty(plan).expect("plans serialise");
        bytes.push(b'\n');
        durable::write_atomic(&path, &bytes).map_err(err)
    }

    /// Moves a finished operation into `history/` so a new one can start.
    pub fn archive(&self, plan: &Plan) -> Result<(), JournalError> {
        let history = self.dir.join("history");
        let target = history.join(format!("{}.json", plan.id));
        let err = |source| JournalError::Write {
            path: target.clone(),
            source,
        };
        std::fs::create_dir_all(&history).map_err(err)?;
        std::fs::rename(self.current_path(), &target).map_err(err)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(err)
    }

    /// Copies a finished operation into `history/`, leaving it current until the next one is
    /// saved over it: a crash between the two still finds it.
    pub fn keep_in_history(&self, plan: &Plan) -> Result<(), JournalError> {
        let target = self.dir.join("history").join(format!("{}.json", plan.id));
        let mut bytes = serde_json::to_vec_pretty(plan).expect("plans serialise");
        bytes.push(b'\n');
        durable::write_atomic(&target, &bytes).map_err(|source| JournalError::Write {
            path: target.clone(),
            source,
        })
    }

    /// Holds the host-wide operation lock until dropped.
    pub fn lock(&self) -> Result<OperationLock, JournalError> {
        let path = self.dir.join("lock");
        std::fs::create_dir_all(&self.dir).map_err(|source| JournalError::Write {
            path: path.clone(),
            source,
        })?;
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| JournalError::Write {
                path: path.clone(),
                source,
            })?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(OperationLock(lock)),
            Err(_) => Err(JournalError::Busy { path }),
        }
    }
}

/// The kernel drops the lock when the holder dies, so a crash never leaves it behind.
pub struct OperationLock(#[allow(dead_code)] Flock<File>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PhaseState;

    #[test]
    fn saved_plans_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        assert!(j.load().unwrap().is_none());
        let mut plan = Plan::new(
            "install",
            serde_json::json!({"uid": 1001}),
            &[("a", "first"), ("b", "second")],
        );
        plan.phases[0].state = PhaseState::Completed;
        j.save(&plan).unwrap();
        assert_eq!(j.load().unwrap().unwrap(), plan);
        j.archive(&plan).unwrap();
        assert!(j.load().unwrap().is_none());
        assert!(
            dir.path()
                .join(format!("operation/history/{}.json", plan.id))
                .exists()
        );
    }

    /// The journal is a contract with later versions: pinned by a golden file.
    #[test]
    fn golden_journal() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        let mut plan = Plan::new(
            "install",
            serde_json::json!({"serviceUid": 1001}),
            &[("checks", "Check the host"), ("start", "Start planet")],
        );
        plan.id = "install-1700000000000".into();
        plan.created_ms = 1_700_000_000_000;
        plan.phases[0].state = PhaseState::Completed;
        plan.phases[0].started_ms = Some(1_700_000_000_100);
        plan.phases[0].finished_ms = Some(1_700_000_000_200);
        plan.phases[0].attempts = 1;
        plan.phases[1].state = PhaseState::Failed;
        plan.phases[1].attempts = 1;
        plan.phases[1].error = Some("planet did not start".into());
        j.save(&plan).unwrap();
        golden::check_in(
            env!("CARGO_MANIFEST_DIR"),
            "journal.json",
            &std::fs::read_to_string(j.current_path()).unwrap(),
        );
    }

    #[test]
    fn a_damaged_journal_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        std::fs::create_dir_all(dir.path().join("operation")).unwrap();
        std::fs::write(j.current_path(), b"{ half").unwrap();
        let e = j.load().unwrap_err().to_string();
        assert!(e.contains("damaged") && e.contains("move it aside"), "{e}");
    }

    #[test]
    fn only_one_operation_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        let held = j.lock().unwrap();
        assert!(matches!(j.lock(), Err(JournalError::Busy { .. })));
        drop(held);
        j.lock().unwrap();
    }
}
