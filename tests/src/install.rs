//! A cluster image built from `examples/single-node` and installed under a temporary state
//! directory; uninstalled on drop, also when the test fails.
//!
//! Installs bind planet's host ports: hold `serial::lock("planet")` around them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::{bins, planet};

/// The example cluster image (with planet), built once per test process.
pub fn example_image() -> PathBuf {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("gravity-example-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("image dir");
            let out = dir.join("example.tar");
            let status =
                bins::tele_build(&bins::repo().join("examples/single-node/app.yaml"), &out)
                    .arg("--planet")
                    .arg(planet::image_dir())
                    .arg("-q")
                    .status()
                    .expect("run tele");
            assert!(status.success(), "tele build of the example failed");
            out
        })
        .clone()
}

/// Runs `gravity <args> --state-dir <state>` and returns its output.
pub fn gravity(state: &Path, args: &[&str]) -> Output {
    gravity_with_env(state, args, &[])
}

pub fn gravity_with_env(state: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = bins::gravity();
    // Before the subcommand: after a `--` it would belong to the command run inside planet.
    cmd.arg("--state-dir").arg(state).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run gravity {args:?}: {e}"))
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An install's state directory, and the host path the example's `app-data` volume uses.
pub struct Installation {
    pub state: PathBuf,
    pub app_data: PathBuf,
    _tmp: tempfile::TempDir,
    _user: planet::ServiceUser,
}

pub const SERVICE_UID: u32 = 1001;

/// `install --image <image>` with the service uid. This host may have `ip_forward` off: planet
/// does not need it for these tests, so that one failure only warns.
fn image_args(image: &Path) -> Vec<String> {
    vec![
        "install".into(),
        "--image".into(),
        image.display().to_string(),
        "--service-uid".into(),
        SERVICE_UID.to_string(),
        "--ignore-preflight-errors=sysctl:net.ipv4.ip_forward".into(),
        "--yes".into(),
    ]
}

impl Installation {
    pub fn new() -> Installation {
        bins::require_root();
        planet::require_free_ports();
        let user = planet::ServiceUser::expect(SERVICE_UID);
        // On a real filesystem: dockerd's overlay2 does not work on tmpfs.
        let tmp = tempfile::Builder::new()
            .prefix("gravity-install-")
            .tempdir_in("/var/tmp")
            .expect("temp dir");
        Installation {
            state: tmp.path().join("state"),
            app_data: tmp.path().join("app-data"),
            _tmp: tmp,
            _user: user,
        }
    }

    /// The flags every test install of the example uses.
    pub fn install_args(&self) -> Vec<String> {
        let mut args = image_args(&example_image());
        args.extend([
            "--mount".into(),
            format!("app-data:{}", self.app_data.display()),
        ]);
        args
    }

    pub fn install(&self, env: &[(&str, &str)]) -> Output {
        let args = self.install_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        gravity_with_env(&self.state, &args, env)
    }

    /// [`Installation::install`] without ignoring any preflight check: the install sets the
    /// kernel's forwarding on this host.
    pub fn install_fixing_the_kernel(&self) -> Output {
        let args: Vec<String> = self
            .install_args()
            .into_iter()
            .filter(|a| !a.starts_with("--ignore-preflight-errors"))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        gravity(&self.state, &args)
    }

    /// Installs another cluster image built from a copy of the example (its `app-data` volume
    /// goes to this installation's directory).
    pub fn install_example_variant(&self, image: &Path) -> Output {
        let mut args = image_args(image);
        args.extend([
            "--mount".into(),
            format!("app-data:{}", self.app_data.display()),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        gravity(&self.state, &args)
    }

    /// Installs another cluster image.
    pub fn install_image(&self, image: &Path) -> Output {
        let args = image_args(image);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        gravity(&self.state, &args)
    }

    pub fn status(&self) -> serde_json::Value {
        let out = gravity(&self.state, &["status", "--output", "json"]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status is not JSON ({e}): {}", text(&out)))
    }

    /// Runs a command inside planet and returns its stdout.
    pub fn exec(&self, cmd: &[&str]) -> String {
        let mut args = vec!["planet", "exec", "--"];
        args.extend_from_slice(cmd);
        let out = gravity(&self.state, &args);
        assert!(
            out.status.success(),
            "{cmd:?} inside planet failed: {}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn uninstall(&self) -> Output {
        gravity(&self.state, &["uninstall", "--yes"])
    }
}

impl Default for Installation {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Installation {
    fn drop(&mut self) {
        if self.state.exists() {
            let out = self.uninstall();
            if !out.status.success() {
                eprintln!("cleanup: gravity uninstall failed: {}", text(&out));
                let _ = Command::new(bins::path("gravity"))
                    .args(["planet", "stop", "--state-dir"])
                    .arg(&self.state)
                    .status();
            }
        }
    }
}
