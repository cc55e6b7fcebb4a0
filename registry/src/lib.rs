//! Vendoring container images into cluster images, without a Docker daemon.
//!
//! `tele build` uses [`discover`] to find the images a cluster image's resources reference,
//! [`pull`] to fetch them into an OCI image layout ([`store`]), and packs that layout under
//! `registry/`. `gravity install` uses [`push`] to put the layout into planet's registry, where
//! pods find each image as `registry.local:5000/<repository>:<tag>` ([`reference`]).

pub mod auth;
pub mod discover;
pub mod error;
pub mod pull;
pub mod push;
pub mod reference;
pub mod store;

pub use auth::DockerConfig;
pub use discover::{
    Discovery, Origin, RenderChart, discover_dir, discover_dir_rendering, discover_manifest,
    discover_text,
};
pub use error::Error;
pub use pull::{LocalSource, PullOptions, Vendored, pull_all};
pub use push::{PushOptions, PushProgress, PushReport, push_layout, push_layout_async};
pub use reference::{ImageRef, LOCAL_REGISTRY, ReferenceError};
pub use store::{Descriptor, Index, OciLayout, Platform, StoredImage};

/// The tree builds rustls without a default crypto provider so that exactly one (ring) is ever
/// linked: every TLS client of ours installs it through this before connecting.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
