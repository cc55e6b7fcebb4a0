//! Locks across test processes for tests that use host-wide resources (well-known ports,
//! cgroups, the `planet` user, `/etc/sysctl.d`): a reader-writer lock per name, held for the
//! test's duration. Tests that only need the resource to stay as it is run side by side
//! ([`shared`]); a test that changes it or watches it change runs alone ([`lock`]).

use std::fs::File;

use nix::fcntl::{Flock, FlockArg};

pub struct HostLock(#[allow(dead_code)] Flock<File>);

fn open(name: &str) -> File {
    let path = std::env::temp_dir().join(format!("gravity-tests-{name}.lock"));
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .expect("lock file")
}

fn take(name: &str, how: FlockArg) -> Result<HostLock, nix::Error> {
    Flock::lock(open(name), how)
        .map(HostLock)
        .map_err(|(_, e)| e)
}

/// Blocks until no other test holds `name`, then holds it alone.
pub fn lock(name: &str) -> HostLock {
    take(name, FlockArg::LockExclusive).expect("flock")
}

/// Blocks while a test holds `name` alone, then holds it beside the other shared holders.
pub fn shared(name: &str) -> HostLock {
    take(name, FlockArg::LockShared).expect("flock")
}

/// `name` held alone, if nobody else holds it right now: e.g. the last of the shared holders
/// tidies up what they shared.
pub fn try_alone(name: &str) -> Option<HostLock> {
    take(name, FlockArg::LockExclusiveNonblock).ok()
}
