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
    #[error("another gravity operation is running on this host (it holds {}{}); wait for it or stop it", path.display(), held_by(holders))]
    Busy { path: PathBuf, holders: Vec<String> },
}

/// How long taking the operation lock waits for a holder to let go.
const LOCK_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

fn held_by(holders: &[String]) -> String {
    if holders.is_empty() {
        String::new()
    } else {
        format!(": {}", holders.join(", "))
    }
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
        let mut file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| JournalError::Write {
                path: path.clone(),
                source,
            })?;
        // An operation that was just killed can leave its lock held for a moment: a child of
        // it between fork and exec shares the descriptor until it execs or dies too.
        let deadline = std::time::Instant::now() + LOCK_GRACE;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(OperationLock(lock)),
                Err((f, _)) if std::time::Instant::now() < deadline => {
                    file = f;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(_) => {
                    let holders = super::holders::of(&path);
                    return Err(JournalError::Busy { path, holders });
                }
            }
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

    #[test]
    fn a_lock_let_go_of_within_the_grace_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        let held = j.lock().unwrap();
        let letting_go = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(held);
        });
        j.lock().unwrap();
        letting_go.join().unwrap();
    }

    #[test]
    fn a_busy_lock_names_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        std::fs::create_dir_all(dir.path().join("operation")).unwrap();
        let lock = dir.path().join("operation/lock");
        // util-linux's flock(1) takes the lock and keeps it while its command runs.
        let mut holder = std::process::Command::new("flock")
            .arg(&lock)
            .args(["sleep", "30"])
            .spawn()
            .unwrap();
        while std::fs::metadata(&lock).is_err() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let started = std::time::Instant::now();
        let e = loop {
            match j.lock() {
                // flock(1) may not hold it yet.
                Ok(l) if started.elapsed().as_secs() < 10 => drop(l),
                Ok(_) => panic!("flock(1) never took the lock"),
                Err(e) => break e.to_string(),
            }
        };
        holder.kill().unwrap();
        holder.wait().unwrap();
        let expected = format!("pid {} (flock {}", holder.id(), lock.display());
        assert!(
            e.contains("another gravity operation") && e.contains(&expected),
            "{e}"
        );
    }
}
