//! `gravity check` with the spec's sample manifest (which this machine must fail, readably) and
//! with a profile this machine meets (which must pass, rate tests included).

use std::path::PathBuf;

use tests::bins;
use tests::loopdev::LoopMount;
use tests::preflight::{ManifestDir, Run, TmpfsDir, check, check_with};

fn sample() -> PathBuf {
    bins::repo().join("cluster-image/tests/fixtures/sample-cluster/app.yaml")
}

#[test]
fn sample_manifest_fails_here_with_a_readable_report() {
    bins::require_root();
    let state = tempfile::tempdir().unwrap();
    let r = check(&sample(), state.path(), &["--skip-rate-tests"]);
    assert_eq!(r.code, 3, "{r}");
    let line = |id: &str| {
        r.stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(id))
            .unwrap_or_else(|| panic!("no line for {id}:\n{r}"))
            .to_string()
    };
    let cpu = line("cpu");
    assert!(cpu.starts_with("FAIL"), "{cpu}");
    assert!(
        cpu.contains(&format!(
            "{} CPUs",
            nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
                .unwrap()
                .unwrap()
        )),
        "{cpu}"
    );
    assert!(cpu.contains("at least 8"), "{cpu}");
    let os = line("os");
    assert!(
        os.starts_with("FAIL") && os.contains("debian 12") && os.contains("centos 7, rhel 7.2/7.3"),
        "{os}"
    );
    assert!(line("volume:/var/lib/logs:capacity").contains("at least 512GB"));
    assert!(line("port:tcp/10000-10005").starts_with("PASS"));
    // checks.sh ran and its output is in the report (what it says depends on /etc/hostname).
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let said = if hostname.trim().is_empty() {
        "/etc/hostname is missing or empty".to_string()
    } else {
        format!("hostname is {}", hostname.trim())
    };
    assert!(r.stdout.contains(&said), "{r}");
    // Failures come first, and the verdict says how to proceed.
    let first_pass = r.stdout.find("\nPASS").unwrap();
    assert!(r.stdout.rfind("\nFAIL").unwrap() < first_pass, "{r}");
    assert!(r.stdout.contains("Result: failed: "), "{r}");
    assert!(
        r.stdout.contains("--ignore-preflight-errors=cpu,ram,os,"),
        "{r}"
    );

    let j = check(
        &sample(),
        state.path(),
        &["--skip-rate-tests", "--output", "json"],
    );
    assert_eq!(j.code, 3, "{j}");
    let doc = j.json();
    assert_eq!(doc["result"], "failed");
    assert_eq!(doc["exitCode"], 3);
    assert_eq!(doc["subject"]["profile"], "db");
    assert_eq!(j.status("cpu"), "fail");
    assert_eq!(j.check("cpu")["required"], "at least 8");
    assert!(
        j.check("custom:2")["detail"]
            .as_str()
            .unwrap()
            .contains(&said)
    );
}

#[test]
fn roles_and_manifest_errors() {
    bins::require_root();
    let state = tempfile::tempdir().unwrap();
    let r = check(
        &sample(),
        state.path(),
        &["--skip-rate-tests", "--role", "worker", "--output", "json"],
    );
    assert_eq!(r.code, 3, "{r}");
    assert_eq!(r.json()["subject"]["profile"], "worker");
    assert_eq!(r.check("cpu")["required"], "at least 4");
    // The worker profile asks nothing of volumes: none are checked.
    assert!(!r.stdout.contains("volume:"), "{r}");

    let r = check(&sample(), state.path(), &["--role", "gpu"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stderr
            .contains("no node profile \"gpu\": use --role with one of db, worker"),
        "{r}"
    );

    let bad = ManifestDir::raw(
        "apiVersion: cluster.gravitational.io/v2\nkind: Cluster\nmetadata:\n  name: x\n  resourceVersion: 1.0.0\nnodeProfiles:\n  - name: n\n    requirements:\n      ram:\n        min: 4gb\n",
    );
    let r = check(&bad.path(), state.path(), &[]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("4gb"), "{r}");
}

/// A profile this machine meets: run in a fresh network namespace with ip_forward on (it is
/// per namespace, and off on this machine), a state directory on tmpfs and an xfs volume.
/// (`unshare --net` rather than `ip netns exec`, which remounts /sys and so hides the cgroup
/// mounts.)
#[test]
fn a_profile_this_machine_meets_passes_with_rate_tests() {
    bins::require_root();
    let vol = LoopMount::new("xfs", 512, &[]);
    let cpus = nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
        .unwrap()
        .unwrap();
    let m = ManifestDir::with_profile(&format!(
        r#"    requirements:
      cpu:
        min: {cpus}
      ram:
        min: "1GB"
      os:
        - name: debian
          versions: ["12"]
      volumes:
        - path: {vol}
          capacity: "100MB"
          filesystems: ["xfs"]
          minTransferRate: "1MB/s"
      network:
        ports:
          - protocol: tcp
            ranges: ["2379-2380", "10250"]
      customChecks:
        - description: bash works
          script: "echo ok"
"#,
        vol = vol.path().display()
    ));
    let state = TmpfsDir::new();
    let start = std::time::Instant::now();
    let mut in_netns = std::process::Command::new("unshare");
    in_netns
        .args([
            "--net",
            "sh",
            "-c",
            "sysctl -q -w net.ipv4.ip_forward=1 && exec \"$0\" \"$@\"",
        ])
        .arg(bins::path("gravity"));
    let r: Run = check_with(in_netns, &m.path(), state.path(), &[]);
    // A machine with swap on gets that one warning (exit 4); nothing else may be short of a pass.
    let swap_on = std::fs::read_to_string("/proc/swaps").is_ok_and(|s| s.lines().count() > 1);
    let not_passed: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAIL") || l.starts_with("WARN") || l.starts_with("SKIP"))
        .collect();
    if swap_on {
        assert_eq!(r.code, 4, "{r}");
        assert!(
            not_passed.len() == 1 && not_passed[0].contains(" swap "),
            "{r}"
        );
    } else {
        assert_eq!(r.code, 0, "{r}");
        assert!(not_passed.is_empty(), "{r}");
        assert!(
            r.stdout.contains("Result: passed: 0 failed, 0 warnings"),
            "{r}"
        );
    }
    assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
    let rate = r.stdout.lines().find(|l| l.contains(":rate ")).unwrap();
    assert!(rate.starts_with("PASS") && rate.contains("MB/s"), "{rate}");
    // The measurement left nothing in the volume.
    assert_eq!(std::fs::read_dir(vol.path()).unwrap().count(), 0);
}
