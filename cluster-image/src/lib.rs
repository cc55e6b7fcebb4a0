//! The cluster image: its manifest, units, and the tarball that carries it.

pub mod archive;
pub mod layout;
pub mod manifest;
pub mod service_user;
pub mod units;

pub use manifest::Manifest;
