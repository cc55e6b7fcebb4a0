//! What an install was asked to do. Journaled with the plan, so `--resume` needs no flags.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstallParams {
    /// The verified, unpacked cluster image.
    pub image_dir: PathBuf,
    pub state_dir: PathBuf,
    pub service_uid: u32,
    pub service_gid: u32,
    pub role: String,
    pub flavor: String,
    pub node_name: String,
    pub advertise_ip: IpAddr,
    /// `--mount name:path` overrides of profile volumes.
    pub mounts: Vec<(String, PathBuf)>,
    /// Check ids (or `all`) whose failures only warn.
    pub ignore_preflight_errors: Vec<String>,
    pub values: Vec<PathBuf>,
    pub set: Vec<String>,
}

/// `name:path` from `--mount`.
pub fn parse_mount(arg: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = arg
        .split_once(':')
        .ok_or_else(|| format!("--mount {arg}: write it as NAME:PATH, e.g. app-data:/mnt/data"))?;
    if name.is_empty() {
        return Err(format!("--mount {arg}: the volume name is empty"));
    }
    if !path.starts_with('/') {
        return Err(format!("--mount {arg}: the path must be absolute"));
    }
    Ok((name.to_string(), PathBuf::from(path)))
}

/// A state directory ends up in unit files and mount options: keep it plain.
pub fn check_state_dir(dir: &std::path::Path) -> Result<(), String> {
    let s = dir.to_string_lossy();
    if !dir.is_absolute() {
        return Err(format!("--state-dir {s}: must be an absolute path"));
    }
    if s.chars().any(|c| c.is_whitespace() || c == ',' || c == ':') {
        return Err(format!(
            "--state-dir {s}: must not contain whitespace, ',' or ':' (they break mount options and unit files)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parse_or_say_how_to_write_them() {
        assert_eq!(
            parse_mount("data:/mnt/d").unwrap(),
            ("data".into(), PathBuf::from("/mnt/d"))
        );
        assert!(parse_mount("data").unwrap_err().contains("NAME:PATH"));
        assert!(parse_mount("data:rel").unwrap_err().contains("absolute"));
        assert!(parse_mount(":/x").is_err());
    }

    #[test]
    fn state_dirs_must_be_plain_absolute_paths() {
        assert!(check_state_dir(std::path::Path::new("/var/lib/gravity")).is_ok());
        assert!(check_state_dir(std::path::Path::new("rel")).is_err());
        assert!(check_state_dir(std::path::Path::new("/my state")).is_err());
    }
}
