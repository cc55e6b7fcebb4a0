//! What every Kubernetes node needs from its kernel: kernel modules (and the one its pods'
//! overlay needs), sysctls, cgroup controllers, and no swap.

use std::collections::BTreeSet;

use cluster_image::manifest::NetworkType;
use cluster_image::units::Size;

use crate::check::CheckResult;
use crate::host::Host;

/// A module the cluster needs, and what shows its code is in the running kernel even when it
/// is built in without a `/sys/module` entry (and without `/lib/modules` on the host).
pub struct RequiredModule {
    pub name: &'static str,
    pub why: &'static str,
    evidence: Evidence,
    /// What a host without it can do instead, besides getting the module.
    instead: Option<&'static str>,
}

impl RequiredModule {
    /// Its check's id in reports and in `--ignore-preflight-errors`.
    pub fn check_id(&self) -> String {
        format!("module:{}", self.name)
    }
}

enum Evidence {
    Filesystem(&'static str),
    Path(&'static str),
}

pub const MODULES: &[RequiredModule] = &[
    RequiredModule {
        name: "overlay",
        why: "container image layers",
        evidence: Evidence::Filesystem("overlay"),
        instead: None,
    },
    RequiredModule {
        name: "br_netfilter",
        why: "iptables rules for pod traffic on bridges",
        evidence: Evidence::Path("/proc/sys/net/bridge/bridge-nf-call-iptables"),
        instead: None,
    },
    RequiredModule {
        name: "nf_conntrack",
        why: "Service load balancing by kube-proxy",
        evidence: Evidence::Path("/proc/sys/net/netfilter/nf_conntrack_max"),
        instead: None,
    },
];

/// The pods' overlay when the manifest asks for `wireguard`: the kernel's own, since 5.6 (and
/// backported by some distributions). Debian's kernels have it as a module.
pub const WIREGUARD: RequiredModule = RequiredModule {
    name: "wireguard",
    why: "the pods' encrypted overlay between nodes, providers.generic.network.type: wireguard",
    evidence: Evidence::Path("/sys/module/wireguard"),
    instead: Some("or build the image with providers.generic.network.type: vxlan (unencrypted)"),
};

/// The modules a cluster with this overlay needs: [`MODULES`], and [`WIREGUARD`] for its type.
pub fn modules_for(network: NetworkType) -> Vec<&'static RequiredModule> {
    let mut modules: Vec<_> = MODULES.iter().collect();
    if network == NetworkType::Wireguard {
        modules.push(&WIREGUARD);
    }
    modules
}

/// Sysctls and the value they need. `module` is what provides the key.
pub struct RequiredSysctl {
    pub key: &'static str,
    pub value: &'static str,
    /// `value` is a minimum: a host's larger value is left as it is.
    pub at_least: bool,
    pub module: Option<&'static str>,
    pub why: &'static str,
}

impl RequiredSysctl {
    /// Its check's id in reports and in `--ignore-preflight-errors`.
    pub fn check_id(&self) -> String {
        format!("sysctl:{}", self.key)
    }

    /// Whether the key's current value (as `/proc/sys` reads) is what the cluster needs.
    pub fn met_by(&self, current: &str) -> bool {
        let current = current.trim();
        if !self.at_least {
            return current == self.value;
        }
        match (current.parse::<u64>(), self.value.parse::<u64>()) {
            (Ok(have), Ok(need)) => have >= need,
            _ => false,
        }
    }

    /// What the check asks for, as its report says it.
    pub fn required(&self) -> String {
        if self.at_least {
            format!("at least {}", self.value)
        } else {
            self.value.to_string()
        }
    }
}

pub const SYSCTLS: &[RequiredSysctl] = &[
    RequiredSysctl {
        key: "net.ipv4.ip_forward",
        value: "1",
        at_least: false,
        module: None,
        why: "pods reach other hosts only through forwarding",
    },
    RequiredSysctl {
        key: "net.bridge.bridge-nf-call-iptables",
        value: "1",
        at_least: false,
        module: Some("br_netfilter"),
        why: "Services do not work for pods on the same bridge without it",
    },
    // Every inotify user of root's counts against one limit: planet's systemd, journald,
    // containerd and kubelet each hold several. At the kernel's default 128, containerd started
    // without its CRI ("couldn't initialize inotify: too many open files") and kubelet could
    // never run; planet's systemd failed to boot. The values are those of common Kubernetes
    // node images (EKS's AMI among them).
    RequiredSysctl {
        key: "fs.inotify.max_user_instances",
        value: "8192",
        at_least: true,
        module: None,
        why: "systemd, containerd and kubelet each need inotify instances; the default 128 runs out",
    },
    RequiredSysctl {
        key: "fs.inotify.max_user_watches",
        value: "524288",
        at_least: true,
        module: None,
        why: "kubelet and containerd watch every pod's files",
    },
];

pub fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleState {
    Loaded,
    BuiltIn,
    /// Not loaded, but `modprobe` can load it.
    Loadable,
    Missing,
}

fn norm(name: &str) -> String {
    name.replace('-', "_")
}

/// The `.ko` base name of a modules.dep / modules.builtin path.
fn ko_name(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = file.split(".ko").next()?;
    (stem.len() < file.len()).then(|| norm(stem))
}

fn modules_file_has(host: &Host, release: &str, file: &str, name: &str) -> bool {
    host.read_opt(format!("/lib/modules/{release}/{file}"))
        .ok()
        .flatten()
        .is_some_and(|text| {
            text.lines().any(|l| {
                let path = l.split(':').next().unwrap_or("");
                ko_name(path).as_deref() == Some(name)
            })
        })
}

pub fn module_state(host: &Host, m: &RequiredModule) -> ModuleState {
    let name = norm(m.name);
    let loaded = host
        .read_opt("/proc/modules")
        .ok()
        .flatten()
        .is_some_and(|t| {
            t.lines()
                .any(|l| l.split_whitespace().next().map(norm).as_deref() == Some(&name))
        });
    if loaded {
        return ModuleState::Loaded;
    }
    if host.exists(format!("/sys/module/{name}")) {
        // Loadable modules have an initstate; built-in ones with parameters do not.
        return if host.exists(format!("/sys/module/{name}/initstate")) {
            ModuleState::Loaded
        } else {
            ModuleState::BuiltIn
        };
    }
    let present = match m.evidence {
        Evidence::Filesystem(fs) => host
            .read_opt("/proc/filesystems")
            .ok()
            .flatten()
            .is_some_and(|t| t.lines().any(|l| l.split_whitespace().last() == Some(fs))),
        Evidence::Path(p) => host.exists(p),
    };
    if present {
        return ModuleState::BuiltIn;
    }
    if let Some(release) = host.kernel_release() {
        if modules_file_has(host, &release, "modules.builtin", &name) {
            return ModuleState::BuiltIn;
        }
        if modules_file_has(host, &release, "modules.dep", &name) {
            return ModuleState::Loadable;
        }
    }
    ModuleState::Missing
}

pub fn check_module(host: &Host, m: &RequiredModule) -> CheckResult {
    let id = m.check_id();
    let title = format!("Kernel module {} ({})", m.name, m.why);
    let state = module_state(host, m);
    let r = match state {
        ModuleState::Loaded => CheckResult::pass(id, title).measured("loaded"),
        ModuleState::BuiltIn => CheckResult::pass(id, title).measured("built into the kernel"),
        ModuleState::Loadable => CheckResult::pass(id, title)
            .measured("available, not loaded yet (install loads it; --autofix loads it now)"),
        ModuleState::Missing => {
            let release = host.kernel_release().unwrap_or_else(|| "?".into());
            CheckResult::fail(id, title)
                .measured(format!("not in kernel {release} nor in /lib/modules/{release}"))
                .fix(format!(
                    "install the kernel modules package of the running kernel (Debian: linux-image-{release}; RHEL: kernel-modules), or boot a kernel with {}{}",
                    m.name,
                    m.instead.map(|i| format!("; {i}")).unwrap_or_default()
                ))
        }
    };
    r.required("loaded or loadable")
}

pub fn check_sysctl(host: &Host, s: &RequiredSysctl) -> CheckResult {
    let id = s.check_id();
    let title = format!("sysctl {} ({})", s.key, s.why);
    let path = sysctl_path(s.key);
    let autofix = format!(
        "gravity install sets it; now: `gravity check --autofix`, or `sysctl -w {}={}` and persist it in /etc/sysctl.d/",
        s.key, s.value
    );
    let r = match host.read_opt(&path) {
        Ok(Some(v)) if s.met_by(&v) => CheckResult::pass(id, title).measured(v),
        Ok(Some(v)) => CheckResult::fail(id, title).measured(v).fix(autofix),
        Ok(None) => {
            let measured = match s.module {
                Some(m) => format!("missing ({m} is not loaded)"),
                None => "missing".to_string(),
            };
            let fix = match s.module {
                Some(m) => format!(
                    "gravity install sets it; now: `gravity check --autofix`, or `modprobe {m} && sysctl -w {}={}` and persist both",
                    s.key, s.value
                ),
                None => autofix,
            };
            CheckResult::fail(id, title).measured(measured).fix(fix)
        }
        Err(e) => CheckResult::fail(id, title)
            .measured("unreadable")
            .detail(e.to_string())
            .fix("check that /proc is mounted"),
    };
    r.required(s.required())
}

const V1_REQUIRED: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "pids",
];
const V2_REQUIRED: &[&str] = &["cpu", "cpuset", "memory", "pids"];
const KNOWN: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "pids",
    "blkio",
    "io",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
    "rdma",
    "misc",
];

pub fn check_cgroups(host: &Host) -> CheckResult {
    let id = "cgroups";
    let title = "cgroup controllers";
    let mounts = match host.mounts() {
        Ok(m) => m,
        Err(e) => {
            return CheckResult::fail(id, title)
                .measured("unknown")
                .detail(e.to_string())
                .fix("check that /proc is mounted");
        }
    };
    let v2_controllers = |dir: &std::path::Path| -> BTreeSet<String> {
        host.read_opt(dir.join("cgroup.controllers"))
            .ok()
            .flatten()
            .map(|t| t.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let unified = mounts
        .iter()
        .rev()
        .find(|m| m.mount_point == std::path::Path::new("/sys/fs/cgroup"))
        .filter(|m| m.fs_type == "cgroup2");
    let (version, have, required) = if let Some(m) = unified {
        ("v2", v2_controllers(&m.mount_point), V2_REQUIRED)
    } else {
        // v1 controllers the kernel has switched off (cgroup_disable=) are listed but disabled.
        let enabled: Option<BTreeSet<String>> =
            host.read_opt("/proc/cgroups").ok().flatten().map(|t| {
                t.lines()
                    .filter(|l| !l.starts_with('#'))
                    .filter_map(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        (f.len() >= 4 && f[3] == "1").then(|| f[0].to_string())
                    })
                    .collect()
            });
        let mut have = BTreeSet::new();
        for m in mounts.iter().filter(|m| m.fs_type == "cgroup") {
            for opt in m.super_options.split(',') {
                if KNOWN.contains(&opt) && enabled.as_ref().is_none_or(|e| e.contains(opt)) {
                    have.insert(opt.to_string());
                }
            }
        }
        let hybrid = mounts.iter().find(|m| m.fs_type == "cgroup2");
        if let Some(h) = hybrid {
            have.extend(v2_controllers(&h.mount_point));
        }
        if have.is_empty() && hybrid.is_none() {
            return CheckResult::fail(id, title)
                .measured("no cgroup filesystem is mounted")
                .required(format!(
                    "v2: {}, or v1: {}",
                    V2_REQUIRED.join(" "),
                    V1_REQUIRED.join(" ")
                ))
                .fix("mount cgroup2 at /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup)");
        }
        (
            if hybrid.is_some() {
                "v1 (hybrid)"
            } else {
                "v1"
            },
            have,
            V1_REQUIRED,
        )
    };
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|c| !have.contains(*c))
        .collect();
    let measured = format!(
        "{version}: {}",
        have.iter().cloned().collect::<Vec<_>>().join(" ")
    );
    let r = if missing.is_empty() {
        CheckResult::pass(id, title)
    } else {
        CheckResult::fail(id, title).fix(format!(
            "enable the {} controller{} (check cgroup_disable= on the kernel command line; on cgroup v2 enable them in the root's cgroup.subtree_control)",
            missing.join(", "),
            if missing.len() == 1 { "" } else { "s" }
        ))
    };
    r.measured(measured).required(required.join(" "))
}

pub fn check_swap(host: &Host) -> CheckResult {
    let id = "swap";
    let title = "Swap";
    let text = match host.read_opt("/proc/swaps") {
        Ok(Some(t)) => t,
        Ok(None) => {
            return CheckResult::pass(id, title).measured("no /proc/swaps (no swap support)");
        }
        Err(e) => {
            return CheckResult::warn(id, title)
                .measured("unknown")
                .detail(e.to_string())
                .fix("check that /proc is mounted");
        }
    };
    let mut devices = Vec::new();
    let mut total_kib = 0u64;
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() >= 3 {
            total_kib += f[2].parse::<u64>().unwrap_or(0);
            devices.push(f[0].to_string());
        }
    }
    if devices.is_empty() {
        return CheckResult::pass(id, title).measured("off").required("off");
    }
    CheckResult::warn(id, title)
        .measured(format!("{} on {}", Size(total_kib * 1024), devices.join(", ")))
        .required("off")
        .fix("turn swap off (`swapoff -a`, and remove it from /etc/fstab): the kubelet refuses to run with swap unless configured to allow it")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;
    use crate::testutil::FixtureRoot;

    fn module(name: &str) -> &'static RequiredModule {
        MODULES.iter().find(|m| m.name == name).unwrap()
    }

    #[test]
    fn module_states_from_every_source() {
        let fx = FixtureRoot::new()
            .file("proc/sys/kernel/osrelease", "5.10.0-28-amd64\n")
            .file("proc/modules", "overlay 151552 0 - Live 0x0\n")
            .file(
                "lib/modules/5.10.0-28-amd64/modules.dep",
                "kernel/net/bridge/br_netfilter.ko: kernel/net/bridge/bridge.ko\nkernel/net/netfilter/nf_conntrack.ko.xz:\n",
            );
        let h = fx.host();
        assert_eq!(module_state(&h, module("overlay")), ModuleState::Loaded);
        assert_eq!(
            module_state(&h, module("br_netfilter")),
            ModuleState::Loadable
        );
        assert_eq!(
            module_state(&h, module("nf_conntrack")),
            ModuleState::Loadable
        );
        let r = check_module(&h, module("br_netfilter"));
        assert_eq!(r.status, Status::Pass);
        assert!(r.measured.unwrap().contains("not loaded yet"));
    }

    #[test]
    fn built_in_without_lib_modules_by_evidence() {
        // This is how the development machine looks: no /proc/modules, no /lib/modules.
        let fx = FixtureRoot::new()
            .file("proc/filesystems", "nodev\tsysfs\n\text4\nnodev\toverlay\n")
            .file("proc/sys/net/bridge/bridge-nf-call-iptables", "1\n")
            .dir("sys/module/nf_conntrack/parameters");
        let h = fx.host();
        for m in MODULES {
            assert_eq!(module_state(&h, m), ModuleState::BuiltIn, "{}", m.name);
        }
    }

    #[test]
    fn a_missing_module_fails_and_names_the_kernel() {
        let fx = FixtureRoot::new()
            .file("proc/sys/kernel/osrelease", "3.10.0-1160.el7.x86_64\n")
            .file(
                "lib/modules/3.10.0-1160.el7.x86_64/modules.builtin",
                "kernel/fs/ext4/ext4.ko\n",
            )
            .file("proc/modules", "");
        let r = check_module(&fx.host(), module("overlay"));
        assert_eq!(r.status, Status::Fail);
        assert_eq!(
            r.measured.as_deref(),
            Some("not in kernel 3.10.0-1160.el7.x86_64 nor in /lib/modules/3.10.0-1160.el7.x86_64")
        );
        let fx = fx.file(
            "lib/modules/3.10.0-1160.el7.x86_64/modules.builtin",
            "kernel/fs/overlayfs/overlay.ko\n",
        );
        assert_eq!(
            module_state(&fx.host(), module("overlay")),
            ModuleState::BuiltIn
        );
    }

    #[test]
    fn wireguard_is_needed_only_by_its_overlay_and_says_what_else_to_do() {
        let names = |n| modules_for(n).iter().map(|m| m.name).collect::<Vec<_>>();
        assert_eq!(
            names(NetworkType::Vxlan),
            ["overlay", "br_netfilter", "nf_conntrack"]
        );
        assert_eq!(names(NetworkType::Wireguard).last(), Some(&"wireguard"));

        let fx = FixtureRoot::new()
            .file("proc/sys/kernel/osrelease", "6.18.44-custom\n")
            .file("proc/modules", "overlay 151552 0 - Live 0x0\n");
        let r = check_module(&fx.host(), &WIREGUARD);
        assert_eq!(r.id, "module:wireguard");
        assert_eq!(r.status, Status::Fail);
        let fix = r.fix.unwrap();
        assert!(fix.contains("a kernel with wireguard"), "{fix}");
        assert!(fix.contains("network.type: vxlan"), "{fix}");

        let fx = fx.file(
            "lib/modules/6.18.44-custom/modules.dep",
            "kernel/drivers/net/wireguard/wireguard.ko.xz: kernel/net/ipv4/udp_tunnel.ko.xz\n",
        );
        assert_eq!(module_state(&fx.host(), &WIREGUARD), ModuleState::Loadable);
        // Not in /proc/modules, but its /sys/module entry has an initstate: loaded.
        let fx = fx.file("sys/module/wireguard/initstate", "live\n");
        assert_eq!(module_state(&fx.host(), &WIREGUARD), ModuleState::Loaded);
    }

    #[test]
    fn sysctls() {
        let fx = FixtureRoot::new().file("proc/sys/net/ipv4/ip_forward", "0\n");
        let h = fx.host();
        let r = check_sysctl(&h, &SYSCTLS[0]);
        assert_eq!(r.id, "sysctl:net.ipv4.ip_forward");
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.measured.as_deref(), Some("0"));
        assert!(r.fix.unwrap().contains("sysctl -w net.ipv4.ip_forward=1"));
        let r = check_sysctl(&h, &SYSCTLS[1]);
        assert_eq!(
            r.measured.as_deref(),
            Some("missing (br_netfilter is not loaded)")
        );
        assert!(r.fix.unwrap().contains("modprobe br_netfilter"));
        let fx = fx.file("proc/sys/net/ipv4/ip_forward", "1\n");
        assert_eq!(check_sysctl(&fx.host(), &SYSCTLS[0]).status, Status::Pass);
    }

    const HYBRID: &str = "\
25 1 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n\
26 25 0:23 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
27 25 0:24 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct\n\
28 25 0:25 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n\
29 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
30 25 0:27 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices\n\
31 25 0:28 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer\n\
32 25 0:29 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n\
33 25 0:30 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";

    #[test]
    fn cgroup_v1_hybrid_and_disabled_memory() {
        let fx = FixtureRoot::new()
            .file("proc/self/mountinfo", HYBRID)
            .file("sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n");
        let r = check_cgroups(&fx.host());
        assert_eq!(r.status, Status::Pass, "{r:?}");
        assert_eq!(
            r.measured.as_deref(),
            Some("v1 (hybrid): cpu cpuacct cpuset devices freezer hugetlb memory pids")
        );
        let fx = fx.file(
            "proc/cgroups",
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t3\t1\t1\ncpu\t1\t1\t1\ncpuacct\t2\t1\t1\nmemory\t4\t1\t0\ndevices\t5\t1\t1\nfreezer\t6\t1\t1\npids\t8\t1\t1\n",
        );
        let r = check_cgroups(&fx.host());
        assert_eq!(r.status, Status::Fail);
        assert!(r.fix.unwrap().starts_with("enable the memory controller"));
    }

    #[test]
    fn cgroup_v2() {
        let fx = FixtureRoot::new()
            .file(
                "proc/self/mountinfo",
                "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n",
            )
            .file(
                "sys/fs/cgroup/cgroup.controllers",
                "cpuset cpu io memory hugetlb pids rdma misc\n",
            );
        let r = check_cgroups(&fx.host());
        assert_eq!(r.status, Status::Pass);
        assert!(r.measured.unwrap().starts_with("v2: "));
        let fx = fx.file("sys/fs/cgroup/cgroup.controllers", "cpu io\n");
        let r = check_cgroups(&fx.host());
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.fix
                .unwrap()
                .starts_with("enable the cpuset, memory, pids controllers")
        );
    }

    #[test]
    fn swap_is_a_warning() {
        let fx = FixtureRoot::new().file(
            "proc/swaps",
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sda2 partition\t2097148\t0\t-2\n",
        );
        let r = check_swap(&fx.host());
        assert_eq!(r.status, Status::Warn);
        assert_eq!(r.measured.as_deref(), Some("2.0 GiB on /dev/sda2"));
        let fx = FixtureRoot::new().file("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n");
        assert_eq!(check_swap(&fx.host()).status, Status::Pass);
    }
}
