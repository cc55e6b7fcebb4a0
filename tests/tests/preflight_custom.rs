//! Custom check scripts: output kept, exit codes explained, and a hanging script killed with its
//! whole process group at the timeout.

use std::time::{Duration, Instant};

use tests::bins;
use tests::preflight::{ManifestDir, TmpfsDir, check};

fn custom_manifest(checks: &str) -> ManifestDir {
    ManifestDir::with_profile(&format!("    requirements:\n      customChecks:\n{checks}"))
}

fn is_gone(pid: i32) -> bool {
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    state.is_empty() || state.split_whitespace().nth(2) == Some("Z")
}

#[test]
fn hanging_script_is_killed_with_its_children_at_the_timeout() {
    bins::require_root();
    let state = TmpfsDir::new();
    let pidfile = state.path().join("child.pid");
    let m = custom_manifest(&format!(
        "        - description: waits forever\n          timeout: 1s\n          script: |\n            sleep 300 &\n            echo $! > {}\n            echo waiting for the sleep\n            wait\n",
        pidfile.display()
    ));
    let start = Instant::now();
    let r = check(
        &m.path(),
        state.path(),
        &["--skip-rate-tests", "--output", "json"],
    );
    let took = start.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(r.code, 3, "{r}");
    let c = r.check("custom:1");
    assert_eq!(c["status"], "fail");
    assert_eq!(c["title"], "waits forever");
    assert_eq!(
        c["measured"],
        "timed out after 1 s, killed with its process group: waiting for the sleep"
    );
    assert!(
        c["fix"]
            .as_str()
            .unwrap()
            .contains("--custom-check-timeout")
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !is_gone(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(is_gone(pid), "the script's background sleep {pid} survived");
}

#[test]
fn exit_codes_output_and_the_timeout_flag() {
    bins::require_root();
    let state = TmpfsDir::new();
    let m = custom_manifest(
        "        - description: passes\n          script: |\n            #!/bin/bash\n            echo all good\n\
         \x20       - description: fails\n          script: |\n            echo checking drivers\n            echo nvidia driver missing >&2\n            exit 5\n\
         \x20       - description: slow\n          timeout: 30s\n          script: sleep 5\n",
    );
    let start = Instant::now();
    let r = check(
        &m.path(),
        state.path(),
        &["--skip-rate-tests", "--custom-check-timeout", "500ms"],
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the flag overrides the manifest's 30s"
    );
    assert_eq!(r.code, 3, "{r}");
    let line = |id: &str| {
        r.stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(id))
            .unwrap()
            .to_string()
    };
    assert!(
        line("custom:1").starts_with("PASS") && line("custom:1").contains("exit code 0: all good"),
        "{r}"
    );
    let l2 = line("custom:2");
    assert!(
        l2.starts_with("FAIL") && l2.contains("exit code 5: nvidia driver missing"),
        "{l2}"
    );
    assert!(line("custom:3").contains("timed out after 0.5 s"), "{r}");
    // Both streams are in the details.
    assert!(r.stdout.contains("  custom:2 (fails):\n    stdout:\n    checking drivers\n    stderr:\n    nvidia driver missing\n"), "{r}");
}
