//! The cluster image: its manifest, units, and the tarball that carries it.

pub mod manifest;
pub mod units;

pub use manifest::Manifest;
