//! Crash tests: the installer is killed with SIGKILL at every phase boundary and in the middle
//! of the long phases; `gravity install --resume` then ends healthy and in the same state as an
//! install that was never interrupted.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tests::install::{Installation, text};
use tests::planet::SharedServiceUser;

/// The install's phases, in order. A new phase must be added here, and so gets crash-tested
/// (the test fails when the plan has a phase this list lacks).
const PHASES: [&str; 20] = [
    "agent",
    "checks",
    "kernel",
    "user",
    "planet-image",
    "pki",
    "configure",
    "volumes",
    "service",
    "start",
    "health",
    "control-plane",
    "node-ready",
    "images",
    "system-workloads",
    "values",
    "install-hook",
    "post-install-hook",
    "finish",
    "join-agent",
];

/// What must be identical after any interrupted-then-resumed install: planet's configuration,
/// the cluster record (but its time), the Helm values, and which files the install keeps.
fn snapshot(state: &Path) -> serde_json::Value {
    let json = |rel: &str| -> serde_json::Value {
        let bytes = std::fs::read(state.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        serde_json::from_slice(&bytes).unwrap()
    };
    let mut cluster = json("cluster.json");
    cluster.as_object_mut().unwrap().remove("installedMs");
    let mut files = BTreeSet::new();
    collect(state, state, &mut files);
    serde_json::json!({
        "planet": json("planet/config.json"),
        "cluster": cluster,
        "values": std::fs::read_to_string(state.join("helm/values.yaml")).unwrap(),
        "files": files,
    })
}

/// Files the install keeps, without what differs from run to run by nature: logs, the journal,
/// and planet's runtime state.
fn collect(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    const VOLATILE: &[&str] = &[
        "logs",
        "operation",
        "planet/run",
        "planet/runtime",
        "planet/data",
        "planet/overlay",
        "planet/rootfs",
        "planet/image",
    ];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if VOLATILE.contains(&rel.as_str())
            || rel.starts_with("planet/status")
            || rel.starts_with("planet/supervisor")
        {
            continue;
        }
        if path.is_dir() && !path.is_symlink() {
            collect(root, &path, out);
        } else {
            out.insert(rel);
        }
    }
}

fn assert_healthy(inst: &Installation, what: &str) {
    let status = inst.status();
    assert_eq!(
        status["healthy"], true,
        "{what}: not healthy after resume: {status:#}"
    );
}

fn journal_state(state: &Path, phase: &str) -> String {
    let Ok(bytes) = std::fs::read(state.join("operation/current.json")) else {
        return "none".into();
    };
    let plan: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    plan["phases"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == phase))
        .and_then(|p| p["state"].as_str())
        .unwrap_or("none")
        .to_string()
}

/// Resumes, checks the result against the reference (and with `check`), and uninstalls.
fn resume_and_compare(
    inst: &Installation,
    reference: &serde_json::Value,
    what: &str,
    check: impl FnOnce(&Installation),
) {
    let out = inst.gravity(&["install", "--resume"]);
    assert!(
        out.status.success(),
        "{what}: resume failed:\n{}",
        text(&out)
    );
    assert_healthy(inst, what);
    let got = snapshot(&inst.state);
    assert_eq!(
        &got, reference,
        "{what}: the resumed install differs from an uninterrupted one"
    );
    check(inst);
    let out = inst.uninstall();
    assert!(
        out.status.success(),
        "{what}: uninstall failed:\n{}",
        text(&out)
    );
    assert!(
        planet::leftovers(&inst.state).is_clean(),
        "{what}: planet left behind"
    );
}

fn reference(inst: &Installation) -> serde_json::Value {
    let out = inst.install(&[]);
    assert!(
        out.status.success(),
        "reference install failed:\n{}",
        text(&out)
    );
    assert_healthy(inst, "reference");
    let plan: serde_json::Value =
        serde_json::from_slice(&inst.gravity(&["plan", "--output", "json"]).stdout).unwrap();
    let phases: Vec<&str> = plan["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        phases, PHASES,
        "the install's phases changed: update PHASES"
    );
    let snap = snapshot(&inst.state);
    assert!(inst.uninstall().status.success());
    snap
}

/// `gravity install` (or `install --resume` when `resume`), with `GRAVITY_CRASH_AT` when given.
fn install_command(inst: &Installation, resume: bool) -> std::process::Command {
    let mut cmd = inst.command();
    cmd.arg("--state-dir").arg(&inst.state);
    if resume {
        cmd.args(["install", "--resume"]);
    } else {
        cmd.args(inst.install_args());
    }
    cmd
}

/// One chain over every boundary: the install is killed after its first point, its resume after
/// the next, and so on; each kill is checked in the journal, and the last resume must end in
/// the reference's state. Every boundary is killed and resumed from exactly once, in one pass
/// through the plan (a fresh install per kill took most of CI's time).
#[test]
fn a_kill_at_every_phase_boundary_resumes_to_the_same_state() {
    let _planet = SharedServiceUser::hold();
    let inst = Installation::new();
    let reference = reference(&inst);
    // A kill before a phase is a kill after the one before it (nothing runs between them):
    // "before" only for the first phase, "after" for every phase.
    let points = std::iter::once((PHASES[0], "before"))
        .chain(PHASES.into_iter().map(|phase| (phase, "after")));
    for (i, (phase, point)) in points.enumerate() {
        let what = format!("killed {point} `{phase}`");
        let out = install_command(&inst, i > 0)
            .env("GRAVITY_CRASH_AT", format!("{phase}:{point}"))
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{what}: the installer was not killed:\n{}",
            text(&out)
        );
        let expected = if point == "before" {
            ["unstarted", "failed"].as_slice()
        } else {
            &["completed"]
        };
        let journaled = journal_state(&inst.state, phase);
        assert!(
            expected.contains(&journaled.as_str()),
            "{what}: journal says `{journaled}`"
        );
    }
    resume_and_compare(&inst, &reference, "killed at every boundary", |_| {});
}

/// The same chain with kills in the middle of the long phases: each resume is killed the moment
/// the journal shows the next phase running.
#[test]
fn a_kill_in_the_middle_of_long_phases_resumes_to_the_same_state() {
    let _planet = SharedServiceUser::hold();
    let inst = Installation::new();
    let reference = reference(&inst);
    let mut job_uid = None;
    for (i, phase) in [
        "planet-image",
        "start",
        "health",
        "control-plane",
        "node-ready",
        "system-workloads",
        "install-hook",
    ]
    .into_iter()
    .enumerate()
    {
        let what = format!("killed during `{phase}`");
        // Its words, for when it ends on its own.
        let said = inst.state.with_file_name(format!("install-{i}.log"));
        let mut child = install_command(&inst, i > 0)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&said).unwrap())
            .spawn()
            .unwrap();
        // Kill the moment the journal shows the phase running (or at its end, if it is quicker
        // than the poll: then this is a boundary kill, which must work too).
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let state = journal_state(&inst.state, phase);
            if state == "in_progress" || state == "completed" || Instant::now() > deadline {
                break;
            }
            if child.try_wait().unwrap().is_some() {
                // A busy lock's error names its holders.
                panic!(
                    "{what}: the install ended before the phase started: {}",
                    std::fs::read_to_string(&said).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if phase == "install-hook" {
            // Killed once its Job exists: the resume must follow that Job, not run another.
            job_uid = Some(wait_for_job(&inst, &mut child, &what));
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    resume_and_compare(
        &inst,
        &reference,
        "killed during every long phase",
        |inst| {
            assert_eq!(
                install_job_uid(inst).as_deref(),
                job_uid.as_deref(),
                "the resumed install ran the install hook's Job again"
            );
        },
    );
}

/// The install hook's Job's uid, once it exists.
fn install_job_uid(inst: &Installation) -> Option<String> {
    let out = inst.gravity(&[
        "kubectl",
        "-n",
        "kube-system",
        "get",
        "job",
        "example-install",
        "--ignore-not-found",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let uid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !uid.is_empty()).then_some(uid)
}

fn wait_for_job(inst: &Installation, child: &mut std::process::Child, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(uid) = install_job_uid(inst) {
            return uid;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "{what}: the install ended before its hook's Job was created"
        );
        assert!(Instant::now() < deadline, "{what}: no Job after 120 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}
