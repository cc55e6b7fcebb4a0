//! What every node operation (install today; join and upgrade next) does to put planet on this
//! node: its preflight checks, the mapping from the manifest to planet's configuration, and
//! which planet image runs.

pub mod apiserver_proxy;
pub mod checks;
pub mod endpoints;
pub mod identity;
pub mod kubernetes;
pub mod planet_config;
pub mod planet_source;

pub use checks::run_checks;
pub use identity::NodeIdentity;
pub use planet_config::{PlanetOptions, planet_config};
pub use planet_source::source_for;
