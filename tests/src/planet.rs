//! planet for integration tests: the image (built, or taken from `planet-image/build.sh`'s
//! cache), a state directory, the `planet` service user, test devices, and a guard that tears
//! planet down and removes what the test created, also when the test fails.
//!
//! Each [`Planet`] runs in a network namespace of its own ([`NetNs::host`]), so its ports (2379,
//! 2380, 5000) never meet those of another planet, e.g. of a real install on this host; its
//! cgroups carry its state directory's id. The `planet` user is host-wide: hold
//! `serial::lock("planet")`, or [`SharedServiceUser`] to run beside other tests, for the whole
//! test.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::bins;
use crate::netns::NetNs;

/// The directory holding `planet.json` and the image, built once per test process.
pub fn image_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| built("planet-image/build.sh")).clone()
}

/// planet's image with etcd one patch older (`tests/fixtures/previous-etcd/`): what the
/// upgrade tests install first, so that the upgrade brings a newer patch of a component.
pub fn previous_etcd_image_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| built("tests/fixtures/previous-etcd/build.sh"))
        .clone()
}

/// Runs a script that builds (or finds cached) a planet image and prints its directory last.
fn built(script: &str) -> PathBuf {
    let started = Instant::now();
    let out = Command::new(bins::repo().join(script))
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_else(|| panic!("{script} prints the image directory"))
            .trim(),
    );
    assert!(dir.join("planet.json").is_file(), "{}", dir.display());
    eprintln!(
        "planet image: {} ({:.1?})",
        dir.display(),
        started.elapsed()
    );
    dir
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The `planet` user and group with the test's ids; removed on drop if the test created them.
pub struct ServiceUser {
    pub uid: u32,
    existed: bool,
}

impl ServiceUser {
    pub fn expect(uid: u32) -> ServiceUser {
        ServiceUser {
            uid,
            existed: exists_with(uid),
        }
    }
}

/// The host's `/etc/passwd` line of the `planet` user, if it has one.
pub fn passwd_entry() -> Option<String> {
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find(|l| l.starts_with("planet:"))
        .map(str::to_string)
}

/// Whether the host has a `planet` user; fails the test if it has one with another uid.
fn exists_with(uid: u32) -> bool {
    let line = passwd_entry();
    if let Some(l) = &line {
        assert!(
            l.split(':').nth(2) == Some(&uid.to_string()),
            "this host already has a `planet` user with another uid ({l}); the planet tests need uid {uid}: remove it (userdel planet; groupdel planet)"
        );
    }
    line.is_some()
}

impl Drop for ServiceUser {
    fn drop(&mut self) {
        if !self.existed {
            remove_planet_user();
        }
    }
}

/// Removes the host's `planet` user and group, where they are.
fn remove_planet_user() {
    if passwd_entry().is_some() {
        let _ = Command::new("userdel").arg("planet").status();
    }
    // userdel removes the user's group too where USERGROUPS_ENAB is set.
    if has_planet_group() {
        let _ = Command::new("groupdel").arg("planet").status();
    }
}

fn has_planet_group() -> bool {
    std::fs::read_to_string("/etc/group").is_ok_and(|s| s.lines().any(|l| l.starts_with("planet:")))
}

/// The `planet` user and group for tests that run side by side (the Kubernetes tests: each
/// spends most of its minutes waiting, so `scripts/run-tests` runs several at once): holds
/// `serial::shared("planet")`, makes the user with the tests' service uid if the host has none, and the
/// last holder to leave removes what the tests made. So every install among them finds the user
/// there, and none removes it from under another. A test that watches the install create and
/// remove the user holds `serial::lock("planet")` instead.
pub struct SharedServiceUser {
    lock: Option<crate::serial::HostLock>,
}

/// Says that the tests, not an admin, made the host's `planet` user.
fn made_by_tests() -> PathBuf {
    std::env::temp_dir().join("gravity-tests-planet-user")
}

impl SharedServiceUser {
    pub fn hold() -> SharedServiceUser {
        let lock = crate::serial::shared("planet");
        // One maker at a time among the shared holders.
        let _making = crate::serial::lock("planet-user");
        let uid = crate::install::SERVICE_UID;
        if !exists_with(uid) {
            std::fs::write(made_by_tests(), b"").expect("marker");
            let id = uid.to_string();
            if !has_planet_group() {
                run_ok(Command::new("groupadd").args(["--system", "--gid", &id, "planet"]));
            }
            run_ok(Command::new("useradd").args([
                "--system",
                "--uid",
                &id,
                "--gid",
                &id,
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "planet",
            ]));
        }
        SharedServiceUser { lock: Some(lock) }
    }
}

impl Drop for SharedServiceUser {
    fn drop(&mut self) {
        drop(self.lock.take());
        let Some(_alone) = crate::serial::try_alone("planet") else {
            return; // another test still uses it: the last one tidies up
        };
        if made_by_tests().exists() {
            remove_planet_user();
            let _ = std::fs::remove_file(made_by_tests());
        }
    }
}

/// A loop device over a small file that starts with `marker`.
pub struct TestLoop {
    pub device: PathBuf,
    pub major: u64,
    pub minor: u64,
    _dir: tempfile::TempDir,
}

impl TestLoop {
    pub fn new(marker: &str) -> TestLoop {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::Builder::new()
            .prefix("gravity-dev-")
            .tempdir_in("/var/tmp")
            .expect("temp dir");
        let file = dir.path().join("backing");
        let mut f = std::fs::File::create(&file).expect("backing file");
        f.write_all(marker.as_bytes()).expect("marker");
        f.set_len(1 << 20).expect("size");
        drop(f);
        let device = PathBuf::from(run_ok(
            Command::new("losetup")
                .args(["--find", "--show"])
                .arg(&file),
        ));
        let rdev = std::fs::metadata(&device).expect("loop device").rdev();
        TestLoop {
            major: nix::sys::stat::major(rdev),
            minor: nix::sys::stat::minor(rdev),
            device,
            _dir: dir,
        }
    }
}

impl Drop for TestLoop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
    }
}

/// A device node the test made (e.g. `/dev/gravity-test-nvidia0`); removed on drop.
pub struct DevNode {
    pub path: PathBuf,
}

impl DevNode {
    pub fn block(path: &str, major: u64, minor: u64) -> DevNode {
        let _ = std::fs::remove_file(path);
        run_ok(Command::new("mknod").args([
            "-m",
            "0600",
            path,
            "b",
            &major.to_string(),
            &minor.to_string(),
        ]));
        DevNode {
            path: PathBuf::from(path),
        }
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A planet under a temporary state directory (on a real filesystem: dockerd's overlay2 does
/// not work on tmpfs). Torn down on drop.
pub struct Planet {
    pub state: PathBuf,
    pub work: PathBuf,
    /// The namespace every `gravity` of this planet runs in, and so planet itself.
    pub ns: NetNs,
    _tmp: tempfile::TempDir,
}

impl Default for Planet {
    fn default() -> Self {
        Self::new()
    }
}

impl Planet {
    pub fn new() -> Planet {
        bins::require_root();
        let tmp = tempfile::Builder::new()
            .prefix("gravity-planet-")
            .tempdir_in("/var/tmp")
            .expect("state dir");
        Planet {
            state: tmp.path().join("state"),
            work: tmp.path().to_path_buf(),
            ns: NetNs::host("planet"),
            _tmp: tmp,
        }
    }

    /// `gravity --state-dir <state> <args>`; libcontainer's own warnings are kept quiet.
    pub fn gravity(&self, args: &[&str]) -> Output {
        self.command()
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .env("RUST_LOG", "error")
            .output()
            .expect("run gravity")
    }

    /// The `gravity` binary as a command in this planet's namespace.
    pub fn command(&self) -> Command {
        let mut cmd = bins::gravity();
        self.ns.enter(&mut cmd);
        cmd
    }

    /// Like [`Planet::gravity`], asserting success; returns stdout.
    pub fn gravity_ok(&self, args: &[&str]) -> String {
        let out = self.gravity(args);
        assert!(
            out.status.success(),
            "gravity {args:?} failed ({}):\n{}{}\n--- planet.log (tail) ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail(60)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `gravity planet configure` with `manifest` (YAML).
    pub fn configure(&self, manifest: &str, extra: &[&str]) {
        let path = self.work.join("app.yaml");
        std::fs::write(&path, manifest).expect("manifest");
        let image = image_dir();
        let mut args = vec![
            "planet",
            "configure",
            "--manifest",
            path.to_str().expect("utf-8 path"),
            "--planet-dir",
            image.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        self.gravity_ok(&args);
    }

    /// planet's config as JSON, to edit before a start.
    pub fn edit_config(&self, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = self.state.join("planet/config.json");
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("config")).expect("json");
        edit(&mut v);
        std::fs::write(&path, serde_json::to_vec_pretty(&v).expect("json")).expect("write");
    }

    /// `gravity planet start`; returns how long it took.
    pub fn start(&self) -> Duration {
        let t = Instant::now();
        self.gravity_ok(&["planet", "start", "--timeout", "300s"]);
        t.elapsed()
    }

    pub fn stop(&self) -> Duration {
        let t = Instant::now();
        self.gravity_ok(&["planet", "stop"]);
        t.elapsed()
    }

    /// `gravity planet status --output json`, waiting up to `wait` for health.
    pub fn status(&self, wait: Option<&str>) -> (bool, serde_json::Value) {
        let mut args = vec!["planet", "status", "--output", "json"];
        if let Some(w) = wait {
            args.extend(["--wait", w]);
        }
        let out = self.gravity(&args);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status is not JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.success(), v)
    }

    /// The supervisor's status file.
    pub fn supervisor_status(&self) -> serde_json::Value {
        serde_json::from_slice(
            &std::fs::read(self.state.join("planet/status.json")).expect("status"),
        )
        .expect("json")
    }

    /// `gravity planet exec -- args`.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["planet", "exec", "--"];
        all.extend_from_slice(args);
        self.gravity(&all)
    }

    /// A shell script inside planet; returns stdout and stderr together, and the exit code.
    pub fn sh(&self, script: &str) -> (i32, String) {
        let out = self.exec(&["/bin/sh", "-c", &format!("{script} 2>&1")]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    }

    /// A shell script inside planet that must succeed; returns its output.
    pub fn sh_ok(&self, script: &str) -> String {
        let (code, out) = self.sh(script);
        assert_eq!(code, 0, "`{script}` inside planet failed: {out}");
        out
    }

    /// The command line of a unit's main process inside planet.
    pub fn cmdline(&self, unit: &str) -> String {
        let pid = self.sh_ok(&format!("systemctl show -p MainPID --value {unit}"));
        assert_ne!(pid, "0", "{unit} has no main process");
        self.sh_ok(&format!("tr '\\0' ' ' < /proc/{pid}/cmdline"))
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.state.join("logs/planet.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Planet {
    fn drop(&mut self) {
        let out = self.gravity(&["planet", "teardown"]);
        if !out.status.success() {
            eprintln!(
                "planet teardown failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if std::thread::panicking() {
                eprintln!("--- planet.log (tail) ---\n{}", self.log_tail(80));
            }
        }
    }
}

/// GET `path` on 127.0.0.1:`port` inside `ns`; the status code and body.
pub fn http_get(ns: &NetNs, port: u16, path: &str) -> (u16, String) {
    ns.within(|| http_get_here(port, path))
}

fn http_get_here(port: u16, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("response");
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (code, body)
}

/// A host path's file in `root`: owner, group and permission bits.
pub fn owner_mode(path: &Path) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).expect("stat");
    (m.uid(), m.gid(), m.mode() & 0o7777)
}
