//! The OCI runtime spec planet runs with: systemd as PID 1 in its own mount, pid, uts, ipc and
//! cgroup namespaces, on the host's network; capabilities and rlimits no larger than the
//! host's; only the configured devices; data volumes and profile volumes bound in.
//!
//! [`build`] is a pure function of the config and of [`HostFacts`] (what the supervisor found on
//! the host at start), so the generated spec has a golden-file test.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDevice, LinuxDeviceBuilder,
    LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount,
    MountBuilder, PosixRlimit, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder,
    Spec, SpecBuilder, UserBuilder,
};

use super::config::PlanetConfig;
use super::devices::ResolvedDevice;
use super::paths::{ENVIRONMENT_INSIDE, NOTIFY_DIR_INSIDE, Paths};
use super::volumes::ResolvedVolume;
use crate::host::devfilter::Allow;
use crate::host::devices::DeviceKind;

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot build planet's OCI spec: {0}")]
    Build(#[from] oci_spec::OciSpecError),
    #[error("cannot write planet's OCI spec to {path}: {detail}")]
    Save { path: PathBuf, detail: String },
}

/// Capability names by bit number (`include/uapi/linux/capability.h`).
pub const CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The rlimits planet asks for; each is clamped to the host's hard limit (root without
/// CAP_SYS_RESOURCE cannot raise it, and asking fails the start).
pub const WANTED_RLIMITS: &[(PosixRlimitType, u64)] = &[
    (PosixRlimitType::RlimitNofile, 1_048_576),
    (PosixRlimitType::RlimitNproc, u64::MAX),
    (PosixRlimitType::RlimitMemlock, u64::MAX),
];

/// What the supervisor found on the host at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// The bounding set (`CapBnd` of `/proc/self/status`).
    pub cap_bounding: u64,
    /// Hard limits by rlimit, for those in [`WANTED_RLIMITS`].
    pub rlimit_hard: BTreeMap<String, u64>,
    /// planet's cgroup path (the same in every hierarchy).
    pub cgroup_path: String,
    /// Control files of planet's own cgroup to bind read-only: (host file, container path).
    pub cgroup_readonly: Vec<(PathBuf, PathBuf)>,
    pub devices: Vec<ResolvedDevice>,
    pub volumes: Vec<ResolvedVolume>,
    /// The host's resolver configuration (a symlink's target), when there is one.
    pub resolv_conf: Option<PathBuf>,
    /// Whether `/lib/modules` exists (bound read-only for kube-proxy and CNI plugins).
    pub lib_modules: bool,
}

impl HostFacts {
    /// The hard limit of an rlimit on this host, read with getrlimit(2).
    pub fn host_rlimits() -> BTreeMap<String, u64> {
        use nix::sys::resource::{Resource, getrlimit};
        WANTED_RLIMITS
            .iter()
            .filter_map(|(t, _)| {
                let r = match t {
                    PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
                    PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
                    PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
                    _ => return None,
                };
                let (_, hard) = getrlimit(r).ok()?;
                Some((rlimit_name(*t), hard))
            })
            .collect()
    }

    /// The host's resolver configuration for planet's /etc/resolv.conf. Where it is
    /// systemd-resolved's stub (127.0.0.53, which means nothing inside a pod) the file with the
    /// real upstream servers is used, as kubelet's documentation advises.
    pub fn host_resolv_conf() -> Option<PathBuf> {
        let conf = std::fs::canonicalize("/etc/resolv.conf").ok()?;
        let upstream = Path::new("/run/systemd/resolve/resolv.conf");
        if conf.ends_with("systemd/resolve/stub-resolv.conf") && upstream.is_file() {
            return Some(upstream.to_path_buf());
        }
        Some(conf)
    }

    /// This process's bounding set, as bits (`CAP_x` is bit x).
    pub fn host_bounding_set() -> std::io::Result<u64> {
        let set = caps::read(None, caps::CapSet::Bounding).map_err(std::io::Error::other)?;
        Ok(set.iter().fold(0, |bits, cap| bits | cap.bitmask()))
    }
}

fn rlimit_name(t: PosixRlimitType) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Capability names (`CAP_...`) in the bounding set `bits`.
pub fn capabilities(bits: u64) -> Vec<String> {
    CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits >> i & 1 == 1)
        .map(|(_, n)| format!("CAP_{n}"))
        .collect()
}

fn opts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, SpecError> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(opts(options))
        .build()?)
}

fn bind(source: &Path, dest: &Path, read_only: bool, recursive: bool) -> Result<Mount, SpecError> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(vec![
            if recursive { "rbind" } else { "bind" }.to_string(),
            if read_only { "ro" } else { "rw" }.to_string(),
        ])
        .build()?)
}

/// The device cgroup rules: deny everything, then allow each device with its permissions.
/// (The runtime adds its defaults: the standard nodes, ptys, and mknod of any node.)
pub fn device_rules(devices: &[ResolvedDevice]) -> Result<Vec<LinuxDeviceCgroup>, SpecError> {
    let mut rules = vec![
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()?,
    ];
    for d in devices {
        rules.push(
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(device_type(d.node.kind))
                .major(d.node.major as i64)
                .minor(d.node.minor as i64)
                .access(d.permissions.to_string())
                .build()?,
        );
    }
    Ok(rules)
}

/// The same rules as an allow-list for the cgroup2 device filter, with the runtime's defaults
/// spelled out (on cgroup2 nobody else adds them).
pub fn device_allow_list(devices: &[ResolvedDevice]) -> Vec<Allow> {
    let allow = |kind, major, minor, access: &str| Allow {
        kind,
        major,
        minor,
        read: access.contains('r'),
        write: access.contains('w'),
        mknod: access.contains('m'),
    };
    let c = Some(DeviceKind::Char);
    let mut list = vec![
        allow(c, None, None, "m"),
        allow(Some(DeviceKind::Block), None, None, "m"),
        allow(c, Some(1), Some(3), "rwm"),    // null
        allow(c, Some(1), Some(5), "rwm"),    // zero
        allow(c, Some(1), Some(7), "rwm"),    // full
        allow(c, Some(5), Some(0), "rwm"),    // tty
        allow(c, Some(1), Some(9), "rwm"),    // urandom
        allow(c, Some(1), Some(8), "rwm"),    // random
        allow(c, Some(5), Some(1), "rwm"),    // console
        allow(c, Some(136), None, "rwm"),     // pts
        allow(c, Some(5), Some(2), "rwm"),    // ptmx
        allow(c, Some(10), Some(200), "rwm"), // tun
    ];
    for d in devices {
        list.push(allow(
            Some(d.node.kind),
            Some(d.node.major as u32),
            Some(d.node.minor as u32),
            &d.permissions.to_string(),
        ));
    }
    list
}

fn device_type(kind: DeviceKind) -> LinuxDeviceType {
    match kind {
        DeviceKind::Char => LinuxDeviceType::C,
        DeviceKind::Block => LinuxDeviceType::B,
    }
}

fn device_node(d: &ResolvedDevice) -> Result<LinuxDevice, SpecError> {
    Ok(LinuxDeviceBuilder::default()
        .path(d.node.path.clone())
        .typ(device_type(d.node.kind))
        .major(d.node.major as i64)
        .minor(d.node.minor as i64)
        .file_mode(d.file_mode)
        .uid(d.uid)
        .gid(d.gid)
        .build()?)
}

/// planet's OCI spec.
pub fn build(config: &PlanetConfig, facts: &HostFacts, paths: &Paths) -> Result<Spec, SpecError> {
    // Capabilities: all the host's bounding set has, in the three sets that matter for root;
    // inheritable and ambient explicitly empty (the builder fills them otherwise).
    let caps: HashSet<Capability> = capabilities(facts.cap_bounding)
        .iter()
        .filter_map(|n| Capability::from_str(n.trim_start_matches("CAP_")).ok())
        .collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()?;

    let rlimits: Vec<PosixRlimit> = WANTED_RLIMITS
        .iter()
        .map(|(t, wanted)| {
            let host = facts
                .rlimit_hard
                .get(&rlimit_name(*t))
                .copied()
                .unwrap_or(*wanted);
            let value = (*wanted).min(host);
            PosixRlimitBuilder::default()
                .typ(*t)
                .hard(value)
                .soft(value)
                .build()
        })
        .collect::<Result<_, _>>()?;

    let notify = Path::new(NOTIFY_DIR_INSIDE).join("notify.sock");
    let mut process = ProcessBuilder::default()
        .terminal(false)
        .user(UserBuilder::default().uid(0u32).gid(0u32).build()?)
        .args(vec!["/sbin/init".to_string()])
        .env(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            // systemd's container mode, and a stable machine id across restarts.
            "container=other".to_string(),
            format!("container_uuid={}", config.container_uuid()),
            // systemd tells us READY=1 here when boot is done.
            format!("NOTIFY_SOCKET={}", notify.display()),
        ])
        .cwd("/")
        .capabilities(capabilities)
        .rlimits(rlimits)
        .build()?;
    // Absent, not false: the builder defaults it to true, and false makes libcontainer's
    // seccomp handling want CAP_SYS_ADMIN.
    process.set_no_new_privileges(None);

    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        // systemd manages its own subtree: read-write (its own limits are made read-only
        // below, file by file, so that nested cgroups still work).
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "rw"],
        )?,
    ];
    for (host, inside) in &facts.cgroup_readonly {
        mounts.push(bind(host, inside, true, false)?);
    }
    mounts.extend([
        mount(
            "/run",
            "tmpfs",
            "tmpfs",
            &["nosuid", "nodev", "mode=755", "size=20%"],
        )?,
        mount(
            "/run/lock",
            "tmpfs",
            "tmpfs",
            &["nosuid", "nodev", "noexec", "size=5m"],
        )?,
        mount("/tmp", "tmpfs", "tmpfs", &["nosuid", "nodev", "mode=1777"])?,
        bind(&paths.run(), Path::new(NOTIFY_DIR_INSIDE), false, false)?,
        bind(
            &paths.environment(),
            Path::new(ENVIRONMENT_INSIDE),
            true,
            false,
        )?,
    ]);
    if let Some(resolv) = &facts.resolv_conf {
        mounts.push(bind(resolv, Path::new("/etc/resolv.conf"), true, false)?);
    }
    if facts.lib_modules {
        mounts.push(bind(
            Path::new("/lib/modules"),
            Path::new("/lib/modules"),
            true,
            false,
        )?);
    }
    for v in &facts.volumes {
        mounts.push(bind(&v.source, &v.target, v.read_only, v.recursive)?);
    }

    let mut devices = super::devices::base_devices();
    devices.extend(facts.devices.iter().cloned());
    let mut resources = LinuxResourcesBuilder::default().devices(device_rules(&devices)?);
    if let Some(limit) = config.resources.memory_limit_bytes {
        resources = resources.memory(LinuxMemoryBuilder::default().limit(limit).build()?);
    }
    if let Some(limit) = config.resources.pids_limit {
        resources = resources.pids(LinuxPidsBuilder::default().limit(limit).build()?);
    }

    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
        // Required for systemd as PID 1: without it systemd creates its cgroups in the host's
        // hierarchies.
        LinuxNamespaceType::Cgroup,
    ]
    .into_iter()
    .map(|t| LinuxNamespaceBuilder::default().typ(t).build())
    .collect::<Result<Vec<_>, _>>()?;

    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(PathBuf::from(&facts.cgroup_path))
        .resources(resources.build()?)
        .devices(
            devices
                .iter()
                .map(device_node)
                .collect::<Result<Vec<_>, _>>()?,
        )
        .masked_paths(opts(&[
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/proc/scsi",
            "/sys/firmware",
            "/sys/devices/virtual/powercap",
        ]))
        // Not /proc/sys: kubelet and kube-proxy set sysctls.
        .readonly_paths(opts(&[
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sysrq-trigger",
        ]))
        .build()?;

    Ok(SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(paths.rootfs())
                .readonly(false)
                .build()?,
        )
        .hostname(config.node.name.clone())
        .process(process)
        .mounts(mounts)
        .linux(linux)
        .build()?)
}

/// Writes the spec to `<bundle>/config.json`, where libcontainer reads it.
pub fn save(spec: &Spec, bundle: &Path) -> Result<(), SpecError> {
    std::fs::create_dir_all(bundle).map_err(|e| SpecError::Save {
        path: bundle.to_path_buf(),
        detail: e.to_string(),
    })?;
    let path = bundle.join("config.json");
    spec.save(&path).map_err(|e| SpecError::Save {
        path,
        detail: e.to_string(),
    })
}

/// The spec as stable JSON (capability sets are hash sets: sorted here), for golden files.
pub fn to_stable_json(spec: &Spec) -> String {
    let mut v = serde_json::to_value(spec).expect("a spec serialises");
    if let Some(caps) = v
        .pointer_mut("/process/capabilities")
        .and_then(|c| c.as_object_mut())
    {
        for set in caps.values_mut() {
            if let Some(list) = set.as_array_mut() {
                list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
        }
    }
    let mut s = serde_json::to_string_pretty(&v).expect("json");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::fixture;
    use crate::host::devices::DeviceNode;
    use pretty_assertions::assert_eq;

    /// This machine's facts, frozen: the bounding set lacks CAP_SYS_RESOURCE and the open
    /// files hard limit is 20000.
    pub(crate) fn facts() -> HostFacts {
        HostFacts {
            cap_bounding: 0x1fffeffffff,
            rlimit_hard: BTreeMap::from([
                ("RLIMIT_NOFILE".to_string(), 20000),
                ("RLIMIT_NPROC".to_string(), u64::MAX),
                ("RLIMIT_MEMLOCK".to_string(), 8 << 20),
            ]),
            cgroup_path: "/gravity/planet".into(),
            cgroup_readonly: vec![
                (
                    "/sys/fs/cgroup/memory/gravity/planet/memory.limit_in_bytes".into(),
                    "/sys/fs/cgroup/memory/memory.limit_in_bytes".into(),
                ),
                (
                    "/sys/fs/cgroup/devices/gravity/planet/devices.allow".into(),
                    "/sys/fs/cgroup/devices/devices.allow".into(),
                ),
            ],
            devices: vec![ResolvedDevice {
                node: DeviceNode {
                    path: "/dev/nvidia0".into(),
                    kind: DeviceKind::Char,
                    major: 195,
                    minor: 0,
                },
                permissions: "rw".parse().unwrap(),
                file_mode: 0o660,
                uid: 0,
                gid: 1001,
            }],
            volumes: vec![
                ResolvedVolume {
                    source: "/var/lib/gravity/planet/data/etcd".into(),
                    target: "/var/lib/etcd".into(),
                    read_only: false,
                    recursive: false,
                },
                ResolvedVolume {
                    source: "/var/lib/app/cache".into(),
                    target: "/var/lib/app/cache".into(),
                    read_only: false,
                    recursive: true,
                },
            ],
            resolv_conf: Some("/etc/resolv.conf".into()),
            lib_modules: true,
        }
    }

    fn golden(name: &str, actual: &str) {
        golden::check_in(env!("CARGO_MANIFEST_DIR"), name, actual);
    }

    #[test]
    fn golden_oci_config() {
        let config = fixture();
        // The fixture profile's volumes, resolved against a host that has some of them.
        let host = crate::host::fs::RecordingFs::with(&[
            "/srv/models/set-01",
            "/srv/models/set-02",
            "/var/lib/app/cache",
            "/var/log/app",
        ]);
        let facts = HostFacts {
            volumes: crate::volumes::prepare(&config.volumes, &host).unwrap(),
            ..facts()
        };
        let spec = build(&config, &facts, &Paths::new(Path::new("/var/lib/gravity"))).unwrap();
        golden("oci-config.json", &to_stable_json(&spec));
    }

    #[test]
    fn golden_container_environment() {
        let config = fixture();
        golden("container-environment", &crate::env::render(&config));
    }

    #[test]
    fn clamps_capabilities_and_rlimits_to_the_host() {
        let config = fixture();
        let spec = build(&config, &facts(), &Paths::new(Path::new("/s"))).unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        let bounding = json["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap();
        assert!(!bounding.iter().any(|c| c == "CAP_SYS_RESOURCE"));
        assert!(bounding.iter().any(|c| c == "CAP_SYS_ADMIN"));
        assert_eq!(
            json["process"]["capabilities"]["ambient"],
            serde_json::json!([])
        );
        assert!(json["process"].get("noNewPrivileges").is_none());
        let nofile = json["process"]["rlimits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "RLIMIT_NOFILE")
            .unwrap();
        assert_eq!(nofile["hard"], 20000);
        assert_eq!(nofile["soft"], 20000);
    }

    #[test]
    fn device_cgroup_denies_all_then_allows_the_listed() {
        let rules = device_rules(&facts().devices).unwrap();
        assert_eq!(rules[0].to_string(), "a *:* rwm");
        assert!(!rules[0].allow());
        assert_eq!(rules[1].to_string(), "c 195:0 rw");
        let allow = device_allow_list(&facts().devices);
        assert_eq!(allow.last().unwrap().major, Some(195));
    }

    #[test]
    fn capability_names_follow_bits() {
        assert_eq!(capabilities(0b101), ["CAP_CHOWN", "CAP_DAC_READ_SEARCH"]);
        assert_eq!(capabilities(0x1fffeffffff).len(), 40);
        for name in CAPABILITIES {
            assert!(Capability::from_str(name).is_ok(), "{name}");
        }
    }
}
