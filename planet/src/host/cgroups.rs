//! The host's cgroup hierarchies as planet needs them: which layout (legacy v1, hybrid, pure
//! v2), where planet's cgroup goes, the directories to create and remove, and the control files
//! planet must not be able to write.
//!
//! libcontainer's v1 manager handles only the controller hierarchies; the `name=systemd`
//! hierarchy and a hybrid host's cgroup2 are ours to handle (see
//! `docs`/`reference/system-container.md`). v1 `rmdir` is not recursive: removal is depth-first.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::mountinfo::{self, MountEntry};
use super::under;

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot read the mount table {path}: {source}")]
    MountTable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no cgroup hierarchy is mounted under {CGROUP_ROOT}: mount cgroup2 there (or the v1 controllers) and try again"
    )]
    NoCgroups,
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the cgroup {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error(
        "cannot remove the cgroup {path}: {detail}; processes still in it: {pids:?} (kill them, then run `gravity planet teardown`)"
    )]
    Remove {
        path: PathBuf,
        detail: String,
        pids: Vec<i32>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// v1 controllers only.
    Legacy,
    /// v1 controllers plus a cgroup2 hierarchy at `/sys/fs/cgroup/unified`.
    Hybrid,
    /// cgroup2 at `/sys/fs/cgroup`.
    Unified,
}

/// One mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Hierarchy {
    /// Where it is mounted, e.g. `/sys/fs/cgroup/memory` (host path, without the root prefix).
    pub mount: PathBuf,
    /// The controllers bound to it (`cpu`, `cpuacct`); empty for a named hierarchy.
    pub controllers: Vec<String>,
    /// `systemd` for `name=systemd`.
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLayout {
    pub mode: CgroupMode,
    pub v1: Vec<V1Hierarchy>,
    /// The cgroup2 mount, in hybrid and unified mode.
    pub unified: Option<PathBuf>,
    /// Root prefix for every file access (`/` on a real host).
    pub root: PathBuf,
}

const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
];

/// Control files the container may write at the root of its own cgroup: moving processes and
/// enabling controllers for its children. Every other writable file there is a limit.
const V1_WRITABLE: &[&str] = &[
    "cgroup.procs",
    "tasks",
    "cgroup.event_control",
    "cgroup.clone_children",
    "notify_on_release",
];
const V2_WRITABLE: &[&str] = &["cgroup.procs", "cgroup.threads", "cgroup.subtree_control"];

impl CgroupLayout {
    /// The layout of the host seen through `root`.
    pub fn detect(root: &Path) -> Result<Self, CgroupError> {
        let mounts = mountinfo::read(root).map_err(|source| CgroupError::MountTable {
            path: under(root, Path::new("/proc/self/mountinfo")),
            source,
        })?;
        Self::from_mounts(&mounts, root)
    }

    pub fn from_mounts(mounts: &[MountEntry], root: &Path) -> Result<Self, CgroupError> {
        let cg_root = Path::new(CGROUP_ROOT);
        let mut v1 = Vec::new();
        let mut unified = None;
        for m in mounts.iter().filter(|m| m.mount_point.starts_with(cg_root)) {
            match m.fs_type.as_str() {
                "cgroup2" => unified = Some(m.mount_point.clone()),
                "cgroup" => {
                    let controllers: Vec<String> = m
                        .super_options
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o))
                        .map(str::to_string)
                        .collect();
                    let name = m
                        .super_options
                        .split(',')
                        .find_map(|o| o.strip_prefix("name="))
                        .map(str::to_string);
                    // A later mount of the same hierarchy (bind) replaces the earlier.
                    v1.retain(|h: &V1Hierarchy| h.mount != m.mount_point);
                    v1.push(V1Hierarchy {
                        mount: m.mount_point.clone(),
                        controllers,
                        name,
                    });
                }
                _ => {}
            }
        }
        let mode = match (&unified, v1.is_empty()) {
            (Some(u), true) if u == cg_root => CgroupMode::Unified,
            (Some(_), false) => CgroupMode::Hybrid,
            (None, false) => CgroupMode::Legacy,
            _ => return Err(CgroupError::NoCgroups),
        };
        Ok(CgroupLayout {
            mode,
            v1,
            unified,
            root: root.to_path_buf(),
        })
    }

    /// The `name=systemd` hierarchy of a v1 host.
    pub fn systemd_hierarchy(&self) -> Option<&V1Hierarchy> {
        self.v1
            .iter()
            .find(|h| h.name.as_deref() == Some("systemd"))
    }

    /// `path` (absolute within a hierarchy, e.g. `/gravity/planet`) in every hierarchy, as host
    /// paths (without the root prefix).
    pub fn dirs(&self, path: &str) -> Vec<PathBuf> {
        let rel = path.trim_start_matches('/');
        self.v1
            .iter()
            .map(|h| h.mount.join(rel))
            .chain(self.unified.iter().map(|u| u.join(rel)))
            .collect()
    }

    /// The hierarchies libcontainer does not place the container in, so the supervisor moves
    /// itself there around `build()`: `name=systemd` (any named v1 hierarchy) and a hybrid
    /// host's cgroup2. Each as (mount point, key of [`Membership::path`]).
    pub fn unmanaged(&self) -> Vec<(PathBuf, String)> {
        let mut out: Vec<(PathBuf, String)> = self
            .v1
            .iter()
            .filter(|h| h.controllers.is_empty())
            .filter_map(|h| Some((h.mount.clone(), format!("name={}", h.name.as_deref()?))))
            .collect();
        if self.mode == CgroupMode::Hybrid
            && let Some(u) = &self.unified
        {
            out.push((u.clone(), String::new()));
        }
        out
    }

    /// The directories whose control files the container sees at the root of its cgroup
    /// mounts, paired with where it sees them: v1 controller hierarchies at
    /// `/sys/fs/cgroup/<mount name>`, pure cgroup2 at `/sys/fs/cgroup`. A hybrid host's
    /// cgroup2 is not mounted into the container.
    pub fn container_views(&self, path: &str) -> Vec<(PathBuf, PathBuf)> {
        let rel = path.trim_start_matches('/');
        match self.mode {
            CgroupMode::Unified => self
                .unified
                .iter()
                .map(|u| (u.join(rel), PathBuf::from(CGROUP_ROOT)))
                .collect(),
            CgroupMode::Legacy | CgroupMode::Hybrid => self
                .v1
                .iter()
                .filter(|h| !h.controllers.is_empty())
                .filter_map(|h| {
                    let name = h.mount.file_name()?;
                    Some((h.mount.join(rel), Path::new(CGROUP_ROOT).join(name)))
                })
                .collect(),
        }
    }

    /// The control files of planet's own cgroup that planet must not write (its limits), each
    /// as (host file, path inside the container): they are bind-mounted read-only over the
    /// container's cgroup mounts. Files that are read-only anyway are left out.
    pub fn readonly_files(&self, path: &str) -> Result<Vec<(PathBuf, PathBuf)>, CgroupError> {
        let writable = match self.mode {
            CgroupMode::Unified => V2_WRITABLE,
            _ => V1_WRITABLE,
        };
        let mut out = Vec::new();
        for (host_dir, container_dir) in self.container_views(path) {
            let dir = under(&self.root, &host_dir);
            let entries = std::fs::read_dir(&dir).map_err(|source| CgroupError::Read {
                path: dir.clone(),
                source,
            })?;
            let mut files = BTreeSet::new();
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                let name = entry.file_name().to_string_lossy().into_owned();
                if meta.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o222 != 0
                    && !writable.contains(&name.as_str())
                {
                    files.insert(name);
                }
            }
            out.extend(
                files
                    .into_iter()
                    .map(|f| (host_dir.join(&f), container_dir.join(&f))),
            );
        }
        Ok(out)
    }

    /// Creates `path` in every hierarchy. v1 cpuset children start with no CPUs: copy the
    /// parent's; cgroup2 ancestors get every available controller enabled for their children.
    pub fn create(&self, path: &str) -> Result<(), CgroupError> {
        for h in &self.v1 {
            let mount = under(&self.root, &h.mount);
            let cpuset = h.controllers.iter().any(|c| c == "cpuset");
            for dir in ancestors_below(&mount, path) {
                if dir.is_dir() {
                    continue;
                }
                std::fs::create_dir(&dir).map_err(|source| CgroupError::Create {
                    path: dir.clone(),
                    source,
                })?;
                if cpuset {
                    for file in ["cpuset.cpus", "cpuset.mems"] {
                        let parent = dir.parent().unwrap_or(&mount).join(file);
                        let value = read_trimmed(&parent)?;
                        write_file(&dir.join(file), &value)?;
                    }
                }
            }
        }
        if let Some(u) = &self.unified {
            let mount = under(&self.root, u);
            let dirs = ancestors_below(&mount, path);
            for dir in &dirs {
                if self.mode == CgroupMode::Unified {
                    let parent = dir.parent().unwrap_or(&mount);
                    enable_controllers(parent)?;
                }
                if !dir.is_dir() {
                    std::fs::create_dir(dir).map_err(|source| CgroupError::Create {
                        path: dir.clone(),
                        source,
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Directories at or below `path` that still exist, in every hierarchy.
    pub fn existing(&self, path: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for dir in self.dirs(path) {
            let full = under(&self.root, &dir);
            if full.is_dir() {
                out.extend(subtree(&full));
            }
        }
        out
    }

    /// Kills what is left in `path` (in every hierarchy) and removes its directories deepest
    /// first. Busy cgroups (processes still exiting) are retried until `timeout`.
    pub fn remove(&self, path: &str, timeout: Duration) -> Result<(), CgroupError> {
        let deadline = Instant::now() + timeout;
        for dir in self.dirs(path) {
            let full = under(&self.root, &dir);
            if !full.is_dir() {
                continue;
            }
            let mut killed = false;
            for d in subtree(&full).into_iter().rev() {
                loop {
                    match std::fs::remove_dir(&d) {
                        Ok(()) => break,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                        Err(e) => {
                            let pids = procs_below(&d);
                            if !killed && !pids.is_empty() {
                                tracing::warn!(cgroup = %d.display(), ?pids, "killing processes left in planet's cgroup");
                                for pid in &pids {
                                    let _ = nix::sys::signal::kill(
                                        nix::unistd::Pid::from_raw(*pid),
                                        nix::sys::signal::Signal::SIGKILL,
                                    );
                                }
                                killed = true;
                            }
                            if Instant::now() >= deadline {
                                return Err(CgroupError::Remove {
                                    path: d.clone(),
                                    detail: e.to_string(),
                                    pids,
                                });
                            }
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Moves process `pid` into the cgroup directory `dir` (host path without the root prefix).
pub fn move_to(root: &Path, dir: &Path, pid: u32) -> Result<(), CgroupError> {
    write_file(&under(root, dir).join("cgroup.procs"), &pid.to_string())
}

/// Where planet's cgroup goes, given where the supervisor runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CgroupPlan {
    pub mode: CgroupMode,
    /// planet's cgroup, the same path in every hierarchy: `<base>/planet`.
    pub path: String,
    /// The parent that gravity created and may remove when empty (`/gravity`), if any.
    pub owned_base: Option<String>,
    /// cgroup2 forbids processes in a cgroup whose children have controllers: there the
    /// supervisor moves itself into this leaf first.
    pub supervisor: Option<String>,
}

/// A process's cgroup memberships (`/proc/<pid>/cgroup`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership(pub Vec<(String, String)>);

impl Membership {
    pub fn read(root: &Path, pid: &str) -> Result<Self, CgroupError> {
        let path = under(root, &Path::new("/proc").join(pid).join("cgroup"));
        let text =
            std::fs::read_to_string(&path).map_err(|source| CgroupError::Read { path, source })?;
        Ok(Self::parse(&text))
    }

    /// `ID:controllers:path` lines; the cgroup2 line has empty controllers.
    pub fn parse(text: &str) -> Self {
        Membership(
            text.lines()
                .filter_map(|l| {
                    let mut f = l.splitn(3, ':');
                    let _id = f.next()?;
                    Some((f.next()?.to_string(), f.next()?.to_string()))
                })
                .collect(),
        )
    }

    /// The path in the hierarchy whose controller list (or `name=`) contains `key`; `""` for
    /// cgroup2.
    pub fn path(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(c, _)| {
                if key.is_empty() {
                    c.is_empty()
                } else {
                    c.split(',').any(|x| x == key)
                }
            })
            .map(|(_, p)| p.as_str())
    }
}

/// Decides where planet's cgroup goes: `<unit cgroup>/planet` below the supervisor's own
/// cgroup when it has one (a systemd unit with `Delegate=yes`: one planet per unit), else
/// `/gravity/planet-<instance>`, where `instance` tells apart the planets of different state
/// directories (tests, a second install): one must never touch another's cgroups.
pub fn plan(layout: &CgroupLayout, own: &Membership, instance: &str) -> CgroupPlan {
    let own_path = match layout.mode {
        CgroupMode::Unified => own.path(""),
        CgroupMode::Legacy | CgroupMode::Hybrid => own.path("name=systemd"),
    }
    .unwrap_or("/");
    // A supervisor restarted from within its own leaf uses the same base as before:
    // `<unit>/supervisor` is below the unit, `/gravity/supervisor-<instance>` below nothing.
    let own_path = match own_path.rsplit_once('/') {
        Some((_, last)) if last.starts_with("supervisor-") => "/",
        Some((parent, "supervisor")) if !parent.is_empty() => parent,
        _ => own_path,
    };
    let (base, leaf, owned_base) = if own_path == "/" || own_path.is_empty() {
        (
            "/gravity".to_string(),
            format!("planet-{instance}"),
            Some("/gravity".to_string()),
        )
    } else {
        (
            own_path.trim_end_matches('/').to_string(),
            "planet".to_string(),
            None,
        )
    };
    let supervisor = match &owned_base {
        Some(_) => format!("{base}/supervisor-{instance}"),
        None => format!("{base}/supervisor"),
    };
    CgroupPlan {
        mode: layout.mode,
        path: format!("{base}/{leaf}"),
        supervisor: (layout.mode == CgroupMode::Unified).then_some(supervisor),
        owned_base,
    }
}

/// `mount/a`, `mount/a/b`, ... for `path` = `/a/b`.
fn ancestors_below(mount: &Path, path: &str) -> Vec<PathBuf> {
    let mut dir = mount.to_path_buf();
    path.split('/')
        .filter(|c| !c.is_empty())
        .map(|c| {
            dir.push(c);
            dir.clone()
        })
        .collect()
}

/// `dir` and every directory below it, parents before children.
fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(entries) = std::fs::read_dir(&out[i]) {
            let mut children: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect();
            children.sort();
            out.extend(children);
        }
        i += 1;
    }
    out
}

/// Every pid in `dir`'s subtree.
pub fn procs_below(dir: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = subtree(dir)
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

fn enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let available = read_trimmed(&dir.join("cgroup.controllers"))?;
    let enabled = read_trimmed(&dir.join("cgroup.subtree_control")).unwrap_or_default();
    for c in available.split_whitespace() {
        if enabled.split_whitespace().any(|e| e == c) {
            continue;
        }
        // One at a time: a controller the kernel refuses here (threaded, busy) must not keep
        // the others off.
        if let Err(e) = write_file(&dir.join("cgroup.subtree_control"), &format!("+{c}")) {
            tracing::debug!(error = %e, "controller {c} not enabled in {}", dir.display());
        }
    }
    Ok(())
}

fn read_trimmed(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| CgroupError::Read {
            path: path.to_path_buf(),
            source,
        })
}

fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::mountinfo::parse;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const UNIFIED: &str = "\
25 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    fn layout(text: &str, root: &Path) -> CgroupLayout {
        CgroupLayout::from_mounts(&parse(text), root).unwrap()
    }

    #[test]
    fn detects_the_three_layouts() {
        let hybrid = layout(HYBRID, Path::new("/"));
        assert_eq!(hybrid.mode, CgroupMode::Hybrid);
        assert_eq!(hybrid.v1.len(), 4);
        assert_eq!(
            hybrid.systemd_hierarchy().unwrap().mount,
            PathBuf::from("/sys/fs/cgroup/systemd")
        );
        let legacy: String = HYBRID.lines().take(5).map(|l| format!("{l}\n")).collect();
        assert_eq!(layout(&legacy, Path::new("/")).mode, CgroupMode::Legacy);
        let unified = layout(UNIFIED, Path::new("/"));
        assert_eq!(unified.mode, CgroupMode::Unified);
        assert_eq!(
            unified.dirs("/gravity/planet"),
            [PathBuf::from("/sys/fs/cgroup/gravity/planet")]
        );
        assert!(matches!(
            CgroupLayout::from_mounts(&parse(""), Path::new("/")),
            Err(CgroupError::NoCgroups)
        ));
    }

    #[test]
    fn hybrid_dirs_and_the_hierarchies_libcontainer_leaves_to_us() {
        let l = layout(HYBRID, Path::new("/"));
        assert_eq!(l.dirs("/gravity/planet").len(), 5);
        assert_eq!(
            l.unmanaged(),
            [
                (
                    PathBuf::from("/sys/fs/cgroup/systemd"),
                    "name=systemd".to_string()
                ),
                (PathBuf::from("/sys/fs/cgroup/unified"), String::new())
            ]
        );
        assert_eq!(
            l.container_views("/gravity/planet")[1],
            (
                PathBuf::from("/sys/fs/cgroup/memory/gravity/planet"),
                PathBuf::from("/sys/fs/cgroup/memory")
            )
        );
        // On pure cgroup2 nothing is left to us, and the container sees its cgroup at the top.
        let u = layout(UNIFIED, Path::new("/"));
        assert!(u.unmanaged().is_empty());
        assert_eq!(
            u.container_views("/x/planet"),
            [(
                PathBuf::from("/sys/fs/cgroup/x/planet"),
                PathBuf::from("/sys/fs/cgroup")
            )]
        );
    }

    #[test]
    fn plans_below_the_supervisors_own_cgroup() {
        let u = layout(UNIFIED, Path::new("/"));
        let own = Membership::parse("0::/system.slice/gravity-planet.service\n");
        let p = plan(&u, &own, "0a1b2c3d");
        assert_eq!(p.path, "/system.slice/gravity-planet.service/planet");
        assert_eq!(
            p.supervisor.as_deref(),
            Some("/system.slice/gravity-planet.service/supervisor")
        );
        assert_eq!(p.owned_base, None);
        // Restarted from within the leaf: same plan.
        let own = Membership::parse("0::/system.slice/gravity-planet.service/supervisor\n");
        assert_eq!(plan(&u, &own, "0a1b2c3d"), p);
        // Not in any unit: below /gravity, which gravity owns, one cgroup per state directory.
        let p = plan(&u, &Membership::parse("0::/\n"), "0a1b2c3d");
        assert_eq!(p.path, "/gravity/planet-0a1b2c3d");
        assert_eq!(
            p.supervisor.as_deref(),
            Some("/gravity/supervisor-0a1b2c3d")
        );
        assert_eq!(p.owned_base.as_deref(), Some("/gravity"));
        let again = plan(
            &u,
            &Membership::parse("0::/gravity/supervisor-0a1b2c3d\n"),
            "0a1b2c3d",
        );
        assert_eq!(again, p);
        assert_ne!(
            plan(&u, &Membership::parse("0::/\n"), "ffffffff").path,
            p.path
        );

        let h = layout(HYBRID, Path::new("/"));
        let own = Membership::parse("9:name=systemd:/\n4:memory:/sandbox/x\n0::/\n");
        let p = plan(&h, &own, "0a1b2c3d");
        assert_eq!(p.path, "/gravity/planet-0a1b2c3d");
        assert_eq!(p.supervisor, None);
    }

    #[test]
    fn membership_paths() {
        let m = Membership::parse("9:name=systemd:/a\n2:cpu,cpuacct:/b\n0::/c\n");
        assert_eq!(m.path("name=systemd"), Some("/a"));
        assert_eq!(m.path("cpuacct"), Some("/b"));
        assert_eq!(m.path(""), Some("/c"));
        assert_eq!(m.path("memory"), None);
    }

    #[test]
    fn readonly_files_are_the_writable_limits() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let u = layout(UNIFIED, root.path());
        let dir = root.path().join("sys/fs/cgroup/gravity/planet");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, mode) in [
            ("memory.max", 0o644),
            ("pids.max", 0o644),
            ("cgroup.procs", 0o644),
            ("cgroup.subtree_control", 0o644),
            ("memory.current", 0o444),
        ] {
            let f = dir.join(name);
            std::fs::write(&f, "").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let ro = u.readonly_files("/gravity/planet").unwrap();
        assert_eq!(
            ro,
            [
                (
                    PathBuf::from("/sys/fs/cgroup/gravity/planet/memory.max"),
                    PathBuf::from("/sys/fs/cgroup/memory.max")
                ),
                (
                    PathBuf::from("/sys/fs/cgroup/gravity/planet/pids.max"),
                    PathBuf::from("/sys/fs/cgroup/pids.max")
                ),
            ]
        );
    }

    #[test]
    fn creates_and_removes_depth_first() {
        let root = tempfile::tempdir().unwrap();
        let h = layout(HYBRID, root.path());
        for m in &h.v1 {
            std::fs::create_dir_all(under(root.path(), &m.mount)).unwrap();
        }
        std::fs::create_dir_all(root.path().join("sys/fs/cgroup/unified")).unwrap();
        h.create("/gravity/planet").unwrap();
        assert!(
            root.path()
                .join("sys/fs/cgroup/memory/gravity/planet")
                .is_dir()
        );
        std::fs::create_dir_all(
            root.path()
                .join("sys/fs/cgroup/systemd/gravity/planet/init.scope"),
        )
        .unwrap();
        assert_eq!(h.existing("/gravity/planet").len(), 6);
        h.remove("/gravity/planet", Duration::from_secs(1)).unwrap();
        assert!(h.existing("/gravity/planet").is_empty());
        assert!(root.path().join("sys/fs/cgroup/memory/gravity").is_dir());
    }
}
