//! A lock across test processes for tests that use host-wide resources (well-known ports,
//! cgroups, the `planet` user): hold it for the test's duration.

use std::fs::File;

use nix::fcntl::{Flock, FlockArg};

pub struct HostLock(#[allow(dead_code)] Flock<File>);

/// Blocks until no other test holds the lock named `name`.
pub fn lock(name: &str) -> HostLock {
    let path = std::env::temp_dir().join(format!("gravity-tests-{name}.lock"));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .expect("lock file");
    HostLock(
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("flock"),
    )
}
