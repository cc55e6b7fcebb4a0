//! Devices planet gets: the node profile's rules expanded against the host's `/dev`, plus the
//! few nodes every planet needs. The device cgroup denies everything else (Gravity allowed all
//! devices; we do not).

use std::path::{Path, PathBuf};

use crate::access::DeviceAccess;
use serde::{Deserialize, Serialize};

use super::config::DeviceRule;
use crate::host::devices::{self, DeviceError, DeviceKind, DeviceNode};

/// A device node that appears in planet, and what planet may do with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedDevice {
    pub node: DeviceNode,
    pub permissions: DeviceAccess,
    pub file_mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Nodes every planet gets besides the runtime's defaults (null, zero, full, random, urandom,
/// tty, console, ptmx): kubelet's OOM watcher reads `/dev/kmsg`; CNI plugins and VPNs open
/// `/dev/net/tun`.
pub fn base_devices() -> Vec<ResolvedDevice> {
    let dev = |path: &str, major, minor, perms: &str, mode| ResolvedDevice {
        node: DeviceNode {
            path: PathBuf::from(path),
            kind: DeviceKind::Char,
            major,
            minor,
        },
        permissions: perms.parse().expect("valid permissions"),
        file_mode: mode,
        uid: 0,
        gid: 0,
    };
    vec![
        dev("/dev/kmsg", 1, 11, "r", 0o644),
        dev("/dev/net/tun", 10, 200, "rwm", 0o666),
    ]
}

/// Expands every rule's glob under `root`. A node matched by several rules takes the first
/// rule's attributes; a rule that matches nothing is reported and skipped (the hardware may
/// come later: globs are expanded at every start).
pub fn resolve(root: &Path, rules: &[DeviceRule]) -> Result<Vec<ResolvedDevice>, DeviceError> {
    let mut out: Vec<ResolvedDevice> = Vec::new();
    for rule in rules {
        let nodes = devices::expand(root, &rule.path)?;
        if nodes.is_empty() {
            tracing::warn!(pattern = %rule.path, "no device on this host matches: planet starts without it");
        }
        for node in nodes {
            if out.iter().any(|d| d.node.path == node.path) {
                continue;
            }
            out.push(ResolvedDevice {
                node,
                permissions: rule.permissions,
                file_mode: rule.file_mode.0,
                uid: rule.uid,
                gid: rule.gid,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::FileMode;

    #[test]
    fn first_rule_wins_and_missing_devices_are_skipped() {
        let rules = vec![
            DeviceRule {
                path: "/dev/null".into(),
                permissions: "r".parse().unwrap(),
                file_mode: FileMode(0o600),
                uid: 0,
                gid: 1001,
            },
            DeviceRule {
                path: "/dev/nul*".into(),
                permissions: "rw".parse().unwrap(),
                file_mode: FileMode(0o666),
                uid: 0,
                gid: 0,
            },
            DeviceRule {
                path: "/dev/gravity-no-such-device*".into(),
                permissions: "rw".parse().unwrap(),
                file_mode: FileMode(0o666),
                uid: 0,
                gid: 0,
            },
        ];
        let found = resolve(Path::new("/"), &rules).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].permissions.to_string(), "r");
        assert_eq!(found[0].gid, 1001);
    }
}
