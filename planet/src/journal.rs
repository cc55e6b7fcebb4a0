//! planet's journal as the host reads it: journald inside planet keeps it on a host volume, so
//! it outlives planet and is readable when planet is stopped or stuck.

use std::path::Path;
use std::process::Command;

use crate::paths::Paths;

/// How many of a daemon's errors an explanation carries.
const MAX_ERRORS: usize = 2;

/// The journal's messages since `since_s` (seconds since the Unix epoch), filtered by the
/// extra journalctl `args`; empty where it is not readable.
pub fn read(state_dir: &Path, since_s: u64, args: &[&str]) -> String {
    let dir = Paths::new(state_dir).journal();
    Command::new("journalctl")
        .arg("--directory")
        .arg(&dir)
        .args(["--no-pager", "-o", "cat"])
        .arg(format!("--since=@{since_s}"))
        .args(args)
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}

/// The last distinct errors a Kubernetes daemon (`unit`, logging with klog) wrote since
/// `since_s`, newest last: why a kubelet never registers its node, say.
pub fn klog_errors(state_dir: &Path, unit: &str, since_s: u64) -> Vec<String> {
    pick_klog_errors(&read(state_dir, since_s, &["-u", unit, "-n", "300"]))
}

/// klog's error lines (`E1207 10:00:00.123456    1234 file.go:42] message`) of `text`, by their
/// message (a retried error is one), the last [`MAX_ERRORS`].
fn pick_klog_errors(text: &str) -> Vec<String> {
    let mut errors: Vec<String> = Vec::new();
    for line in text.lines() {
        let is_error = line.len() > 5
            && line.starts_with('E')
            && line.as_bytes()[1..5].iter().all(u8::is_ascii_digit);
        let Some((_, message)) = line.split_once("] ").filter(|_| is_error) else {
            continue;
        };
        errors.retain(|e| e != message);
        errors.push(message.to_string());
    }
    let skip = errors.len().saturating_sub(MAX_ERRORS);
    errors.split_off(skip)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_last_distinct_klog_errors_are_picked() {
        let journal = "\
I1207 10:00:00.000001    41 server.go:1] \"Starting kubelet\"
E1207 10:00:01.000001    41 reflector.go:9] \"Failed to watch\" err=\"connection refused\"
E1207 10:00:02.000001    41 kubelet_node_status.go:96] \"Unable to register node\" err=\"x509: certificate signed by unknown authority\"
W1207 10:00:02.500001    41 warn.go:1] a warning
E1207 10:00:03.000001    41 reflector.go:9] \"Failed to watch\" err=\"connection refused\"
Error: a line that is not klog's
E1207 10:00:04.000001    41 kubelet_node_status.go:96] \"Unable to register node\" err=\"x509: certificate signed by unknown authority\"
";
        assert_eq!(
            super::pick_klog_errors(journal),
            [
                "\"Failed to watch\" err=\"connection refused\"",
                "\"Unable to register node\" err=\"x509: certificate signed by unknown authority\"",
            ]
        );
    }
}
