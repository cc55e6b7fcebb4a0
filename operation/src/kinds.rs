//! The kinds of plan this gravity can drive (install today; join, upgrade and uninstall next), so
//! that `gravity plan resume|rollback` continues whatever operation the journal holds with the
//! code that started it, not always with install's.

use std::path::Path;

use crate::engine::Observer;
use crate::plan::Plan;

/// Resumes and rolls back the journaled plans of one kind.
pub trait PlanKind {
    /// The `kind` the journal records, e.g. `install`.
    fn kind(&self) -> &'static str;
    /// How many phases a plan of this kind has, for progress.
    fn phase_count(&self) -> usize;
    /// Continues the journaled plan where it stopped.
    fn resume(&self, state_dir: &Path, observer: &mut dyn Observer) -> anyhow::Result<Plan>;
    /// Undoes the journaled plan's started phases in reverse.
    fn rollback(&self, state_dir: &Path, observer: &mut dyn Observer) -> anyhow::Result<Plan>;
}

#[derive(Debug, thiserror::Error)]
#[error(
    "the journaled operation is a `{kind}`, which this gravity cannot continue (it knows: {known}); use the gravity that started it"
)]
pub struct UnknownKind {
    pub kind: String,
    pub known: String,
}

/// Every plan kind, looked up by the name a journal records.
#[derive(Default)]
pub struct Registry {
    kinds: Vec<Box<dyn PlanKind>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    pub fn with(mut self, kind: impl PlanKind + 'static) -> Registry {
        assert!(
            self.kinds.iter().all(|k| k.kind() != kind.kind()),
            "plan kind `{}` registered twice",
            kind.kind()
        );
        self.kinds.push(Box::new(kind));
        self
    }

    pub fn get(&self, kind: &str) -> Result<&dyn PlanKind, UnknownKind> {
        self.kinds
            .iter()
            .find(|k| k.kind() == kind)
            .map(|k| k.as_ref())
            .ok_or_else(|| UnknownKind {
                kind: kind.to_string(),
                known: self
                    .kinds
                    .iter()
                    .map(|k| k.kind())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(&'static str);
    impl PlanKind for Fake {
        fn kind(&self) -> &'static str {
            self.0
        }
        fn phase_count(&self) -> usize {
            1
        }
        fn resume(&self, _: &Path, _: &mut dyn Observer) -> anyhow::Result<Plan> {
            Ok(Plan::new(self.0, serde_json::json!({}), &[("resumed", "")]))
        }
        fn rollback(&self, _: &Path, _: &mut dyn Observer) -> anyhow::Result<Plan> {
            Ok(Plan::new(self.0, serde_json::json!({}), &[("undone", "")]))
        }
    }

    #[test]
    fn plans_dispatch_by_their_kind() {
        let r = Registry::new().with(Fake("install")).with(Fake("join"));
        let plan = r
            .get("join")
            .unwrap()
            .resume(Path::new("/x"), &mut crate::Silent)
            .unwrap();
        assert_eq!(
            (plan.kind.as_str(), plan.phases[0].name.as_str()),
            ("join", "resumed")
        );
        let e = r.get("upgrade").err().unwrap().to_string();
        assert!(
            e.contains("`upgrade`") && e.contains("install, join"),
            "{e}"
        );
    }
}
