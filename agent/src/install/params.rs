//! What an install was asked to do. Journaled with the plan, so `--resume` needs no flags.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::node::NodeIdentity;

/// Keys are camelCase; the aliases read journals of the first versions, which wrote snake_case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallParams {
    /// The verified, unpacked cluster image.
    #[serde(alias = "image_dir")]
    pub image_dir: PathBuf,
    #[serde(alias = "state_dir")]
    pub state_dir: PathBuf,
    #[serde(alias = "service_uid")]
    pub service_uid: u32,
    #[serde(alias = "service_gid")]
    pub service_gid: u32,
    #[serde(flatten)]
    pub node: NodeIdentity,
    pub flavor: String,
    /// `--mount name:path` overrides of profile volumes.
    pub mounts: Vec<(String, PathBuf)>,
    /// Check ids (or `all`) whose failures only warn.
    #[serde(alias = "ignore_preflight_errors")]
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
    fn journals_of_the_first_versions_still_read() {
        let old = serde_json::json!({
            "image_dir": "/img", "state_dir": "/var/lib/gravity", "service_uid": 1001,
            "service_gid": 1001, "role": "node", "flavor": "", "node_name": "n1",
            "advertise_ip": "10.0.0.5", "mounts": [], "ignore_preflight_errors": ["all"],
            "values": [], "set": []
        });
        let p: InstallParams = serde_json::from_value(old).unwrap();
        assert_eq!(p.node.node_name, "n1");
        assert_eq!(p.ignore_preflight_errors, ["all"]);
        let now = serde_json::to_value(&p).unwrap();
        assert_eq!(now["nodeName"], "n1");
        assert_eq!(now["ignorePreflightErrors"][0], "all");
        assert_eq!(serde_json::from_value::<InstallParams>(now).unwrap(), p);
    }

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
