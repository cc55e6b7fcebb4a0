//! Helpers shared by the integration tests in `tests/tests/`. Each helper lives in its own module.
//!
//! These tests run the real binaries as root and change the host (mounts, namespaces, users,
//! cgroups); every helper that changes something undoes it on drop, also when a test fails.

pub mod bins;
pub mod cluster;
pub mod docker_registry;
pub mod install;
pub mod loopdev;
pub mod netns;
pub mod oci_fixture;
pub mod planet;
pub mod preflight;
pub mod serial;
pub mod upgrade;
pub mod wait;
