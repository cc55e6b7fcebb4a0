//! Runs a plan's phases in order, journaling each state change before going on.

use std::time::{Duration, Instant};

use super::failpoint::failpoint;
use super::journal::Journal;
use super::plan::{OpState, PhaseState, Plan};
use durable::now_ms;

/// One idempotent step of an operation. Running it again after an interruption (at any point
/// inside it) must end in the same state as running it once.
pub trait Phase<C> {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn run(&self, ctx: &mut C, report: &mut Report<'_>) -> anyhow::Result<()>;
    /// Undoes what `run` did (also after a partial run); idempotent too.
    fn rollback(&self, ctx: &mut C, report: &mut Report<'_>) -> anyhow::Result<()>;
}

/// How a running phase tells the user something: through the engine's observer, never by
/// printing, so that every view of the operation (terminal, JSON, a remote one) sees it.
pub struct Report<'a> {
    phase: &'static str,
    observer: &'a mut dyn Observer,
}

/// How a phase's record marks an error of its rollback.
const ROLLBACK_ERROR: &str = "rollback: ";

impl Report<'_> {
    pub fn say(&mut self, text: impl AsRef<str>) {
        self.observer.phase_message(self.phase, text.as_ref());
    }
}

pub enum PhaseOutcome<'a> {
    Completed(Duration),
    /// Completed by an earlier run: skipped.
    Skipped,
    Failed(&'a anyhow::Error),
}

/// Progress reporting, kept apart from the engine so tests and JSON output can swap it.
pub trait Observer {
    fn phase_started(&mut self, _name: &str, _description: &str) {}
    fn phase_finished(&mut self, _name: &str, _description: &str, _outcome: PhaseOutcome<'_>) {}
    /// A line a running phase wants the user to see.
    fn phase_message(&mut self, _name: &str, _text: &str) {}
}

pub struct Silent;
impl Observer for Silent {}

pub struct Engine<'a, C> {
    journal: Journal,
    phases: Vec<Box<dyn Phase<C> + 'a>>,
}

impl<'a, C> Engine<'a, C> {
    pub fn new(journal: Journal, phases: Vec<Box<dyn Phase<C> + 'a>>) -> Self {
        Engine { journal, phases }
    }

    /// The phase names and descriptions, for a new plan.
    pub fn outline(&self) -> Vec<(&'static str, &'static str)> {
        self.phases
            .iter()
            .map(|p| (p.name(), p.description()))
            .collect()
    }

    /// Runs every phase not yet completed. A failure is journaled and returned; running again
    /// (resume) retries from the failed phase.
    pub fn run(
        &self,
        plan: &mut Plan,
        ctx: &mut C,
        observer: &mut dyn Observer,
    ) -> anyhow::Result<()> {
        self.check_plan(plan)?;
        plan.state = OpState::InProgress;
        self.journal.save(plan)?;
        for phase in &self.phases {
            let name = phase.name();
            let record = plan.phase(name).expect("checked above");
            if record.state == PhaseState::Completed {
                observer.phase_finished(name, phase.description(), PhaseOutcome::Skipped);
                continue;
            }
            failpoint(name, "before");
            {
                let record = plan.phase_mut(name).expect("checked above");
                record.state = PhaseState::InProgress;
                record.started_ms = Some(now_ms());
                record.finished_ms = None;
                record.attempts += 1;
                record.error = None;
            }
            self.journal.save(plan)?;
            observer.phase_started(name, phase.description());
            let started = Instant::now();
            let result = phase.run(
                ctx,
                &mut Report {
                    phase: name,
                    observer: &mut *observer,
                },
            );
            let record = plan.phase_mut(name).expect("checked above");
            record.finished_ms = Some(now_ms());
            match result {
                Ok(()) => {
                    record.state = PhaseState::Completed;
                    self.journal.save(plan)?;
                    failpoint(name, "after");
                    observer.phase_finished(
                        name,
                        phase.description(),
                        PhaseOutcome::Completed(started.elapsed()),
                    );
                }
                Err(e) => {
                    record.state = PhaseState::Failed;
                    record.error = Some(format!("{e:#}"));
                    plan.state = OpState::Failed;
                    self.journal.save(plan)?;
                    observer.phase_finished(name, phase.description(), PhaseOutcome::Failed(&e));
                    return Err(
                        e.context(format!("phase `{name}` ({}) failed", phase.description()))
                    );
                }
            }
        }
        plan.state = OpState::Completed;
        self.journal.save(plan)?;
        Ok(())
    }

    /// Undoes, in reverse order, every phase that started (completed, failed or interrupted).
    pub fn rollback(
        &self,
        plan: &mut Plan,
        ctx: &mut C,
        observer: &mut dyn Observer,
    ) -> anyhow::Result<()> {
        self.check_plan(plan)?;
        plan.state = OpState::RollingBack;
        self.journal.save(plan)?;
        for phase in self.phases.iter().rev() {
            let name = phase.name();
            let state = plan.phase(name).expect("checked above").state;
            if matches!(state, PhaseState::Unstarted | PhaseState::RolledBack) {
                continue;
            }
            observer.phase_started(name, phase.description());
            let started = Instant::now();
            let result = phase.rollback(
                ctx,
                &mut Report {
                    phase: name,
                    observer: &mut *observer,
                },
            );
            match result {
                Ok(()) => {
                    let record = plan.phase_mut(name).expect("checked above");
                    // The error its run failed with stays (why the operation was rolled
                    // back); a failed attempt at its rollback is over.
                    record.state = PhaseState::RolledBack;
                    if record
                        .error
                        .as_deref()
                        .is_some_and(|e| e.starts_with(ROLLBACK_ERROR))
                    {
                        record.error = None;
                    }
                    self.journal.save(plan)?;
                    failpoint(name, "rollback");
                    observer.phase_finished(
                        name,
                        phase.description(),
                        PhaseOutcome::Completed(started.elapsed()),
                    );
                }
                Err(e) => {
                    plan.phase_mut(name).expect("checked above").error =
                        Some(format!("{ROLLBACK_ERROR}{e:#}"));
                    self.journal.save(plan)?;
                    observer.phase_finished(name, phase.description(), PhaseOutcome::Failed(&e));
                    return Err(e.context(format!("rolling back phase `{name}` failed; fix the cause and run `gravity plan rollback` again")));
                }
            }
        }
        plan.state = OpState::RolledBack;
        self.journal.save(plan)?;
        Ok(())
    }

    /// A journal from another gravity version may have other phases: refuse rather than guess.
    fn check_plan(&self, plan: &Plan) -> anyhow::Result<()> {
        let ours: Vec<&str> = self.phases.iter().map(|p| p.name()).collect();
        let theirs: Vec<&str> = plan.phases.iter().map(|p| p.name.as_str()).collect();
        anyhow::ensure!(
            ours == theirs,
            "the journaled {} operation has phases {theirs:?}, but this gravity runs {ours:?}: finish or roll it back with the gravity that started it",
            plan.kind
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    /// A phase that records calls and fails when told to.
    struct Step {
        name: &'static str,
        fail_run: Rc<RefCell<Option<&'static str>>>,
    }

    #[derive(Default)]
    struct Log(Vec<String>);

    impl Phase<Log> for Step {
        fn name(&self) -> &'static str {
            self.name
        }
        fn description(&self) -> &'static str {
            "a step"
        }
        fn run(&self, ctx: &mut Log, report: &mut Report<'_>) -> anyhow::Result<()> {
            ctx.0.push(format!("run {}", self.name));
            report.say(format!("ran {}", self.name));
            if *self.fail_run.borrow() == Some(self.name) {
                anyhow::bail!("{} broke", self.name);
            }
            Ok(())
        }
        fn rollback(&self, ctx: &mut Log, _: &mut Report<'_>) -> anyhow::Result<()> {
            ctx.0.push(format!("undo {}", self.name));
            Ok(())
        }
    }

    fn setup(fail: Rc<RefCell<Option<&'static str>>>) -> (tempfile::TempDir, Engine<'static, Log>) {
        let dir = tempfile::tempdir().unwrap();
        let phases: Vec<Box<dyn Phase<Log>>> = ["a", "b", "c"]
            .into_iter()
            .map(|name| {
                Box::new(Step {
                    name,
                    fail_run: fail.clone(),
                }) as Box<dyn Phase<Log>>
            })
            .collect();
        let engine = Engine::new(Journal::new(dir.path()), phases);
        (dir, engine)
    }

    #[test]
    fn a_failed_phase_is_journaled_and_resume_retries_from_it() {
        let fail = Rc::new(RefCell::new(Some("b")));
        let (dir, engine) = setup(fail.clone());
        let mut plan = Plan::new("install", serde_json::json!({}), &engine.outline());
        let mut log = Log::default();
        let err = engine.run(&mut plan, &mut log, &mut Silent).unwrap_err();
        assert!(
            format!("{err:#}").contains("phase `b` (a step) failed: b broke"),
            "{err:#}"
        );

        let saved = Journal::new(dir.path()).load().unwrap().unwrap();
        assert_eq!(saved.state, OpState::Failed);
        let states: Vec<_> = saved.phases.iter().map(|p| p.state).collect();
        assert_eq!(
            states,
            [
                PhaseState::Completed,
                PhaseState::Failed,
                PhaseState::Unstarted
            ]
        );
        assert_eq!(saved.phases[1].error.as_deref(), Some("b broke"));

        *fail.borrow_mut() = None;
        let mut resumed = saved;
        engine.run(&mut resumed, &mut log, &mut Silent).unwrap();
        assert_eq!(log.0, ["run a", "run b", "run b", "run c"]);
        assert!(resumed.is_complete());
        assert_eq!(resumed.phases[1].attempts, 2);
    }

    /// Collects what phases say.
    #[derive(Default)]
    struct Said(Vec<String>);
    impl Observer for Said {
        fn phase_message(&mut self, name: &str, text: &str) {
            self.0.push(format!("{name}: {text}"));
        }
    }

    #[test]
    fn phases_speak_through_the_observer() {
        let (_dir, engine) = setup(Rc::new(RefCell::new(None)));
        let mut plan = Plan::new("install", serde_json::json!({}), &engine.outline());
        let mut said = Said::default();
        engine
            .run(&mut plan, &mut Log::default(), &mut said)
            .unwrap();
        assert_eq!(said.0, ["a: ran a", "b: ran b", "c: ran c"]);
    }

    #[test]
    fn an_interrupted_phase_is_run_again() {
        let (dir, engine) = setup(Rc::new(RefCell::new(None)));
        let mut plan = Plan::new("install", serde_json::json!({}), &engine.outline());
        // As a kill -9 inside phase b leaves it.
        plan.phases[0].state = PhaseState::Completed;
        plan.phases[1].state = PhaseState::InProgress;
        Journal::new(dir.path()).save(&plan).unwrap();
        let mut plan = Journal::new(dir.path()).load().unwrap().unwrap();
        let mut log = Log::default();
        engine.run(&mut plan, &mut log, &mut Silent).unwrap();
        assert_eq!(log.0, ["run b", "run c"]);
    }

    #[test]
    fn rollback_undoes_started_phases_in_reverse() {
        let fail = Rc::new(RefCell::new(Some("c")));
        let (_dir, engine) = setup(fail);
        let mut plan = Plan::new("install", serde_json::json!({}), &engine.outline());
        let mut log = Log::default();
        engine.run(&mut plan, &mut log, &mut Silent).unwrap_err();
        log.0.clear();
        engine.rollback(&mut plan, &mut log, &mut Silent).unwrap();
        assert_eq!(log.0, ["undo c", "undo b", "undo a"]);
        assert_eq!(plan.state, OpState::RolledBack);
        assert!(
            plan.phases
                .iter()
                .all(|p| p.state == PhaseState::RolledBack)
        );
        // Why it was rolled back stays in the journal.
        assert_eq!(plan.phases[2].error.as_deref(), Some("c broke"));
    }

    #[test]
    fn a_plan_from_another_version_is_refused() {
        let (_dir, engine) = setup(Rc::new(RefCell::new(None)));
        let mut plan = Plan::new("install", serde_json::json!({}), &[("a", ""), ("x", "")]);
        let e = engine
            .run(&mut plan, &mut Log::default(), &mut Silent)
            .unwrap_err();
        assert!(e.to_string().contains("this gravity runs"), "{e}");
    }
}
