//! A cluster image built from `examples/single-node` and installed under a temporary state
//! directory; uninstalled on drop, also when the test fails.
//!
//! Each installation runs in a network namespace of its own ([`NetNs::host`]): every `gravity`
//! it runs enters it, so planet binds its ports (2379, 2380, 5000) there and a real install on
//! this host is never seen or touched. The `planet` user, `/etc/sysctl.d` and the `gravity`
//! link on the PATH are host-wide: hold `serial::lock("planet")` around installs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::netns::NetNs;
use crate::{bins, planet};

/// Copies the example's manifest directory (examples/single-node) to `dir`, for variants.
pub fn copy_example(dir: &Path) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), &target).unwrap();
            }
        }
    }
    copy(&bins::repo().join("examples/single-node"), dir);
}

/// The example's application image (examples/web/build.sh) as an OCI layout in `dir`.
pub fn example_web_image(dir: &Path) -> PathBuf {
    let out = Command::new(bins::repo().join("examples/web/build.sh"))
        .arg(dir)
        .output()
        .expect("run examples/web/build.sh");
    assert!(
        out.status.success(),
        "examples/web/build.sh: {}",
        text(&out)
    );
    dir.to_path_buf()
}

const EXAMPLE_DIR_PREFIX: &str = "gravity-example-";

fn example_dir(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("{EXAMPLE_DIR_PREFIX}{pid}"))
}

/// Statics are never dropped: the process's example image goes when the process exits.
extern "C" fn remove_example_dir() {
    let _ = std::fs::remove_dir_all(example_dir(std::process::id()));
}

/// The example images of test processes that are gone (killed before their exit handler ran).
fn remove_dead_example_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(EXAMPLE_DIR_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The example cluster image (with planet), built once per test process, removed when it exits.
pub fn example_image() -> PathBuf {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            remove_dead_example_dirs();
            let dir = example_dir(std::process::id());
            std::fs::create_dir_all(&dir).expect("image dir");
            // SAFETY: registers a plain function with no captured state; it only removes a
            // directory, and runs at most once, from exit().
            let registered = unsafe { libc::atexit(remove_example_dir) };
            assert_eq!(registered, 0, "atexit");
            let out = dir.join("example.tar");
            // The quick start's recipe: it makes the web image the example vendors.
            let status = Command::new(bins::repo().join("examples/single-node.sh"))
                .env("TELE", bins::path("tele"))
                .arg(&out)
                .arg("--gravity")
                .arg(bins::path("gravity"))
                .arg("--planet")
                .arg(planet::image_dir())
                .arg("-q")
                .status()
                .expect("run examples/single-node.sh");
            assert!(status.success(), "tele build of the example failed");
            out
        })
        .clone()
}

/// Runs `gravity --state-dir <state> <args>` in `ns` and returns its output.
fn gravity_in(ns: &NetNs, state: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = bins::gravity();
    ns.enter(&mut cmd);
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
    /// The "host" this installation runs on.
    pub ns: NetNs,
    _tmp: tempfile::TempDir,
    _user: planet::ServiceUser,
}

pub const SERVICE_UID: u32 = 1001;

/// `install --image <image>` with the service uid. The sysctls are left as they are: planet
/// does not need them for these tests, `ip_forward` is off in a new network namespace, and the
/// kernel phase would persist them in `/etc/sysctl.d`, a host-wide file a real install on this
/// host may rely on (`install_e2e` tests that phase, and puts the file back).
fn image_args(image: &Path) -> Vec<String> {
    vec![
        "install".into(),
        "--image".into(),
        image.display().to_string(),
        "--service-uid".into(),
        SERVICE_UID.to_string(),
        "--ignore-preflight-errors=sysctl:net.ipv4.ip_forward,sysctl:net.bridge.bridge-nf-call-iptables,sysctl:fs.inotify.*"
            .into(),
        "--yes".into(),
    ]
}

impl Installation {
    pub fn new() -> Installation {
        bins::require_root();
        let user = planet::ServiceUser::expect(SERVICE_UID);
        // On a real filesystem: dockerd's overlay2 does not work on tmpfs.
        let tmp = tempfile::Builder::new()
            .prefix("gravity-install-")
            .tempdir_in("/var/tmp")
            .expect("temp dir");
        Installation {
            state: tmp.path().join("state"),
            app_data: tmp.path().join("app-data"),
            ns: NetNs::host("install"),
            _tmp: tmp,
            _user: user,
        }
    }

    /// The flags every test install of the example uses.
    /// `gravity --state-dir <state> <args>` in this installation's namespace.
    pub fn gravity(&self, args: &[&str]) -> Output {
        gravity_in(&self.ns, &self.state, args, &[])
    }

    /// The `gravity` binary as a command in this installation's namespace.
    pub fn command(&self) -> Command {
        let mut cmd = bins::gravity();
        self.ns.enter(&mut cmd);
        cmd
    }

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
        gravity_in(&self.ns, &self.state, &args, env)
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
        self.gravity(&args)
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
        self.gravity(&args)
    }

    /// Installs another cluster image.
    pub fn install_image(&self, image: &Path) -> Output {
        let args = image_args(image);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.gravity(&args)
    }

    pub fn status(&self) -> serde_json::Value {
        let out = self.gravity(&["status", "--output", "json"]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status is not JSON ({e}): {}", text(&out)))
    }

    /// Runs a command inside planet and returns its stdout.
    pub fn exec(&self, cmd: &[&str]) -> String {
        let mut args = vec!["planet", "exec", "--"];
        args.extend_from_slice(cmd);
        let out = self.gravity(&args);
        assert!(
            out.status.success(),
            "{cmd:?} inside planet failed: {}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn uninstall(&self) -> Output {
        self.gravity(&["uninstall", "--yes"])
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
                let _ = self
                    .command()
                    .arg("--state-dir")
                    .arg(&self.state)
                    .args(["planet", "stop"])
                    .status();
            }
        }
    }
}
