//! The mapping from a node profile of the manifest to planet's configuration contract
//! (`planet::config::PlanetConfig`, which knows no manifest types).

use super::NodeIdentity;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cluster_image::manifest::{DevicePermissions, Manifest, NodeProfile};
use planet::artifact::ImageFormat;
use planet::config::{
    ConfigError, DATA_VOLUMES, DEFAULT_HAIRPIN_MODE, DEFAULT_STOP_TIMEOUT_SECS,
    DEFAULT_STORAGE_DRIVER, DaemonOptions, DeviceAccess, DeviceRule, FORMAT, FileMode, Periodic,
    PlanetConfig, PlanetImageRef, Resources, VolumeKind, VolumeMount, valid_hostname,
    wildcard_suffix,
};
use planet::paths::Paths;

use crate::host::user::SERVICE_USER_ENV;

/// What the install engine knows about this node beyond the manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanetOptions {
    pub state_dir: PathBuf,
    pub service_uid: u32,
    pub service_gid: u32,
    pub node: NodeIdentity,
    pub cluster_name: String,
    /// `--mount NAME:PATH` overrides of volume host paths.
    pub mounts: Vec<(String, PathBuf)>,
    /// The imported image file (see `planet::artifact::import`).
    pub image: PathBuf,
    pub image_sha256: String,
    pub image_version: String,
    /// The cluster's PKI directory on the host, where the node runs Kubernetes.
    pub pki: Option<PathBuf>,
    /// Whether the application has a status hook: the supervisor asks it once a minute.
    pub status_hook: bool,
}

/// How often planet's supervisor runs the application's status hook.
pub const STATUS_HOOK_INTERVAL_SECS: u64 = 60;

/// Resolves the profile's volumes, devices and system options for this node.
pub fn planet_config(
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
    if !valid_hostname(&opts.node.node_name) {
        return Err(ConfigError::NodeName(opts.node.node_name.clone()));
    }
    let format =
        ImageFormat::from_path(&opts.image).ok_or(ConfigError::ImageFormat(opts.image.clone()))?;
    let system = manifest.system_options_for(profile);
    let mut volumes = resolve_volumes(profile, opts)?;
    let mut env = BTreeMap::from([(SERVICE_USER_ENV.to_string(), opts.service_uid.to_string())]);
    if let Some(pki) = &opts.pki {
        // Read-only: planet's daemons use the certificates, only gravity makes them.
        volumes.push(VolumeMount {
            kind: VolumeKind::Data,
            name: Some("pki".into()),
            source: pki.to_string_lossy().into_owned(),
            target: planet::paths::PKI_INSIDE.into(),
            wildcard: false,
            read_only: true,
            recursive: false,
            // The pki phase made it; as a data volume it must exist when planet starts.
            create_if_missing: true,
            skip_if_missing: false,
            uid: None,
            gid: None,
            mode: Some(FileMode(0o700)),
        });
        // What the application's hooks see (their Jobs' hostPaths), where the spec puts it.
        let state = &opts.state_dir;
        for (name, dir, target, read_only) in [
            ("resources", "resources", crate::hooks::job::RESOURCES, true),
            ("helm", "helm", crate::hooks::job::HELM_DIR, true),
            ("backup", "backup", crate::hooks::job::BACKUP, false),
        ] {
            volumes.push(VolumeMount {
                kind: VolumeKind::Data,
                name: Some(name.into()),
                source: state.join(dir).to_string_lossy().into_owned(),
                target: target.into(),
                wildcard: false,
                read_only,
                recursive: false,
                create_if_missing: true,
                skip_if_missing: false,
                uid: None,
                gid: None,
                mode: Some(FileMode(0o755)),
            });
        }
        // Parents before children, as resolve_volumes orders them.
        volumes.sort_by_key(|v| Path::new(&v.target).components().count());
        env.extend(super::kubernetes::planet_env(
            &profile.labels,
            manifest.network_type(),
        ));
    }
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
                permissions: access(&d.permissions()),
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
    let mut etcd_args = args("etcd", system.etcd.clone().unwrap_or_default().args)?;
    // A member that joined: etcd keeps the last of a repeated flag (planet-etcd.service).
    if let Some(cluster) = opts.node.joined.as_ref().and_then(|j| j.etcd.as_ref()) {
        etcd_args.push(format!("--initial-cluster={cluster}"));
        etcd_args.push("--initial-cluster-state=existing".into());
    }
    let daemons = DaemonOptions {
        etcd_args,
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
        image: PlanetImageRef {
            path: opts.image.clone(),
            sha256: opts.image_sha256.clone(),
            version: opts.image_version.clone(),
            format,
            base_image: system.base_image.clone(),
        },
        service_uid: opts.service_uid,
        service_gid: opts.service_gid,
        node: opts.node.planet(&opts.cluster_name),
        volumes,
        devices,
        daemons,
        env,
        resources: Resources::default(),
        stop_timeout_secs: DEFAULT_STOP_TIMEOUT_SECS,
        periodic: if opts.status_hook {
            let layout = crate::state_dir::StateDir::new(&opts.state_dir);
            vec![Periodic {
                argv: vec![
                    layout.gravity().to_string_lossy().into_owned(),
                    "--state-dir".into(),
                    opts.state_dir.to_string_lossy().into_owned(),
                    "app".into(),
                    "status".into(),
                ],
                interval_secs: STATUS_HOOK_INTERVAL_SECS,
            }]
        } else {
            Vec::new()
        },
    })
}

fn access(p: &DevicePermissions) -> DeviceAccess {
    DeviceAccess {
        read: p.read,
        write: p.write,
        mknod: p.mknod,
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
            mode: v.mode.map(|m| FileMode(m.0)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    const MANIFEST: &str = include_str!("../../tests/golden/app.yaml");

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
            node: NodeIdentity {
                node_name: "node-1".into(),
                advertise_ip: "10.0.0.5".parse().unwrap(),
                role: "gpu".into(),
                joined: None,
            },
            cluster_name: "example".into(),
            mounts: vec![("app-data".into(), PathBuf::from("/mnt/fast/app-data"))],
            image: PathBuf::from("/var/lib/gravity/planet/images/0.1.0+abc/planet.erofs"),
            image_sha256: "ab".repeat(32),
            image_version: "0.1.0+abc".into(),
            pki: Some("/var/lib/gravity/pki".into()),
            status_hook: false,
        };
        (manifest, profile, opts)
    }

    #[test]
    fn resolves_the_fixture_profile() {
        let (m, p, o) = fixture();
        let c = planet_config(&m, &p, &o).unwrap();
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
    fn joined_nodes_use_the_first_nodes_registry_and_members_join_its_etcd() {
        use crate::node::identity::Joined;
        let (m, p, mut o) = fixture();
        let first: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let mut joined = Joined {
            agent: "10.0.0.1:3012".into(),
            control_plane: first,
            etcd: None,
        };
        o.node.joined = Some(joined.clone());
        let worker = planet_config(&m, &p, &o).unwrap();
        assert!(!worker.node.control_plane() && !worker.node.runs_registry());
        assert_eq!(worker.node.registry_ip(), first);
        assert_eq!(
            worker.daemons.etcd_args.len(),
            2,
            "{:?}",
            worker.daemons.etcd_args
        );

        joined.etcd = Some("node-0=https://10.0.0.1:2380,node-1=https://10.0.0.5:2380".into());
        o.node.joined = Some(joined);
        let member = planet_config(&m, &p, &o).unwrap();
        assert!(member.node.control_plane() && !member.node.runs_registry());
        assert_eq!(member.node.registry_ip(), first);
        assert_eq!(
            member.daemons.etcd_args[2..],
            [
                "--initial-cluster=node-0=https://10.0.0.1:2380,node-1=https://10.0.0.5:2380",
                "--initial-cluster-state=existing"
            ]
        );
        let env = planet::env::render(&member);
        assert!(env.contains("PLANET_CONTROL_PLANE=\"true\""), "{env}");
        assert!(env.contains("PLANET_REGISTRY_IP=\"10.0.0.1\""), "{env}");
    }

    #[test]
    fn refuses_unknown_mount_overrides() {
        let (m, p, mut o) = fixture();
        o.mounts = vec![("nope".into(), PathBuf::from("/x"))];
        let err = planet_config(&m, &p, &o).unwrap_err().to_string();
        assert!(err.contains("no volume named \"nope\""), "{err}");
        assert!(err.contains("app-data"), "{err}");
        assert!(err.contains("etcd"), "{err}");
    }

    #[test]
    fn data_volumes_can_move() {
        let (m, p, mut o) = fixture();
        o.mounts = vec![("etcd".into(), PathBuf::from("/mnt/ssd/etcd"))];
        let c = planet_config(&m, &p, &o).unwrap();
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
        let err = planet_config(&m, &p, &o).unwrap_err().to_string();
        assert!(err.contains("systemOptions.etcd.args"), "{err}");
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
        let err = planet_config(&m, &p, &o).unwrap_err().to_string();
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
            planet_config(&m, &p, &o),
            Err(ConfigError::DevicePath(_))
        ));
    }

    /// The mapping's result is planet's golden record: planet's own tests start from it.
    #[test]
    fn golden_planet_config() {
        let (m, p, o) = fixture();
        let c = planet_config(&m, &p, &o).unwrap();
        let mut actual = serde_json::to_string_pretty(&c).unwrap();
        actual.push('\n');
        golden::check(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../planet/tests/golden/planet-config.json"),
            &actual,
        );
    }
}
