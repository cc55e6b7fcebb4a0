//! `PlanetConfig`: everything needed to run planet on this node, resolved from the manifest at
//! install time and kept at `<state>/planet/config.json`, so that `gravity planet run` never
//! needs the manifest (or the cluster image) again.
//!
//! What depends on the host at start time stays unexpanded here and is resolved by every run:
//! wildcard volume paths and device globs (a GPU driver loaded later adds `/dev/nvidia1`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use cluster_image::manifest::{DevicePermissions, FileMode, Manifest, NodeProfile};
use serde::{Deserialize, Serialize};

use super::artifact::ImageFormat;
use super::paths::Paths;
use super::write_atomic;
use crate::host::user::SERVICE_USER_ENV;

/// The version of this file's layout; a gravity that finds a newer one refuses to guess.
pub const FORMAT: u32 = 1;
pub const DEFAULT_STOP_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_STORAGE_DRIVER: &str = "overlay2";
pub const DEFAULT_HAIRPIN_MODE: &str = "promiscuous-bridge";

/// The persistent data volumes every planet gets, under `<state>/planet/data/<name>`: they
/// outlive planet restarts and image upgrades. A profile volume with the same target (or a
/// `--mount NAME:PATH` with one of these names) replaces the default.
pub const DATA_VOLUMES: &[(&str, &str)] = &[
    ("etcd", "/var/lib/etcd"),
    ("docker", "/var/lib/docker"),
    ("containerd", "/var/lib/containerd"),
    ("registry", "/var/lib/registry"),
    ("kubelet", "/var/lib/kubelet"),
    ("log", "/var/log"),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid planet configuration: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error(
        "{path} has format {found}, newer than this gravity understands ({FORMAT}): use the gravity binary that wrote it"
    )]
    Format { path: PathBuf, found: u32 },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the service {what} cannot be 0 (root): choose another with --service-uid / --service-gid"
    )]
    RootService { what: &'static str },
    #[error("node name {0:?} is not a valid host name: use letters, digits, '-' and '.'")]
    NodeName(String),
    #[error(
        "the planet image {0} is neither .erofs nor .squashfs: import it with planet::artifact::import"
    )]
    ImageFormat(PathBuf),
    #[error("volume {volume}: {field} {value:?} must be an absolute path")]
    NotAbsolute {
        volume: String,
        field: &'static str,
        value: String,
    },
    #[error(
        "volume {volume}: the wildcard path {path:?} maps to targetPath {target:?} only if the target ends with the same wildcard components ({suffix:?}); use the same pattern, or leave targetPath out"
    )]
    WildcardTarget {
        volume: String,
        path: String,
        target: String,
        suffix: String,
    },
    #[error(
        "--mount {name}:{path}: there is no volume named {name:?} in node profile {profile:?} (known: {known})"
    )]
    UnknownMount {
        name: String,
        path: String,
        profile: String,
        known: String,
    },
    #[error("two volumes are mounted at {target} in planet: {first} and {second}")]
    DuplicateTarget {
        target: String,
        first: String,
        second: String,
    },
    #[error(
        "device {0:?}: only device nodes under /dev can be passed to planet; write a glob such as /dev/nvidia*"
    )]
    DevicePath(String),
    #[error(
        "systemOptions.{daemon}.args: {arg:?} contains whitespace, but planet's units split the arguments at whitespace: write it as one word (--flag=value)"
    )]
    ArgWhitespace { daemon: &'static str, arg: String },
}

/// How to run planet on this node. Serialized as camelCase JSON, `format` first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanetConfig {
    pub format: u32,
    pub image: ImageRef,
    pub service_uid: u32,
    pub service_gid: u32,
    pub node: NodeInfo,
    /// In mount order: parents before the volumes nested in them.
    pub volumes: Vec<VolumeMount>,
    pub devices: Vec<DeviceRule>,
    pub daemons: DaemonOptions,
    /// More variables for `/etc/container-environment` (e.g. `GRAVITY_SERVICE_USER`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub resources: Resources,
    pub stop_timeout_secs: u64,
}

/// The image file to run, under the state directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageRef {
    pub path: PathBuf,
    pub sha256: String,
    pub version: String,
    pub format: ImageFormat,
    /// `systemOptions.baseImage` this profile asked for; none for the default image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_image: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeInfo {
    pub name: String,
    pub advertise_ip: IpAddr,
    pub role: String,
    pub cluster_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeKind {
    /// planet's own persistent data (etcd, docker, ...).
    Data,
    /// From the node profile's `requirements.volumes`.
    Profile,
}

/// A host directory bound into planet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeMount {
    pub kind: VolumeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Host path; a shell pattern when `wildcard`.
    pub source: String,
    /// Path inside planet; for a wildcard, a pattern whose wildcard components are replaced by
    /// the matched ones.
    pub target: String,
    pub wildcard: bool,
    pub read_only: bool,
    /// rbind: submounts of the source appear too.
    pub recursive: bool,
    pub create_if_missing: bool,
    pub skip_if_missing: bool,
    /// Owner and mode for a directory gravity creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FileMode>,
}

impl VolumeMount {
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{n} ({})", self.source),
            None => self.source.clone(),
        }
    }
}

/// Devices matching `path` (a glob, expanded at every start) appear in planet with this mode
/// and owner, and the device cgroup allows exactly `permissions` on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceRule {
    pub path: String,
    pub permissions: DevicePermissions,
    pub file_mode: FileMode,
    pub uid: u32,
    pub gid: u32,
}

/// `systemOptions` rendered for planet's units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonOptions {
    pub etcd_args: Vec<String>,
    pub docker_args: Vec<String>,
    pub docker_storage_driver: String,
    pub kubelet_args: Vec<String>,
    pub kubelet_hairpin_mode: String,
    pub allow_privileged: bool,
}

/// Limits on planet's cgroup; none by default (planet gets the node).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
}

/// What the install engine knows about this node beyond the manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanetOptions {
    pub state_dir: PathBuf,
    pub service_uid: u32,
    pub service_gid: u32,
    pub node_name: String,
    pub advertise_ip: IpAddr,
    /// The node profile's name.
    pub role: String,
    pub cluster_name: String,
    /// `--mount NAME:PATH` overrides of volume host paths.
    pub mounts: Vec<(String, PathBuf)>,
    /// The imported image file (see `planet::artifact::import`).
    pub image: PathBuf,
    pub image_sha256: String,
    pub image_version: String,
}

impl PlanetConfig {
    /// Resolves the profile's volumes, devices and system options for this node.
    pub fn from_manifest(
        manifest: &Manifest,
        profile: &NodeProfile,
        opts: &PlanetOptions,
    ) -> Result<PlanetConfig, ConfigError> {
        if opts.service_uid == 0 {
            return Err(ConfigError::RootService { what: "uid" });
        }
        if opts.service_gid == 0 {
            return Err(ConfigError::RootService { what: "gid" });
        }
        if !valid_hostname(&opts.node_name) {
            return Err(ConfigError::NodeName(opts.node_name.clone()));
        }
        let format = ImageFormat::from_path(&opts.image)
            .ok_or(ConfigError::ImageFormat(opts.image.clone()))?;
        let system = manifest.system_options_for(profile);
        let volumes = resolve_volumes(profile, opts)?;
        let devices = profile
            .requirements()
            .devices
            .iter()
            .map(|d| {
                if !d.path.starts_with("/dev/") {
                    return Err(ConfigError::DevicePath(d.path.clone()));
                }
                Ok(DeviceRule {
                    path: d.path.clone(),
                    permissions: d.permissions(),
                    file_mode: FileMode(d.file_mode()),
                    uid: d.uid.unwrap_or(0),
                    gid: d.gid.unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let args = |daemon: &'static str, args: Vec<String>| match args
            .iter()
            .find(|a| a.chars().any(char::is_whitespace))
        {
            Some(arg) => Err(ConfigError::ArgWhitespace {
                daemon,
                arg: arg.clone(),
            }),
            None => Ok(args),
        };
        let docker = system.docker.clone().unwrap_or_default();
        let kubelet = system.kubelet.clone().unwrap_or_default();
        let daemons = DaemonOptions {
            etcd_args: args("etcd", system.etcd.clone().unwrap_or_default().args)?,
            docker_args: args("docker", docker.args)?,
            docker_storage_driver: docker
                .storage_driver
                .unwrap_or_else(|| DEFAULT_STORAGE_DRIVER.to_string()),
            kubelet_args: args("kubelet", kubelet.args)?,
            kubelet_hairpin_mode: kubelet
                .hairpin_mode
                .unwrap_or_else(|| DEFAULT_HAIRPIN_MODE.to_string()),
            allow_privileged: system.allow_privileged.unwrap_or(false),
        };
        Ok(PlanetConfig {
            format: FORMAT,
            image: ImageRef {
                path: opts.image.clone(),
                sha256: opts.image_sha256.clone(),
                version: opts.image_version.clone(),
                format,
                base_image: system.base_image.clone(),
            },
            service_uid: opts.service_uid,
            service_gid: opts.service_gid,
            node: NodeInfo {
                name: opts.node_name.clone(),
                advertise_ip: opts.advertise_ip,
                role: opts.role.clone(),
                cluster_name: opts.cluster_name.clone(),
            },
            volumes,
            devices,
            daemons,
            env: BTreeMap::from([(SERVICE_USER_ENV.to_string(), opts.service_uid.to_string())]),
            resources: Resources::default(),
            stop_timeout_secs: DEFAULT_STOP_TIMEOUT_SECS,
        })
    }

    /// Writes `<state>/planet/config.json` atomically (fsynced).
    pub fn save(&self, state_dir: &Path) -> Result<(), ConfigError> {
        let path = Paths::new(state_dir).config();
        let mut json = serde_json::to_vec_pretty(self).expect("a config serialises");
        json.push(b'\n');
        write_atomic(&path, &json).map_err(|source| ConfigError::Write { path, source })
    }

    pub fn load(state_dir: &Path) -> Result<PlanetConfig, ConfigError> {
        let path = Paths::new(state_dir).config();
        let bytes = std::fs::read(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        // Look at the format first, so that a newer file fails on that and not on a field.
        let found = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("format")?.as_u64())
            .unwrap_or(0) as u32;
        if found > FORMAT {
            return Err(ConfigError::Format { path, found });
        }
        serde_json::from_slice(&bytes).map_err(|e| ConfigError::Parse {
            path,
            detail: e.to_string(),
        })
    }

    /// Removes `<state>/planet/config.json` (rollback).
    pub fn remove(state_dir: &Path) -> Result<(), ConfigError> {
        let path = Paths::new(state_dir).config();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ConfigError::Write { path, source }),
        }
    }

    /// A stable id for planet's systemd (`container_uuid`), so its machine id and journal
    /// directory survive restarts: derived from the cluster and node names.
    pub fn container_uuid(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(
            format!("planet:{}:{}", self.node.cluster_name, self.node.name).as_bytes(),
        );
        hex::encode(&digest[..16])
    }
}

fn resolve_volumes(
    profile: &NodeProfile,
    opts: &PlanetOptions,
) -> Result<Vec<VolumeMount>, ConfigError> {
    let mut overrides: BTreeMap<&str, &Path> = opts
        .mounts
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_path()))
        .collect();
    let profile_volumes = &profile.requirements().volumes;
    let mut out: Vec<VolumeMount> = Vec::new();

    for v in profile_volumes {
        let label = v.name.clone().unwrap_or_else(|| v.path.clone());
        let target = v.target().to_string();
        let mut source = v.path.clone();
        let mut wildcard = v.has_wildcard();
        if let Some(name) = &v.name
            && let Some(path) = overrides.remove(name.as_str())
        {
            source = path.to_string_lossy().into_owned();
            wildcard = source.contains(['*', '?', '[']);
        }
        for (field, value) in [("path", &source), ("targetPath", &target)] {
            if !value.starts_with('/') {
                return Err(ConfigError::NotAbsolute {
                    volume: label.clone(),
                    field,
                    value: value.clone(),
                });
            }
        }
        let target_wild = target.contains(['*', '?', '[']);
        if wildcard || target_wild {
            let suffix = wildcard_suffix(&source);
            if target != source && !target.ends_with(&format!("/{suffix}")) {
                return Err(ConfigError::WildcardTarget {
                    volume: label,
                    path: source,
                    target,
                    suffix,
                });
            }
        }
        out.push(VolumeMount {
            kind: VolumeKind::Profile,
            name: v.name.clone(),
            source,
            target,
            wildcard,
            read_only: false,
            recursive: v.recursive(),
            create_if_missing: v.create_if_missing(),
            skip_if_missing: v.skip_if_missing(),
            uid: v.uid,
            gid: v.gid,
            mode: v.mode,
        });
    }

    let data_dir = Paths::new(&opts.state_dir).data();
    let mut data = Vec::new();
    for (name, target) in DATA_VOLUMES {
        if out.iter().any(|v| v.target == *target) {
            continue;
        }
        let source = match overrides.remove(name) {
            Some(p) => p.to_string_lossy().into_owned(),
            None => data_dir.join(name).to_string_lossy().into_owned(),
        };
        data.push(VolumeMount {
            kind: VolumeKind::Data,
            name: Some(name.to_string()),
            source,
            target: target.to_string(),
            wildcard: false,
            read_only: false,
            recursive: false,
            create_if_missing: true,
            skip_if_missing: false,
            uid: None,
            gid: None,
            // etcd refuses a data directory others can read.
            mode: (*name == "etcd").then_some(FileMode(0o700)),
        });
    }
    data.append(&mut out);
    let mut out = data;

    if let Some((name, path)) = overrides.into_iter().next() {
        let mut known: Vec<String> = profile_volumes
            .iter()
            .filter_map(|v| v.name.clone())
            .chain(DATA_VOLUMES.iter().map(|(n, _)| n.to_string()))
            .collect();
        known.sort();
        return Err(ConfigError::UnknownMount {
            name: name.to_string(),
            path: path.display().to_string(),
            profile: profile.name.clone(),
            known: known.join(", "),
        });
    }
    for (i, v) in out.iter().enumerate() {
        if let Some(first) = out[..i].iter().find(|o| o.target == v.target) {
            return Err(ConfigError::DuplicateTarget {
                target: v.target.clone(),
                first: first.label(),
                second: v.label(),
            });
        }
    }
    // Parents first: /var/lib before /var/lib/etcd. Stable, so equal depths keep their order.
    out.sort_by_key(|v| Path::new(&v.target).components().count());
    Ok(out)
}

/// The components of a pattern from its first wildcard component on: `/a/dir-???/x` gives
/// `dir-???/x`.
pub fn wildcard_suffix(pattern: &str) -> String {
    let parts: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
    let first = parts
        .iter()
        .position(|c| c.contains(['*', '?', '[']))
        .unwrap_or(parts.len());
    parts[first..].join("/")
}

/// Where a host path matched by a wildcard volume appears in planet: the target's prefix plus
/// the matched components.
pub fn wildcard_target(volume: &VolumeMount, matched: &Path) -> PathBuf {
    if volume.target == volume.source {
        return matched.to_path_buf();
    }
    let suffix = wildcard_suffix(&volume.source);
    let depth = suffix.split('/').count();
    let matched_parts: Vec<_> = matched.components().collect();
    let tail: PathBuf = matched_parts[matched_parts.len().saturating_sub(depth)..]
        .iter()
        .collect();
    let prefix = volume
        .target
        .strip_suffix(&suffix)
        .unwrap_or(&volume.target);
    Path::new(prefix).join(tail)
}

fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    pub(crate) const MANIFEST: &str = include_str!("../../tests/golden/app.yaml");

    pub(crate) fn fixture() -> (Manifest, NodeProfile, PlanetOptions) {
        let manifest = cluster_image::manifest::load_str(
            MANIFEST,
            Path::new("app.yaml"),
            Path::new("."),
            &cluster_image::manifest::Offline,
        )
        .expect("the fixture manifest is valid")
        .manifest;
        let profile = manifest.profile(Some("gpu")).unwrap();
        let opts = PlanetOptions {
            state_dir: PathBuf::from("/var/lib/gravity"),
            service_uid: 1001,
            service_gid: 1001,
            node_name: "node-1".into(),
            advertise_ip: "10.0.0.5".parse().unwrap(),
            role: "gpu".into(),
            cluster_name: "example".into(),
            mounts: vec![("app-data".into(), PathBuf::from("/mnt/fast/app-data"))],
            image: PathBuf::from("/var/lib/gravity/planet/images/0.1.0+abc/planet.erofs"),
            image_sha256: "ab".repeat(32),
            image_version: "0.1.0+abc".into(),
        };
        (manifest, profile, opts)
    }

    #[test]
    fn resolves_the_fixture_profile() {
        let (m, p, o) = fixture();
        let c = PlanetConfig::from_manifest(&m, &p, &o).unwrap();
        assert_eq!(c.service_uid, 1001);
        assert_eq!(c.image.format, ImageFormat::Erofs);
        assert_eq!(c.image.base_image.as_deref(), Some("custom-planet:1.0.0"));
        assert_eq!(
            c.daemons.etcd_args,
            ["--heartbeat-interval=150", "--election-timeout=1500"]
        );
        assert_eq!(c.daemons.docker_storage_driver, "overlay");
        assert_eq!(c.env["GRAVITY_SERVICE_USER"], "1001");
        let app = c
            .volumes
            .iter()
            .find(|v| v.name.as_deref() == Some("app-data"))
            .unwrap();
        assert_eq!(
            app.source, "/mnt/fast/app-data",
            "--mount overrides the path"
        );
        assert_eq!(app.target, "/var/lib/app");
        assert_eq!(app.mode, Some(FileMode(0o750)));
        let etcd = c
            .volumes
            .iter()
            .find(|v| v.target == "/var/lib/etcd")
            .unwrap();
        assert_eq!(etcd.source, "/var/lib/gravity/planet/data/etcd");
        assert_eq!(etcd.kind, VolumeKind::Data);
        assert_eq!(c.devices[0].path, "/dev/nvidia*");
        assert_eq!(c.devices[0].permissions.to_string(), "rw");
        assert_eq!(c.devices[0].file_mode, FileMode(0o660));
        // Parents before children.
        let depths: Vec<usize> = c
            .volumes
            .iter()
            .map(|v| Path::new(&v.target).components().count())
            .collect();
        assert!(depths.windows(2).all(|w| w[0] <= w[1]), "{depths:?}");
    }

    #[test]
    fn saves_and_loads() {
        let (m, p, mut o) = fixture();
        let dir = tempfile::tempdir().unwrap();
        o.state_dir = dir.path().to_path_buf();
        let c = PlanetConfig::from_manifest(&m, &p, &o).unwrap();
        c.save(dir.path()).unwrap();
        assert_eq!(PlanetConfig::load(dir.path()).unwrap(), c);
        let text = std::fs::read_to_string(dir.path().join("planet/config.json")).unwrap();
        assert!(text.starts_with("{\n  \"format\": 1,"), "{text}");

        let newer = text.replace("\"format\": 1", "\"format\": 99");
        std::fs::write(dir.path().join("planet/config.json"), newer).unwrap();
        let err = PlanetConfig::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("format 99"), "{err}");
        PlanetConfig::remove(dir.path()).unwrap();
        PlanetConfig::remove(dir.path()).unwrap();
    }

    #[test]
    fn refuses_unknown_mount_overrides() {
        let (m, p, mut o) = fixture();
        o.mounts = vec![("nope".into(), PathBuf::from("/x"))];
        let err = PlanetConfig::from_manifest(&m, &p, &o)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no volume named \"nope\""), "{err}");
        assert!(err.contains("app-data"), "{err}");
        assert!(err.contains("etcd"), "{err}");
    }

    #[test]
    fn data_volumes_can_move() {
        let (m, p, mut o) = fixture();
        o.mounts = vec![("etcd".into(), PathBuf::from("/mnt/ssd/etcd"))];
        let c = PlanetConfig::from_manifest(&m, &p, &o).unwrap();
        let etcd = c
            .volumes
            .iter()
            .find(|v| v.target == "/var/lib/etcd")
            .unwrap();
        assert_eq!(etcd.source, "/mnt/ssd/etcd");
    }

    #[test]
    fn refuses_args_that_units_would_split() {
        let (mut m, p, o) = fixture();
        m.system_options
            .as_mut()
            .unwrap()
            .etcd
            .as_mut()
            .unwrap()
            .args
            .push("--name two words".into());
        // The gpu profile inherits etcd args from the cluster-wide options.
        let err = PlanetConfig::from_manifest(&m, &p, &o)
            .unwrap_err()
            .to_string();
        assert!(err.contains("systemOptions.etcd.args"), "{err}");
    }

    #[test]
    fn wildcard_targets() {
        let v = VolumeMount {
            kind: VolumeKind::Profile,
            name: Some("w".into()),
            source: "/srv/dir-???".into(),
            target: "/data/in/dir-???".into(),
            wildcard: true,
            read_only: false,
            recursive: false,
            create_if_missing: false,
            skip_if_missing: false,
            uid: None,
            gid: None,
            mode: None,
        };
        assert_eq!(
            wildcard_target(&v, Path::new("/srv/dir-001")),
            PathBuf::from("/data/in/dir-001")
        );
        let same = VolumeMount {
            target: v.source.clone(),
            ..v.clone()
        };
        assert_eq!(
            wildcard_target(&same, Path::new("/srv/dir-002")),
            PathBuf::from("/srv/dir-002")
        );
        assert_eq!(wildcard_suffix("/a/b*/c"), "b*/c");
    }

    #[test]
    fn refuses_bad_wildcard_targets_and_device_paths() {
        let (mut m, _, o) = fixture();
        let profile = m
            .node_profiles
            .iter_mut()
            .find(|p| p.name == "gpu")
            .unwrap();
        let reqs = profile.requirements.as_mut().unwrap();
        reqs.volumes[0].target_path = Some("/elsewhere".into());
        let p = profile.clone();
        let err = PlanetConfig::from_manifest(&m, &p, &o)
            .unwrap_err()
            .to_string();
        assert!(err.contains("wildcard"), "{err}");

        let (mut m, _, o) = fixture();
        let profile = m
            .node_profiles
            .iter_mut()
            .find(|p| p.name == "gpu")
            .unwrap();
        profile.requirements.as_mut().unwrap().devices[0].path = "/srv/nvidia*".into();
        let p = profile.clone();
        assert!(matches!(
            PlanetConfig::from_manifest(&m, &p, &o),
            Err(ConfigError::DevicePath(_))
        ));
    }

    #[test]
    fn hostnames() {
        assert!(valid_hostname("node-1.example.com"));
        assert!(!valid_hostname("-node"));
        assert!(!valid_hostname("node_1"));
        assert!(!valid_hostname(""));
    }
}
