//! `gravity install` of the example cluster image on this host, with service uid 1001: planet
//! runs with the manifest's daemon arguments and volumes, Kubernetes' control plane answers on
//! the cluster's own PKI with etcd on TLS only, `gravity status` is healthy; the install sets
//! the kernel settings Kubernetes needs (here `net.ipv4.ip_forward`, off in a new network
//! namespace) and persists them in /etc/sysctl.d; then `gravity uninstall --remove-user` puts
//! those back and leaves no mounts, units, processes, cgroups or service user behind.
//!
//! It runs alone (`serial::lock("planet")`): it watches host-wide things change (the `planet`
//! user, /etc/sysctl.d). `ip_forward` is per network namespace: the install's is changed,
//! never the host's.

use std::path::Path;

use tests::install::{Installation, SERVICE_UID, text};
use tests::planet::passwd_entry;
use tests::serial;

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
const SYSCTL_FILE: &str = "/etc/sysctl.d/99-gravity.conf";

/// Puts the host's settings file back even when the test fails half-way.
struct Restore {
    file: Option<String>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        match &self.file {
            Some(c) => {
                let _ = std::fs::write(SYSCTL_FILE, c);
            }
            None => {
                let _ = std::fs::remove_file(SYSCTL_FILE);
            }
        }
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The command lines of the processes inside planet, with their uid.
fn processes(inst: &Installation) -> Vec<(u32, String)> {
    inst.exec(&["ps", "-eo", "uid=,args="])
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let (uid, args) = l.split_once(' ')?;
            Some((uid.parse().ok()?, args.trim().to_string()))
        })
        .collect()
}

/// The uid and command line of `binary` (its part of a `kube-node` or `kube-control-plane`).
fn process(procs: &[(u32, String)], binary: &str) -> (u32, String) {
    procs
        .iter()
        .find_map(|(uid, args)| Some((*uid, tests::upgrade::component_args(args, binary)?)))
        .unwrap_or_else(|| panic!("no {binary} running inside planet: {procs:#?}"))
}

#[test]
fn install_runs_planet_as_the_manifest_says_and_uninstall_leaves_nothing() {
    let _lock = serial::lock("planet");
    let sysctl_file = Restore {
        file: std::fs::read_to_string(SYSCTL_FILE).ok(),
    };
    let host_ip_forward = read(IP_FORWARD);
    let user_before = passwd_entry();
    let inst = Installation::new();
    let ip_forward = || inst.ns.run(&["cat", IP_FORWARD]);
    if ip_forward().trim() == "1" {
        // Off for the test, in the installation's namespace only.
        inst.ns
            .run(&["sh", "-c", &format!("echo 0 > {IP_FORWARD}")]);
    }

    let out = inst.install_fixing_the_kernel();
    assert!(out.status.success(), "install failed:\n{}", text(&out));
    assert!(
        text(&out).contains("example 0.1.0 is installed on"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("set net.ipv4.ip_forward = 1 (was 0)"),
        "{}",
        text(&out)
    );
    assert_eq!(ip_forward().trim(), "1");
    assert!(
        read(SYSCTL_FILE).contains("net.ipv4.ip_forward = 1"),
        "not persisted: {}",
        read(SYSCTL_FILE)
    );

    // gravity status: healthy, every planet service accounted for.
    let status = inst.status();
    assert_eq!(status["healthy"], true, "{status:#}");
    assert_eq!(status["cluster"]["name"], "example");
    assert_eq!(status["cluster"]["serviceUid"], SERVICE_UID);
    let units: Vec<&str> = status["planet"]["units"]
        .as_array()
        .expect("units")
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    for unit in [
        "planet-etcd.service",
        "planet-docker.socket",
        "planet-docker.service",
        "planet-registry.service",
        "planet-kube-control-plane.service",
        "planet-kube-node.service",
    ] {
        assert!(units.contains(&unit), "{unit} missing from {units:?}");
    }
    let apiserver = status["planet"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "kube-apiserver")
        .unwrap_or_else(|| panic!("no kube-apiserver endpoint: {status:#}"));
    assert_eq!(apiserver["healthy"], true, "{apiserver:#}");

    // The node is Ready, with the profile's labels; kubelet runs with the manifest's args.
    let out = inst.gravity(&[
        "kubectl",
        "get",
        "nodes",
        "-o",
        "jsonpath={range .items[*]}{.metadata.labels.role} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
    ]);
    assert!(out.status.success(), "gravity kubectl: {}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "node True");
    let procs = processes(&inst);
    let (_, kubelet) = process(&procs, "kubelet");
    assert!(
        kubelet.contains("--system-reserved=memory=500Mi"),
        "{kubelet}"
    );

    // Kubernetes through gravity, as its administrator; inside planet kubectl needs no flags.
    let out = inst.gravity(&["kubectl", "get", "namespaces", "-o", "name"]);
    assert!(out.status.success(), "gravity kubectl: {}", text(&out));
    assert!(
        text(&out).contains("namespace/kube-system"),
        "{}",
        text(&out)
    );
    let version = inst.exec(&["kubectl", "version", "-o", "json"]);
    assert!(version.contains("\"gitVersion\": \"v1.36."), "{version}");

    // The PKI: root's, keys and kubeconfigs 0600, in a 0700 directory.
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let pki = inst.state.join("pki");
        let meta = std::fs::metadata(&pki).expect("the PKI directory");
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        for entry in std::fs::read_dir(&pki).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.metadata().unwrap();
            assert_eq!(meta.uid(), 0, "{name}");
            if name.ends_with(".key") || name.ends_with(".kubeconfig") {
                assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
            }
        }
    }

    // etcd serves TLS only: a plain HTTP client is refused, the cluster's certificate works.
    let plain = inst.gravity(&[
        "planet",
        "exec",
        "--",
        "env",
        "-u",
        "ETCDCTL_ENDPOINTS",
        "etcdctl",
        "--endpoints=http://127.0.0.1:2379",
        "--command-timeout=3s",
        "get",
        "/",
    ]);
    assert!(!plain.status.success(), "etcd answered plain HTTP");

    // dockerd is not running until something uses its socket (kubelet is on containerd).
    assert!(
        !processes(&inst).iter().any(|(_, a)| a.contains("dockerd")),
        "dockerd started without a client"
    );
    assert!(
        inst.exec(&["docker", "version", "--format", "{{.Server.Version}}"])
            .starts_with("20.")
    );

    // The daemons carry the manifest's systemOptions, and run as the service user where they should.
    let procs = processes(&inst);
    let (etcd_uid, etcd) = process(&procs, "etcd");
    assert!(
        etcd.contains("--heartbeat-interval=150") && etcd.contains("--election-timeout=1500"),
        "{etcd}"
    );
    assert_eq!(etcd_uid, SERVICE_UID, "etcd must run as the planet user");
    let (_, dockerd) = process(&procs, "dockerd");
    assert!(
        dockerd.contains("--storage-driver=overlay2") && dockerd.contains("--log-level=info"),
        "{dockerd}"
    );
    let (registry_uid, _) = process(&procs, "docker-registry");
    assert_eq!(registry_uid, SERVICE_UID);

    // etcd answers through planet.
    inst.exec(&["sh", "-c", "etcdctl put /gravity/e2e hello"]);
    let got = inst.exec(&["sh", "-c", "etcdctl get --print-value-only /gravity/e2e"]);
    assert_eq!(got.trim(), "hello");

    // The app-data volume: created on the host with the manifest's mode, mounted at targetPath.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&inst.app_data)
        .expect("app-data created")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);
    inst.exec(&["sh", "-c", "echo from-planet > /var/lib/example-data/probe"]);
    assert_eq!(
        std::fs::read_to_string(inst.app_data.join("probe"))
            .unwrap()
            .trim(),
        "from-planet"
    );

    // The service user on the host.
    let planet = passwd_entry().expect("planet user");
    assert_eq!(planet.split(':').nth(2), Some("1001"), "{planet}");

    // Every phase journaled as completed.
    let plan: serde_json::Value =
        serde_json::from_slice(&inst.gravity(&["plan", "--output", "json"]).stdout).unwrap();
    assert_eq!(plan["state"], "completed");
    assert!(
        plan["phases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["state"] == "completed"),
        "{plan:#}"
    );

    // A second install on top refuses and says what to do.
    let again = inst.install(&[]);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("already installed"),
        "{}",
        text(&again)
    );

    let kube_chains = |inst: &Installation| -> Vec<String> {
        let mut cmd = std::process::Command::new("iptables-save");
        let out = inst.ns.enter(&mut cmd).output().expect("iptables-save");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with(":KUBE-") || l.starts_with(":CNI-"))
            .map(str::to_string)
            .collect()
    };
    assert!(
        !kube_chains(&inst).is_empty(),
        "kubelet made no iptables chains"
    );

    // The service user stays unless asked (files in volumes may still be its): asked here.
    let out = inst.gravity(&["uninstall", "--yes", "--remove-user"]);
    assert!(out.status.success(), "uninstall failed:\n{}", text(&out));
    assert_eq!(
        kube_chains(&inst),
        Vec::<String>::new(),
        "Kubernetes' chains left behind"
    );
    assert!(!inst.state.exists(), "the state directory is still there");
    let left = planet::leftovers(&inst.state);
    assert!(left.is_clean(), "uninstall left planet behind: {left:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(inst.state.to_str().unwrap()),
        "mounts left:\n{mounts}"
    );
    assert!(
        std::fs::read_link("/usr/local/bin/gravity").map_or(true, |t| !t.starts_with(&inst.state)),
        "the gravity link on the PATH is left"
    );
    // Data the user put in a volume is never deleted by uninstall.
    assert!(inst.app_data.join("probe").exists());

    // The kernel settings as they were, the host's own untouched.
    assert_eq!(ip_forward().trim(), "0", "ip_forward was not put back");
    assert_eq!(
        read(IP_FORWARD),
        host_ip_forward,
        "the host's ip_forward changed"
    );
    assert_eq!(
        std::fs::read_to_string(SYSCTL_FILE).ok(),
        sysctl_file.file,
        "{SYSCTL_FILE} is not as it was"
    );
    assert!(Path::new(IP_FORWARD).exists());
    // `--remove-user` removed the user the install made; an admin's would stay.
    assert_eq!(
        passwd_entry(),
        user_before,
        "the `planet` user is not as it was before the install"
    );
}
