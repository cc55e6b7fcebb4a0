//! The joining node's phases, one file each, in the order they run.

mod authenticate;
mod checks;
mod fetch;

use super::plan::Ctx;
use operation::Phase;

pub fn all() -> Vec<Box<dyn Phase<Ctx>>> {
    vec![
        Box::new(authenticate::Authenticate),
        Box::new(fetch::Fetch),
        Box::new(checks::Checks),
    ]
}
