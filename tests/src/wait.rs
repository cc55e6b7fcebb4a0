//! Waiting for what a cluster does in its own time.

use std::time::{Duration, Instant};

/// Retries `probe` until it succeeds, for at most `timeout`; panics with its last error.
pub fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(v) => return v,
            Err(e) if start.elapsed() > timeout => panic!("{what} after {timeout:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}
