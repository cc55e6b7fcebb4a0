//! Running `gravity check` against a manifest written by the test, and reading its report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A manifest file in its own temporary directory.
pub struct ManifestDir {
    dir: tempfile::TempDir,
}

impl ManifestDir {
    /// `profile_yaml` is the body of one node profile named `node`, indented by 4 spaces.
    pub fn with_profile(profile_yaml: &str) -> ManifestDir {
        Self::raw(&format!(
            "apiVersion: cluster.gravitational.io/v2\nkind: Cluster\nmetadata:\n  name: preflight-test\n  resourceVersion: 1.0.0\nnodeProfiles:\n  - name: node\n{profile_yaml}"
        ))
    }

    pub fn raw(yaml: &str) -> ManifestDir {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("app.yaml"), yaml).expect("write app.yaml");
        ManifestDir { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("app.yaml")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The outcome of one `gravity check` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr)
        })
    }

    /// The check with this id in a JSON report.
    pub fn check(&self, id: &str) -> serde_json::Value {
        let doc = self.json();
        doc["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no check {id} in:\n{}", self.stdout))
    }

    pub fn status(&self, id: &str) -> String {
        self.check(id)["status"].as_str().unwrap_or("").to_string()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `gravity --state-dir <state> check --manifest <m> <args>`.
pub fn check(manifest: &Path, state_dir: &Path, args: &[&str]) -> Run {
    check_with(crate::bins::gravity(), manifest, state_dir, args)
}

/// The same, for a prepared command (e.g. inside a network namespace).
pub fn check_with(mut cmd: Command, manifest: &Path, state_dir: &Path, args: &[&str]) -> Run {
    let o = cmd
        .arg("--state-dir")
        .arg(state_dir)
        .arg("check")
        .arg("--manifest")
        .arg(manifest)
        .args(args)
        .output()
        .expect("run gravity check");
    Run::from_output(o)
}

/// A state directory on tmpfs: fdatasync there costs nothing, so latency checks do not depend on
/// how busy this machine's disk is. Unmounted on drop.
pub struct TmpfsDir {
    dir: tempfile::TempDir,
}

impl TmpfsDir {
    pub fn new() -> TmpfsDir {
        crate::bins::require_root();
        let dir = tempfile::tempdir().expect("temp dir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "gravity-test"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot mount a tmpfs on {}", dir.path().display());
        TmpfsDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for TmpfsDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TmpfsDir {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
