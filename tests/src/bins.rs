//! The built `gravity` and `tele` binaries, next to the test executable's profile directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>/<name>` for a test running from `target/<profile>/deps/`. `GRAVITY_BIN`
/// and `TELE_BIN` override.
pub fn path(name: &str) -> PathBuf {
    let env = format!("{}_BIN", name.to_uppercase());
    if let Ok(p) = std::env::var(&env) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let bin = profile_dir.join(name);
    assert!(
        bin.is_file(),
        "{} is not built: run `make release` (or `cargo build --bins` for this profile) before the integration tests, or set {env}",
        bin.display()
    );
    bin
}

pub fn gravity() -> Command {
    Command::new(path("gravity"))
}

pub fn tele() -> Command {
    Command::new(path("tele"))
}

/// `tele build MANIFEST -o OUT --gravity <the built gravity>` with planet's helm rendering the
/// charts; callers add their flags.
pub fn tele_build(manifest: &Path, out: &Path) -> Command {
    let mut cmd = tele();
    cmd.arg("build")
        .arg(manifest)
        .arg("-o")
        .arg(out)
        .arg("--gravity")
        .arg(path("gravity"))
        .env("TELE_HELM", helm());
    cmd
}

/// The helm planet ships (`TELE_HELM`, or planet-image/kube/build.sh's, from its cache).
pub fn helm() -> PathBuf {
    static HELM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    HELM.get_or_init(|| {
        if let Ok(p) = std::env::var("TELE_HELM") {
            return PathBuf::from(p);
        }
        let out = Command::new(repo().join("planet-image/kube/build.sh"))
            .output()
            .expect("run planet-image/kube/build.sh");
        assert!(
            out.status.success(),
            "planet-image/kube/build.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .expect("build.sh prints its directory")
            .trim()
            .to_string();
        let helm = Path::new(&dir).join("helm");
        assert!(helm.is_file(), "{} is missing", helm.display());
        helm
    })
    .clone()
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// Fails the test with a clear message unless it runs as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the integration tests change the host (mounts, namespaces, users) and must run as root"
    );
}
