//! `--autofix`: loads missing kernel modules and sets the sysctls the cluster needs, persisting
//! both so that a reboot keeps them, and reports every change it made or could not make.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::checks::kernel::{ModuleState, SYSCTLS, module_state, modules_for, sysctl_path};
use crate::host::Host;
use cluster_image::manifest::NetworkType;

pub const MODULES_FILE: &str = "/etc/modules-load.d/gravity.conf";
pub const SYSCTL_FILE: &str = "/etc/sysctl.d/99-gravity.conf";

#[derive(Debug, thiserror::Error)]
pub enum AutofixError {
    #[error("modprobe {module} failed: {reason}")]
    Modprobe { module: String, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove {path}: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What changes the host. The real one runs modprobe and writes files under the host root; the
/// recording one only remembers what it was asked.
pub trait HostChanger {
    fn load_module(&mut self, name: &str) -> Result<(), AutofixError>;
    /// Writes `contents` to a host path (e.g. a `/proc/sys` file or a config file).
    fn write_file(&mut self, path: &Path, contents: &str) -> Result<(), AutofixError>;
    /// Reads a host file that autofix merges into; None when it does not exist.
    fn read_file(&self, path: &Path) -> Option<String>;
    /// Removes a host file (undoing a change); a missing one is fine.
    fn remove_file(&mut self, path: &Path) -> Result<(), AutofixError>;
}

pub struct RealChanger {
    host: Host,
}

impl RealChanger {
    pub fn new(host: Host) -> Self {
        RealChanger { host }
    }
}

impl HostChanger for RealChanger {
    fn load_module(&mut self, name: &str) -> Result<(), AutofixError> {
        let out =
            Command::new("modprobe")
                .arg(name)
                .output()
                .map_err(|e| AutofixError::Modprobe {
                    module: name.into(),
                    reason: if e.kind() == io::ErrorKind::NotFound {
                        "modprobe is not installed (install kmod)".into()
                    } else {
                        e.to_string()
                    },
                })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(AutofixError::Modprobe {
                module: name.into(),
                reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    fn write_file(&mut self, path: &Path, contents: &str) -> Result<(), AutofixError> {
        let full = self.host.path(path);
        let err = |source| AutofixError::Write {
            path: path.to_path_buf(),
            source,
        };
        if path.starts_with("/proc") {
            return std::fs::write(&full, contents).map_err(err);
        }
        // A reboot must find it whole, also after a power cut right after the install.
        durable::write_atomic(&full, contents.as_bytes()).map_err(err)
    }

    fn read_file(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(self.host.path(path)).ok()
    }

    fn remove_file(&mut self, path: &Path) -> Result<(), AutofixError> {
        match std::fs::remove_file(self.host.path(path)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(AutofixError::Remove {
                path: path.to_path_buf(),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    LoadModule(String),
    Write(PathBuf, String),
    Remove(PathBuf),
}

/// Records actions; `fail_modules` makes those modprobes fail; `files` serves `read_file`.
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug, Default)]
pub struct RecordingChanger {
    pub actions: Vec<Action>,
    pub fail_modules: Vec<String>,
    pub files: std::collections::BTreeMap<PathBuf, String>,
}

#[cfg(any(test, feature = "test-util"))]
impl HostChanger for RecordingChanger {
    fn load_module(&mut self, name: &str) -> Result<(), AutofixError> {
        self.actions.push(Action::LoadModule(name.into()));
        if self.fail_modules.iter().any(|m| m == name) {
            return Err(AutofixError::Modprobe {
                module: name.into(),
                reason: "FATAL: Module not found".into(),
            });
        }
        Ok(())
    }

    fn write_file(&mut self, path: &Path, contents: &str) -> Result<(), AutofixError> {
        self.actions
            .push(Action::Write(path.to_path_buf(), contents.to_string()));
        self.files.insert(path.to_path_buf(), contents.to_string());
        Ok(())
    }

    fn read_file(&self, path: &Path) -> Option<String> {
        self.files.get(path).cloned()
    }

    fn remove_file(&mut self, path: &Path) -> Result<(), AutofixError> {
        self.actions.push(Action::Remove(path.to_path_buf()));
        self.files.remove(path);
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub what: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Change {
    fn ok(what: String) -> Self {
        Change { what, error: None }
    }
    fn failed(what: String, e: impl ToString) -> Self {
        Change {
            what,
            error: Some(e.to_string()),
        }
    }
}

/// `contents` with `line` added, or with the line for the same key replaced.
fn merge(contents: Option<String>, key: &str, line: &str, sep: Option<char>) -> (String, bool) {
    let mut lines: Vec<String> = contents
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let same_key = |l: &str| match sep {
        Some(c) => l.split(c).next().map(str::trim) == Some(key),
        None => l.trim() == key,
    };
    if lines.iter().any(|l| l.trim() == line) {
        return (lines.join("\n") + "\n", false);
    }
    if let Some(l) = lines.iter_mut().find(|l| same_key(l)) {
        *l = line.to_string();
    } else {
        if lines.is_empty() {
            lines.push(
                "# Written by gravity (install, or check --autofix): what Kubernetes needs.".into(),
            );
        }
        lines.push(line.to_string());
    }
    (lines.join("\n") + "\n", true)
}

fn persist(
    changer: &mut dyn HostChanger,
    file: &str,
    key: &str,
    line: &str,
    sep: Option<char>,
) -> Option<Change> {
    let path = Path::new(file);
    let (contents, changed) = merge(changer.read_file(path), key, line, sep);
    if !changed {
        return None;
    }
    let what = format!("persisted \"{line}\" in {file}");
    Some(match changer.write_file(path, &contents) {
        Ok(()) => Change::ok(what),
        Err(e) => Change::failed(what, e),
    })
}

/// Fixes what it can; the checks run afterwards show the result.
pub fn autofix(host: &Host, changer: &mut dyn HostChanger, network: NetworkType) -> Vec<Change> {
    autofix_only(host, changer, network, &|_| true)
}

/// [`autofix`] for the checks `wanted` accepts (by id: `module:overlay`,
/// `sysctl:net.ipv4.ip_forward`); the others are left as they are.
pub fn autofix_only(
    host: &Host,
    changer: &mut dyn HostChanger,
    network: NetworkType,
    wanted: &dyn Fn(&str) -> bool,
) -> Vec<Change> {
    let mut changes = Vec::new();
    for m in modules_for(network)
        .into_iter()
        .filter(|m| wanted(&m.check_id()))
    {
        match module_state(host, m) {
            ModuleState::Loadable => {
                let what = format!("loaded kernel module {}", m.name);
                match changer.load_module(m.name) {
                    Ok(()) => {
                        changes.push(Change::ok(what));
                        changes.extend(persist(changer, MODULES_FILE, m.name, m.name, None));
                    }
                    Err(e) => changes.push(Change::failed(what, e)),
                }
            }
            ModuleState::Missing => changes.push(Change::failed(
                format!("load kernel module {}", m.name),
                "it is neither built in nor in /lib/modules: install the kernel modules package",
            )),
            ModuleState::Loaded | ModuleState::BuiltIn => {}
        }
    }
    for s in SYSCTLS.iter().filter(|s| wanted(&s.check_id())) {
        let path = sysctl_path(s.key);
        let current = host.read_opt(&path).ok().flatten();
        let met = current.as_deref().is_some_and(|v| s.met_by(v));
        if s.at_least && met {
            // The host's own value is enough: it is not ours to pin.
            continue;
        }
        if !met {
            let what = format!(
                "set {} = {} (was {})",
                s.key,
                s.value,
                current.as_deref().unwrap_or("missing")
            );
            match changer.write_file(Path::new(&path), &format!("{}\n", s.value)) {
                Ok(()) => changes.push(Change::ok(what)),
                Err(e) => {
                    changes.push(Change::failed(what, e));
                    continue;
                }
            }
        }
        // Persist even when already set at runtime: something set it by hand, a reboot loses it.
        changes.extend(persist(
            changer,
            SYSCTL_FILE,
            s.key,
            &format!("{} = {}", s.key, s.value),
            Some('='),
        ));
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::FixtureRoot;

    #[test]
    fn loads_modules_sets_sysctls_and_persists_both() {
        let fx = FixtureRoot::new()
            .file("proc/sys/kernel/osrelease", "6.1.0-18-amd64\n")
            .file("proc/modules", "nf_conntrack 1 0 - Live 0x0\n")
            .file("proc/filesystems", "nodev\toverlay\n")
            .file(
                "lib/modules/6.1.0-18-amd64/modules.dep",
                "kernel/net/bridge/br_netfilter.ko.xz: kernel/net/bridge/bridge.ko.xz\n",
            )
            .file("proc/sys/net/ipv4/ip_forward", "0\n")
            .file("proc/sys/fs/inotify/max_user_instances", "128\n")
            // More than the minimum: left as it is.
            .file("proc/sys/fs/inotify/max_user_watches", "1048576\n");
        let mut c = RecordingChanger::default();
        c.files.insert(
            SYSCTL_FILE.into(),
            "# mine\nnet.ipv4.ip_forward = 0\nvm.swappiness = 1\n".into(),
        );
        let changes = autofix(&fx.host(), &mut c, NetworkType::Vxlan);
        let what: Vec<&str> = changes.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(
            what,
            [
                "loaded kernel module br_netfilter",
                "persisted \"br_netfilter\" in /etc/modules-load.d/gravity.conf",
                "set net.ipv4.ip_forward = 1 (was 0)",
                "persisted \"net.ipv4.ip_forward = 1\" in /etc/sysctl.d/99-gravity.conf",
                "set net.bridge.bridge-nf-call-iptables = 1 (was missing)",
                "persisted \"net.bridge.bridge-nf-call-iptables = 1\" in /etc/sysctl.d/99-gravity.conf",
                "set fs.inotify.max_user_instances = 8192 (was 128)",
                "persisted \"fs.inotify.max_user_instances = 8192\" in /etc/sysctl.d/99-gravity.conf",
            ]
        );
        assert!(changes.iter().all(|c| c.error.is_none()));
        assert_eq!(
            c.files[Path::new(SYSCTL_FILE)],
            "# mine\nnet.ipv4.ip_forward = 1\nvm.swappiness = 1\nnet.bridge.bridge-nf-call-iptables = 1\nfs.inotify.max_user_instances = 8192\n"
        );
        assert!(c.actions.contains(&Action::Write(
            "/proc/sys/net/ipv4/ip_forward".into(),
            "1\n".into()
        )));
        assert_eq!(c.actions[0], Action::LoadModule("br_netfilter".into()));
    }

    #[test]
    fn nothing_to_do_changes_nothing_and_failures_are_reported() {
        let fx = FixtureRoot::new()
            .file("proc/filesystems", "nodev\toverlay\n")
            .file("proc/sys/net/bridge/bridge-nf-call-iptables", "1\n")
            .file("proc/sys/net/netfilter/nf_conntrack_max", "65536\n")
            .file("proc/sys/net/ipv4/ip_forward", "1\n")
            .file("proc/sys/fs/inotify/max_user_instances", "8192\n")
            .file("proc/sys/fs/inotify/max_user_watches", "600000\n");
        let mut c = RecordingChanger::default();
        c.files.insert(
            SYSCTL_FILE.into(),
            "net.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\n".into(),
        );
        assert!(autofix(&fx.host(), &mut c, NetworkType::Vxlan).is_empty());
        assert!(c.actions.is_empty());
        // The same host for the WireGuard overlay: only its module is missing.
        let fx = fx.file("proc/sys/kernel/osrelease", "6.1.0\n").file(
            "lib/modules/6.1.0/modules.dep",
            "kernel/drivers/net/wireguard/wireguard.ko:\n",
        );
        let changes = autofix(&fx.host(), &mut c, NetworkType::Wireguard);
        let what: Vec<&str> = changes.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(
            what,
            [
                "loaded kernel module wireguard",
                "persisted \"wireguard\" in /etc/modules-load.d/gravity.conf"
            ]
        );
        assert_eq!(c.actions[0], Action::LoadModule("wireguard".into()));
        c.actions.clear();

        let fx = FixtureRoot::new()
            .file("proc/sys/kernel/osrelease", "6.1.0\n")
            .file("proc/modules", "")
            .file(
                "lib/modules/6.1.0/modules.dep",
                "kernel/fs/overlayfs/overlay.ko:\nkernel/net/bridge/br_netfilter.ko:\n",
            );
        let mut c = RecordingChanger {
            fail_modules: vec!["br_netfilter".into()],
            ..Default::default()
        };
        let changes = autofix(&fx.host(), &mut c, NetworkType::Vxlan);
        let failed: Vec<(&str, &str)> = changes
            .iter()
            .filter_map(|c| c.error.as_deref().map(|e| (c.what.as_str(), e)))
            .collect();
        assert_eq!(
            failed,
            [
                (
                    "loaded kernel module br_netfilter",
                    "modprobe br_netfilter failed: FATAL: Module not found"
                ),
                (
                    "load kernel module nf_conntrack",
                    "it is neither built in nor in /lib/modules: install the kernel modules package"
                ),
            ]
        );
    }

    #[test]
    fn real_changer_writes_under_its_root() {
        let fx = FixtureRoot::new().file("proc/sys/net/ipv4/ip_forward", "0\n");
        let mut c = RealChanger::new(fx.host());
        c.write_file(Path::new("/proc/sys/net/ipv4/ip_forward"), "1\n")
            .unwrap();
        c.write_file(Path::new(SYSCTL_FILE), "x = 1\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(fx.path().join("proc/sys/net/ipv4/ip_forward")).unwrap(),
            "1\n"
        );
        assert_eq!(
            c.read_file(Path::new(SYSCTL_FILE)).as_deref(),
            Some("x = 1\n")
        );
    }
}
