//! One module per family of checks. Each turns what it finds into [`crate::CheckResult`]s.

pub mod clock;
pub mod cpu_ram;
pub mod custom;
pub mod devices;
pub mod disk;
pub mod endpoints;
pub mod kernel;
pub mod network;
pub mod os;
pub mod ports;
pub mod volumes;
