//! Why planet took long to stop: its systemd waits up to `DefaultTimeoutStopSec` for each unit
//! (or a pod's scope) that ignores SIGTERM before it kills it. The journal (a host volume, so
//! it outlives the stop) names them.

use std::path::Path;
use std::time::SystemTime;

/// How many of the lines a slow stop's explanation carries.
const MAX_LINES: usize = 4;

/// systemd's words, since `since`, for the units it had to kill when their stop timed out,
/// read from planet's journal on the host; none where that is not readable.
pub fn timed_out(state_dir: &Path, since: SystemTime) -> Vec<String> {
    let Ok(since) = since.duration_since(SystemTime::UNIX_EPOCH) else {
        return Vec::new();
    };
    pick(&crate::journal::read(state_dir, since.as_secs(), &[]))
}

/// The lines of a journal's text that say a stop timed out.
fn pick(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.contains("timed out") && (l.contains("stop") || l.contains("Stop")))
        .take(MAX_LINES)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_stops_that_timed_out_are_picked() {
        let journal = "\
Stopping planet-etcd.service - etcd...
cri-containerd-4f1e.scope: Stopping timed out. Killing.
planet-etcd.service: Deactivated successfully.
kubelet.service: State 'stop-sigterm' timed out. Killing.
planet-registry.service: start operation timed out. Terminating.
";
        assert_eq!(
            super::pick(journal),
            [
                "cri-containerd-4f1e.scope: Stopping timed out. Killing.",
                "kubelet.service: State 'stop-sigterm' timed out. Killing."
            ]
        );
    }
}
