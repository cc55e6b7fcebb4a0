//! `--autofix` sets the sysctls the cluster needs and persists them. It runs in its own mount
//! and network namespace, with tmpfs over /etc/sysctl.d and /etc/modules-load.d, so that this
//! machine's settings and files stay as they are.

use tests::bins;
use tests::preflight::{ManifestDir, Run, TmpfsDir};

#[test]
fn autofix_sets_and_persists_sysctls() {
    bins::require_root();
    let state = TmpfsDir::new();
    let m = ManifestDir::with_profile("    requirements: {}\n");
    let script = format!(
        "set -e
mount -t tmpfs none /etc/sysctl.d
mount -t tmpfs none /etc/modules-load.d
echo '# kept' > /etc/sysctl.d/99-gravity.conf
sysctl -q -w net.ipv4.ip_forward=0
\"$0\" --state-dir {state} check --manifest {m} --skip-rate-tests --autofix --output json > /tmp/report.json.$$ || echo \"exit=$?\" >&2
echo ---
cat /proc/sys/net/ipv4/ip_forward
cat /etc/sysctl.d/99-gravity.conf
echo ---
cat /tmp/report.json.$$
rm -f /tmp/report.json.$$",
        state = state.path().display(),
        m = m.path().display()
    );
    let out = std::process::Command::new("unshare")
        .args([
            "--mount",
            "--net",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ])
        .arg(bins::path("gravity"))
        .output()
        .unwrap();
    let r = Run::from_output(out);
    let parts: Vec<&str> = r.stdout.splitn(3, "---\n").collect();
    assert_eq!(parts.len(), 3, "{r}");
    assert_eq!(
        parts[1], "1\n# kept\nnet.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\n",
        "{r}"
    );
    let doc: serde_json::Value = serde_json::from_str(parts[2]).unwrap();
    let changes: Vec<&str> = doc["autofix"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["what"].as_str().unwrap())
        .collect();
    assert!(
        changes.contains(&"set net.ipv4.ip_forward = 1 (was 0)"),
        "{changes:?}"
    );
    assert!(
        changes.contains(&"persisted \"net.ipv4.ip_forward = 1\" in /etc/sysctl.d/99-gravity.conf"),
        "{changes:?}"
    );
    let ipf = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "sysctl:net.ipv4.ip_forward")
        .unwrap();
    assert_eq!(ipf["status"], "pass", "the checks run after the fix: {r}");
    // Outside the namespace nothing changed.
    assert!(
        !std::fs::read_to_string("/etc/sysctl.d/99-gravity.conf")
            .is_ok_and(|s| s.contains("# kept"))
    );
}
