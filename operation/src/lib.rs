//! Operations (install; join, upgrade and uninstall next) as plans of named phases, journaled
//! durably so that any interruption can be resumed, and started phases can be rolled back.

mod engine;
mod failpoint;
mod holders;
mod journal;
mod kinds;
mod plan;

pub use engine::{Engine, Observer, Phase, PhaseOutcome, Report, Silent};
pub use failpoint::failpoint;
pub use journal::{Journal, JournalError, OperationLock};
pub use kinds::{PlanKind, Registry, UnknownKind};
pub use plan::{OpState, PhaseRecord, PhaseState, Plan};
