//! The install phases, one file each, in the order they run.

mod agent;
mod checks;
mod configure;
pub(super) mod finish;
mod health;
mod images;
pub(super) mod kernel;
mod planet_image;
pub(super) mod service;
mod start;
pub(super) mod user;
pub(super) mod volumes;

use super::Ctx;
use operation::Phase;

pub fn all() -> Vec<Box<dyn Phase<Ctx>>> {
    vec![
        Box::new(agent::Agent),
        Box::new(checks::Checks),
        Box::new(kernel::Kernel),
        Box::new(user::User),
        Box::new(planet_image::PlanetImage),
        Box::new(configure::Configure),
        Box::new(volumes::Volumes),
        Box::new(service::Service),
        Box::new(start::Start),
        Box::new(health::Health),
        Box::new(images::Images),
        Box::new(finish::Finish),
    ]
}
