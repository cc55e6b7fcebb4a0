//! The whole suite over fixture host trees, with recording fakes for scripts and host changes:
//! what a user would read in the report for a small CentOS 7 host and a healthy Debian 12 one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster_image::manifest::{Offline, load_file, load_str};
use preflight::checks::custom::{Exit, ScriptOutcome};
use preflight::{
    Options, RecordingChanger, RecordingRunner, Status, autofix::Action, report::IgnoreList,
    run_with,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A copy of a fixture tree: the disk probes write scratch files into the state directory and
/// volumes, which must not happen in the source tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        let dest = to.join(e.file_name());
        if t.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &dest).unwrap();
        } else if t.is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

fn host(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture(name), dir.path());
    dir
}

fn opts(root: &Path) -> Options {
    Options {
        root: root.to_path_buf(),
        state_dir: "/var/lib/gravity".into(),
        rate_tests: false,
        ..Options::default()
    }
}

fn ok_script(stdout: &str) -> ScriptOutcome {
    ScriptOutcome {
        exit: Exit::Code(0),
        stdout: stdout.into(),
        stderr: String::new(),
        elapsed: Duration::from_millis(3),
    }
}

#[test]
fn sample_manifest_on_a_small_centos_host() {
    let root = host("centos7-small");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cluster-image/tests/fixtures/sample-cluster/app.yaml");
    let manifest = load_file(&sample, &Offline).unwrap().manifest;
    let profile = manifest.profile(Some("db")).unwrap();
    let runner = RecordingRunner::new(vec![ok_script(""), ok_script("hostname is centos-small\n")]);
    let mut changer = RecordingChanger::default();
    let report = run_with(
        &manifest,
        &profile,
        &opts(root.path()),
        &runner,
        &mut changer,
    );

    let get = |id: &str| {
        report
            .checks
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("no check {id} in {:#?}", report.checks))
    };
    let cpu = get("cpu");
    assert_eq!(
        (cpu.status, cpu.measured.as_deref()),
        (Status::Fail, Some("2 CPUs"))
    );
    assert_eq!(get("ram").status, Status::Fail);
    assert_eq!(get("ram").measured.as_deref(), Some("3.7 GiB"));
    assert_eq!(get("os").status, Status::Pass);
    assert_eq!(
        get("os").measured.as_deref(),
        Some("centos 7 (like rhel fedora)")
    );
    assert_eq!(get("volume:/var/lib/logs:exists").status, Status::Pass);
    assert_eq!(get("volume:/var/lib/logs:capacity").status, Status::Fail);
    assert_eq!(
        get("volume:/path/to/centos/file:exists").status,
        Status::Skip
    );
    assert_eq!(get("volume:/path/to/dir-???:exists").status, Status::Fail);
    let fs = get("volume:/var/lib/data:filesystem");
    assert_eq!(fs.status, Status::Pass);
    assert_eq!(
        fs.measured.as_deref(),
        Some("ext4 (/dev/sdb1 mounted at /var/lib/data)")
    );
    assert_eq!(get("volume:/var/lib/data:rate").status, Status::Skip);
    assert_eq!(get("device:/dev/nvidia*").status, Status::Pass);
    let port = get("port:tcp/8080");
    assert_eq!(port.status, Status::Fail);
    assert_eq!(
        port.measured.as_deref(),
        Some("in use by nginx (pid 812), listening on 0.0.0.0")
    );
    assert_eq!(get("port:tcp/10000-10005").status, Status::Pass);
    assert_eq!(get("module:br_netfilter").status, Status::Pass);
    assert_eq!(get("sysctl:net.ipv4.ip_forward").status, Status::Fail);
    assert_eq!(
        get("sysctl:net.bridge.bridge-nf-call-iptables").status,
        Status::Fail
    );
    assert_eq!(get("cgroups").status, Status::Pass);
    assert_eq!(get("swap").status, Status::Warn);
    assert_eq!(get("state-dir:d_type").status, Status::Pass);
    assert_eq!(
        get("custom:2").measured.as_deref(),
        Some("exit code 0: hostname is centos-small")
    );
    assert_eq!(get("network:rate").status, Status::Skip);
    assert_eq!(report.exit_code(), 3);

    // The vendor's scripts reached the runner with the manifest's text (file:// inlined).
    let calls = runner.calls.lock().unwrap();
    assert_eq!(calls.len(), 2);
    assert!(
        calls[1].0.contains("hostname is $(cat /etc/hostname)"),
        "{}",
        calls[1].0
    );
    assert_eq!(calls[1].1, Duration::from_secs(60));
    // Nothing changed on the host without --autofix.
    assert!(changer.actions.is_empty());

    let table = report.render_table();
    assert!(
        table.starts_with("Preflight checks for profile \"db\" of "),
        "{table}"
    );
    assert!(table.contains(" on centos-small\n"));
    let first_pass = table.find("\nPASS").unwrap();
    let last_fail = table.rfind("\nFAIL").unwrap();
    assert!(last_fail < first_pass, "failures come first:\n{table}");
}

#[test]
fn ignoring_and_autofix_on_the_centos_host() {
    let root = host("centos7-small");
    let manifest = load_str(
        "apiVersion: cluster.gravitational.io/v2\nkind: Cluster\nmetadata:\n  name: t\n  resourceVersion: 1.0.0\n\
         nodeProfiles:\n  - name: node\n    requirements:\n      cpu:\n        min: 2\n",
        Path::new("app.yaml"),
        Path::new("."),
        &Offline,
    )
    .unwrap()
    .manifest;
    let profile = manifest.profile(None).unwrap();
    let mut o = opts(root.path());
    o.autofix = true;
    let runner = RecordingRunner::default();
    let mut changer = RecordingChanger::default();
    let mut report = run_with(&manifest, &profile, &o, &runner, &mut changer);
    assert_eq!(
        changer.actions[0],
        Action::LoadModule("br_netfilter".into())
    );
    let changed: Vec<&str> = report.autofix.iter().map(|c| c.what.as_str()).collect();
    assert!(
        changed.contains(&"set net.ipv4.ip_forward = 1 (was 0)"),
        "{changed:?}"
    );
    // The recording changer wrote nothing: the sysctls still read as before.
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(
        failed,
        [
            "sysctl:net.ipv4.ip_forward",
            "sysctl:net.bridge.bridge-nf-call-iptables",
            "sysctl:fs.inotify.max_user_instances",
            "sysctl:fs.inotify.max_user_watches"
        ]
    );
    report.apply_ignores(&IgnoreList::parse("sysctl:*"));
    // Only the swap warning and the two ignored failures remain.
    assert_eq!(report.exit_code(), 4);
    let table = report.render_table();
    assert!(
        table.contains("WARN*   sysctl:net.ipv4.ip_forward"),
        "{table}"
    );
    assert!(
        table.contains("Changed by --autofix:\n  - loaded kernel module br_netfilter\n"),
        "{table}"
    );
}

#[test]
fn a_debian_host_that_meets_its_profile_passes() {
    let root = host("debian12-node");
    let manifest = load_str(
        r#"apiVersion: cluster.gravitational.io/v2
kind: Cluster
metadata:
  name: fits
  resourceVersion: 2.0.0
nodeProfiles:
  - name: node
    requirements:
      cpu: {min: 4, max: 16}
      ram: {min: "16GB"}
      os:
        - name: debian
          versions: ["11", "12"]
      volumes:
        - path: /var/lib/data
          capacity: "1MB"
          filesystems: ["xfs"]
        - path: /srv/cache-???
        - path: /var/lib/gravity/new
      network:
        ports:
          - protocol: tcp
            ranges: ["2379-2380", "10250"]
          - protocol: udp
            ranges: ["8472"]
      customChecks:
        - description: disk is healthy
          script: "exit 0"
          timeout: 5s
"#,
        Path::new("app.yaml"),
        Path::new("."),
        &Offline,
    )
    .unwrap()
    .manifest;
    let profile = manifest.profile(None).unwrap();
    let runner = RecordingRunner::default();
    let mut changer = RecordingChanger::default();
    let report = run_with(
        &manifest,
        &profile,
        &opts(root.path()),
        &runner,
        &mut changer,
    );
    let not_passed: Vec<(&str, Status)> = report
        .checks
        .iter()
        .filter(|c| c.status != Status::Pass)
        .map(|c| (c.id.as_str(), c.status))
        .collect();
    // Rate tests are off in this run; everything else passes.
    assert_eq!(not_passed, [("state-dir:fdatasync", Status::Skip)]);
    assert_eq!(report.exit_code(), 0);
    let ids: Vec<&str> = report.checks.iter().map(|c| c.id.as_str()).collect();
    for id in [
        "volume:/srv/cache-001:exists",
        "volume:/srv/cache-002:exists",
        "volume:/var/lib/data:filesystem",
        "port:tcp/2379-2380",
        "port:udp/8472",
        "cgroups",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    assert_eq!(runner.calls.lock().unwrap()[0].1, Duration::from_secs(5));
    let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(v["result"], "passed");
    assert_eq!(v["subject"]["hostname"], "node-7");
}
