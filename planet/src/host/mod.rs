//! Effects on the host that planet needs: cgroups, mounts and loop devices, device nodes,
//! directories. Each sits behind a small trait (or reads through a root prefix) so
//! that the logic above it is unit-tested without root.

pub mod cgroups;
pub mod devfilter;
pub mod devices;
pub mod fs;
pub mod loopdev;
pub mod mountinfo;
pub mod mounts;

use std::path::{Path, PathBuf};

/// `root` joined with an absolute host path: how every reader here reaches the host through a
/// root prefix (`/` on a real host, a fixture tree in tests).
pub fn under(root: &Path, path: &Path) -> PathBuf {
    match path.strip_prefix("/") {
        Ok(rel) => root.join(rel),
        Err(_) => root.join(path),
    }
}

/// Runs a command and turns a failure into one line: the command, its exit status and stderr.
pub fn run_tool(cmd: &mut std::process::Command) -> Result<String, String> {
    let shown = format!("{cmd:?}").replace('"', "");
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(format!(
        "{shown} failed ({}): {}",
        out.status,
        stderr.trim()
    ))
}

/// Whether `name` is an executable in `PATH` (or the usual sbin directories, which a
/// non-login root shell may lack).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_joins_absolute_paths_below_the_root() {
        assert_eq!(
            under(Path::new("/fixture"), Path::new("/etc/passwd")),
            PathBuf::from("/fixture/etc/passwd")
        );
        assert_eq!(
            under(Path::new("/"), Path::new("/etc/passwd")),
            PathBuf::from("/etc/passwd")
        );
    }
}
