//! Operations (install, later join and upgrade) as plans of named phases, journaled durably so
//! that any interruption can be resumed, and completed phases can be rolled back.

mod engine;
mod failpoint;
mod journal;
mod plan;

pub use engine::{Engine, Observer, Phase, PhaseOutcome, Silent};
pub use failpoint::failpoint;
pub use journal::{Journal, JournalError, OperationLock};
pub use plan::{OpState, PhaseRecord, PhaseState, Plan, now_ms};
