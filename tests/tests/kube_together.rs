//! planet's `kube-together` (planet-image/rootfs/usr/lib/planet): `kube-node` and
//! `kube-control-plane` for an image whose `--kube-bin` has separate binaries. Each component
//! runs as a process of its own; when one ends the others are stopped. The components here are
//! small shell scripts on PATH that say what they were given and when they are stopped.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../planet-image/rootfs/usr/lib/planet/kube-together")
}

/// A fake component: writes its arguments to DIR/NAME.args, runs until SIGTERM (then writes
/// DIR/NAME.stopped) or, given `exit`, exits with it after half a second (the others have
/// started by then).
fn component(dir: &Path, name: &str, exit: Option<i32>) {
    let d = dir.display();
    let body = match exit {
        Some(code) => format!("sleep 0.5; exit {code}"),
        None => "while :; do sleep 0.1; done".to_string(),
    };
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/bash\ntrap 'echo stopped > {d}/{name}.stopped; exit 0' TERM\n\
             printf '%s\\n' \"$@\" > {d}/{name}.args\n{body}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn group(dir: &Path, name: &str) -> Command {
    let link = dir.join(name);
    if !link.exists() {
        symlink(script(), &link).unwrap();
    }
    let mut cmd = Command::new(&link);
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("{}:{path}", dir.display()));
    cmd
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_default()
}

fn eventually(what: &str, ok: impl Fn() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn each_component_gets_its_own_arguments_and_a_term_stops_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    component(d, "kubelet", None);
    component(d, "kube-proxy", None);
    let mut child = group(d, "kube-node")
        .args(["kubelet", "--config=k", "", "--v", "2 words", "---"])
        .args(["kube-proxy", "--config=p"])
        .spawn()
        .unwrap();
    eventually("both components start", || {
        d.join("kubelet.args").exists() && d.join("kube-proxy.args").exists()
    });
    assert_eq!(read(d, "kubelet.args"), "--config=k\n\n--v\n2 words\n");
    assert_eq!(read(d, "kube-proxy.args"), "--config=p\n");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(read(d, "kubelet.stopped"), "stopped\n");
    assert_eq!(read(d, "kube-proxy.stopped"), "stopped\n");
}

#[test]
fn one_component_ending_stops_the_others_with_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    component(d, "kube-apiserver", None);
    component(d, "kube-controller-manager", None);
    component(d, "kube-scheduler", Some(3));
    let out = group(d, "kube-control-plane")
        .args(["kube-apiserver", "--secure-port=6443", "---"])
        .args(["kube-controller-manager", "---", "kube-scheduler"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("stopping the others"), "{}", text(&out));
    assert_eq!(read(d, "kube-apiserver.stopped"), "stopped\n");
    assert_eq!(read(d, "kube-controller-manager.stopped"), "stopped\n");
}

#[test]
fn a_component_of_another_group_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    component(d, "kubelet", None);
    let out = group(d, "kube-node")
        .args(["kubelet", "---", "kube-apiserver", "--secure-port=6443"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("\"kube-apiserver\" is not a component it runs"),
        "{}",
        text(&out)
    );
    assert!(!d.join("kubelet.args").exists(), "nothing starts");
    let out = group(d, "kube-node").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no component given"), "{}", text(&out));
}
