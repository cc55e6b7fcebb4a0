//! Effects on the host that the node operations need beyond planet: the service user. Each sits
//! behind a small trait (or reads through a root prefix) so that the logic above it is
//! unit-tested without root.

pub mod user;

pub(crate) use planet::host::{find_tool, run_tool, under};
