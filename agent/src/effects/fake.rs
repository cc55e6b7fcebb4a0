//! Recording fakes of every host effect, writing one shared log: a whole operation runs over
//! them without root and without touching the host, and its log is compared with a golden file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster_image::manifest::{Manifest, NodeProfile};
use planet::host::fs::RecordingFs;
use preflight::HostChanger;
use preflight::autofix::AutofixError;
use systemd::manager::{Recorder, ServiceManager};

use super::{Effects, ImagePush, Kernel, NodeChecks, PlanetControl};
use crate::host::user::RecordingAccounts;

pub type Log = Arc<Mutex<Vec<String>>>;

fn say(log: &Log, line: String) {
    log.lock().expect("log lock").push(line);
}

/// A host in memory (accounts, directories, units) and a fixture root for the kernel's files.
pub struct FakeHost {
    pub log: Log,
    /// `/proc` and `/etc` as the kernel effects see them.
    pub root: PathBuf,
    /// Whether systemd is PID 1.
    pub systemd: bool,
    /// A hook whose Job fails.
    pub failing_hook: Option<String>,
    /// Checks the preflight reports, by the cluster version it runs for: (version, id,
    /// requirement, passes).
    pub checks: Vec<(String, String, String, bool)>,
}

impl FakeHost {
    /// A Debian-like host under `root`: the service user missing, `ip_forward` off, inotify's
    /// default limit, the modules Kubernetes needs loaded.
    pub fn new(root: &Path, systemd: bool) -> FakeHost {
        for (path, content) in [
            ("proc/sys/net/ipv4/ip_forward", "0\n"),
            ("proc/sys/net/bridge/bridge-nf-call-iptables", "1\n"),
            ("proc/sys/net/bridge/bridge-nf-call-ip6tables", "1\n"),
            ("proc/sys/fs/may_detach_mounts", "1\n"),
            // The kernel's default instances; the watches of a host with plenty of memory.
            ("proc/sys/fs/inotify/max_user_instances", "128\n"),
            ("proc/sys/fs/inotify/max_user_watches", "1048576\n"),
            (
                "proc/modules",
                "overlay 1 0 - Live 0x0\nbr_netfilter 1 0 - Live 0x0\nnf_conntrack 1 0 - Live 0x0\n",
            ),
        ] {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().expect("a parent")).expect("fixture dir");
            std::fs::write(p, content).expect("fixture file");
        }
        FakeHost {
            log: Log::default(),
            root: root.to_path_buf(),
            systemd,
            failing_hook: None,
            checks: Vec::new(),
        }
    }

    pub fn effects(&self) -> Effects {
        let accounts = RecordingAccounts::new("root:x:0:0:root:/root:/bin/bash\n", "root:x:0:\n")
            .sharing(self.log.clone());
        let fs = RecordingFs::with(&["/", "/var", "/var/lib", "/usr/local/bin"])
            .sharing(self.log.clone());
        Effects {
            accounts: Box::new(accounts),
            fs: Box::new(fs),
            services: self
                .systemd
                .then(|| Box::new(Recorder::sharing(self.log.clone())) as Box<dyn ServiceManager>),
            kernel: Kernel {
                host: preflight::Host::with_root(&self.root),
                changer: Box::new(FakeKernel {
                    root: self.root.clone(),
                    log: self.log.clone(),
                }),
            },
            checks: Box::new(FakeChecks {
                log: self.log.clone(),
                checks: self.checks.clone(),
            }),
            planet: Box::new(FakePlanet {
                log: self.log.clone(),
            }),
            hooks: Box::new(FakeHooks {
                log: self.log.clone(),
                failing: self.failing_hook.clone(),
            }),
            images: Box::new(FakePush {
                log: self.log.clone(),
            }),
            agent: Box::new(FakeAgent {
                log: self.log.clone(),
            }),
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }
}

/// Writes kernel settings files under the fixture root; modprobe is only recorded.
struct FakeKernel {
    root: PathBuf,
    log: Log,
}

impl FakeKernel {
    fn under(&self, path: &Path) -> PathBuf {
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }
}

impl HostChanger for FakeKernel {
    fn load_module(&mut self, name: &str) -> Result<(), AutofixError> {
        say(&self.log, format!("modprobe {name}"));
        Ok(())
    }
    fn write_file(&mut self, path: &Path, contents: &str) -> Result<(), AutofixError> {
        say(
            &self.log,
            format!("write {} {:?}", path.display(), contents.trim_end()),
        );
        let full = self.under(path);
        std::fs::create_dir_all(full.parent().expect("a parent"))
            .and_then(|()| std::fs::write(&full, contents))
            .map_err(|source| AutofixError::Write {
                path: path.to_path_buf(),
                source,
            })
    }
    fn read_file(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(self.under(path)).ok()
    }
    fn remove_file(&mut self, path: &Path) -> Result<(), AutofixError> {
        say(&self.log, format!("rm {}", path.display()));
        let _ = std::fs::remove_file(self.under(path));
        Ok(())
    }
}

/// Reports the host's `checks` for the manifest's version (none unless a test sets some).
struct FakeChecks {
    log: Log,
    checks: Vec<(String, String, String, bool)>,
}

impl NodeChecks for FakeChecks {
    fn run(
        &self,
        manifest: &Manifest,
        profile: &NodeProfile,
        _opts: &preflight::Options,
        image_dir: &Path,
    ) -> preflight::Report {
        say(
            &self.log,
            format!(
                "preflight {} of {} (scripts in {})",
                profile.name,
                manifest.metadata.name,
                image_dir.display()
            ),
        );
        let version = &manifest.metadata.resource_version;
        let checks = self
            .checks
            .iter()
            .filter(|(v, ..)| v == version)
            .map(|(_, id, required, passes)| {
                let status = if *passes {
                    preflight::Status::Pass
                } else {
                    preflight::Status::Fail
                };
                preflight::CheckResult::new(id, id, status).required(required)
            })
            .collect();
        preflight::Report {
            subject: preflight::report::Subject {
                profile: profile.name.clone(),
                cluster: Some(manifest.metadata.name.clone()),
                version: None,
                hostname: None,
            },
            checks,
            ..Default::default()
        }
    }
}

struct FakePlanet {
    log: Log,
}

impl PlanetControl for FakePlanet {
    fn start(&self, state_dir: &Path, _timeout: Duration) -> anyhow::Result<()> {
        anyhow::ensure!(
            planet::config::PlanetConfig::load(state_dir).is_ok(),
            "planet is started before it is configured"
        );
        say(&self.log, format!("planet start {}", state_dir.display()));
        Ok(())
    }
    fn wait_healthy(&self, state_dir: &Path, _timeout: Duration) -> anyhow::Result<()> {
        say(
            &self.log,
            format!("planet wait-healthy {}", state_dir.display()),
        );
        Ok(())
    }
    fn wait_apiserver(&self, state_dir: &Path, _timeout: Duration) -> anyhow::Result<()> {
        say(
            &self.log,
            format!("planet wait-apiserver {}", state_dir.display()),
        );
        Ok(())
    }
    fn wait_node_ready(&self, state_dir: &Path, _timeout: Duration) -> anyhow::Result<()> {
        say(
            &self.log,
            format!("planet wait-node-ready {}", state_dir.display()),
        );
        Ok(())
    }
    fn system_images(&self, state_dir: &Path) -> Option<PathBuf> {
        Some(state_dir.join("planet-root/usr/share/planet/images"))
    }
    fn start_system_workloads(&self, state_dir: &Path, _timeout: Duration) -> anyhow::Result<()> {
        say(
            &self.log,
            format!("planet start-system-workloads {}", state_dir.display()),
        );
        Ok(())
    }
    fn teardown(&self, state_dir: &Path) -> anyhow::Result<()> {
        say(
            &self.log,
            format!("planet teardown {}", state_dir.display()),
        );
        Ok(())
    }
    fn stop(&self, state_dir: &Path, _timeout: Duration) -> anyhow::Result<()> {
        say(&self.log, format!("planet stop {}", state_dir.display()));
        Ok(())
    }
    fn etcd_snapshot(&self, _state_dir: &Path, inside: &str) -> anyhow::Result<()> {
        say(&self.log, format!("etcdctl snapshot save {inside}"));
        Ok(())
    }
    fn drain(&self, _state_dir: &Path, node: &str, evict: bool) -> anyhow::Result<()> {
        say(&self.log, format!("kubectl drain {node} evict={evict}"));
        Ok(())
    }
    fn uncordon(&self, _state_dir: &Path, node: &str) -> anyhow::Result<()> {
        say(&self.log, format!("kubectl uncordon {node}"));
        Ok(())
    }
    fn node_count(&self, _state_dir: &Path) -> anyhow::Result<usize> {
        Ok(1)
    }
    fn release_leader_leases(&self, _state_dir: &Path) -> anyhow::Result<()> {
        say(&self.log, "planet release-leader-leases".into());
        Ok(())
    }
}

struct FakePush {
    log: Log,
}

impl ImagePush for FakePush {
    fn push(
        &self,
        layout: &Path,
        registry: &str,
        _say: &mut dyn FnMut(String),
    ) -> anyhow::Result<()> {
        say(
            &self.log,
            format!("push {} to {registry}", layout.display()),
        );
        Ok(())
    }
}

struct FakeHooks {
    log: Log,
    failing: Option<String>,
}

impl crate::hooks::HookRunner for FakeHooks {
    fn run(
        &self,
        _state_dir: &Path,
        hook: &str,
        job: &crate::hooks::job::PreparedJob,
        _timeout: Duration,
        _log: &Path,
        _say: &mut dyn FnMut(String),
    ) -> anyhow::Result<()> {
        say(
            &self.log,
            format!("hook {hook}: job {}/{}", job.namespace, job.name),
        );
        if self.failing.as_deref() == Some(hook) {
            anyhow::bail!("the {hook} hook's Job failed");
        }
        Ok(())
    }
    fn merge_values(
        &self,
        _state_dir: &Path,
        files: &[PathBuf],
        sets: &[String],
    ) -> anyhow::Result<String> {
        say(
            &self.log,
            format!("helm merge {} values files, set {sets:?}", files.len()),
        );
        Ok("{}\n".into())
    }
}

struct FakeAgent {
    log: Log,
}

impl crate::join::AgentService for FakeAgent {
    fn start(
        &self,
        _layout: &crate::state_dir::StateDir,
        unit: &systemd::units::AgentUnit,
    ) -> anyhow::Result<()> {
        say(
            &self.log,
            format!("agent start: {} agent serve", unit.gravity.display()),
        );
        Ok(())
    }
    fn remove(&self, _layout: &crate::state_dir::StateDir) -> anyhow::Result<()> {
        say(&self.log, "agent remove".into());
        Ok(())
    }
}
