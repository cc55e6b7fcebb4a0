//! planet from a manifest, end to end, as root with real daemons: configure (image, service
//! user 1001, volumes, devices, systemOptions args), start, check from inside what the
//! manifest asked for, stop, check the host is clean, start again and find etcd's data.
//!
//! Prints the timings the issue asks for (run with `--nocapture` to see them).

use std::path::Path;
use std::time::Instant;

use tests::planet::{DevNode, Planet, ServiceUser, TestLoop, http_get, owner_mode};
use tests::serial;

const SERVICE_UID: u32 = 1001;

fn manifest(work: &Path) -> String {
    format!(
        r#"apiVersion: cluster.gravitational.io/v2
kind: Cluster
metadata:
  name: planet-test
  resourceVersion: 0.0.1
nodeProfiles:
  - name: node
    requirements:
      volumes:
        - name: app-data
          path: {work}/host/app-data
          targetPath: /var/lib/app-data
          uid: {SERVICE_UID}
          gid: {SERVICE_UID}
          mode: "0750"
        - name: shards
          path: {work}/host/shard-?
          targetPath: /srv/shard-?
        - name: optional
          path: {work}/host/absent
          skipIfMissing: true
      devices:
        - path: /dev/gravity-test-nvidia*
          permissions: r
          fileMode: "0640"
          uid: 0
          gid: {SERVICE_UID}
    systemOptions:
      etcd:
        args: ["--heartbeat-interval=150", "--election-timeout=1500"]
      docker:
        storageDriver: overlay
        args: ["--log-level=debug", "--max-concurrent-downloads=4"]
"#,
        work = work.display()
    )
}

#[test]
fn planet_runs_what_the_manifest_asks_for() {
    let _lock = serial::lock("planet");
    let _user = ServiceUser::expect(SERVICE_UID);
    let planet = Planet::new();
    let work = planet.work.clone();
    for shard in ["shard-1", "shard-2"] {
        std::fs::create_dir_all(work.join("host").join(shard)).unwrap();
        std::fs::write(work.join("host").join(shard).join("id"), shard).unwrap();
    }
    // Two loop devices: the first is passed to planet (named like a GPU), the second is not.
    let listed = TestLoop::new("listed-device-marker");
    let unlisted = TestLoop::new("unlisted-device-marker");
    let _node = DevNode::block("/dev/gravity-test-nvidia0", listed.major, listed.minor);

    planet.configure(
        &manifest(&work),
        &[
            "--service-uid",
            &SERVICE_UID.to_string(),
            "--node-name",
            "planet-test",
        ],
    );
    // Limits on planet's cgroup, so there is something planet could try to raise.
    planet.edit_config(|c| {
        c["resources"]["memoryLimitBytes"] = (8i64 << 30).into();
        c["resources"]["pidsLimit"] = 100_000.into();
    });

    let t0 = Instant::now();
    let start = planet.start();
    let (healthy, status) = planet.status(Some("300s"));
    let all_healthy = t0.elapsed();
    assert!(healthy, "planet is not healthy: {status:#}");
    let sup = planet.supervisor_status();
    let sup_pid = sup["supervisorPid"].as_i64().unwrap() as i32;
    let rss = planet::sys::rss_kib(sup_pid).unwrap_or(0);

    // Every unit and endpoint, as `gravity planet status` reports them.
    assert_eq!(status["state"], "running", "{status:#}");
    for unit in status["units"].as_array().unwrap() {
        assert!(
            unit["healthy"].as_bool().unwrap() || !unit["required"].as_bool().unwrap(),
            "{unit}"
        );
    }
    let names: Vec<&str> = status["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["etcd", "dockerd", "registry"]);

    // etcd: the manifest's args on its command line, health, a put and a get; it runs as the
    // service user.
    let etcd = planet.cmdline("planet-etcd.service");
    assert!(
        etcd.contains("--heartbeat-interval=150 --election-timeout=1500"),
        "{etcd}"
    );
    assert!(etcd.contains("--name=planet-test"), "{etcd}");
    let etcdctl = "etcdctl --endpoints=http://127.0.0.1:2379";
    assert!(
        planet
            .sh_ok(&format!("{etcdctl} endpoint health"))
            .contains("is healthy")
    );
    planet.sh_ok(&format!("{etcdctl} put /gravity/test kept-across-restarts"));
    assert_eq!(
        planet.sh_ok(&format!("{etcdctl} get --print-value-only /gravity/test")),
        "kept-across-restarts"
    );
    let etcd_pid = planet.sh_ok("systemctl show -p MainPID --value planet-etcd.service");
    assert_eq!(
        planet.sh_ok(&format!("stat -c %u /proc/{etcd_pid}")),
        SERVICE_UID.to_string()
    );
    assert_eq!(
        planet.sh_ok("id planet"),
        format!("uid={SERVICE_UID}(planet) gid={SERVICE_UID}(planet) groups={SERVICE_UID}(planet)")
    );
    assert_eq!(
        planet.sh_ok("grep GRAVITY_SERVICE_USER /etc/container-environment"),
        format!("GRAVITY_SERVICE_USER=\"{SERVICE_UID}\"")
    );

    // dockerd: started on demand, at the first connection to its socket; the manifest's args
    // and storage driver.
    let dockerd_endpoint = status["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "dockerd")
        .unwrap();
    assert_eq!(
        dockerd_endpoint["detail"], "not running (starts on demand)",
        "{dockerd_endpoint}"
    );
    assert_eq!(
        planet.sh("systemctl is-active planet-docker.service").1,
        "inactive"
    );
    planet.sh_ok("docker info >/dev/null");
    assert_eq!(
        planet.sh_ok("systemctl is-active planet-docker.service"),
        "active"
    );
    let dockerd = planet.cmdline("planet-docker.service");
    assert!(dockerd.contains("--storage-driver=overlay "), "{dockerd}");
    assert!(
        dockerd.contains("--log-level=debug --max-concurrent-downloads=4"),
        "{dockerd}"
    );
    assert_eq!(
        planet.sh_ok("docker info --format '{{.Driver}}'"),
        "overlay"
    );

    // The registry answers on the host's network.
    let (code, _) = http_get(&planet.ns, 5000, "/v2/");
    assert_eq!(code, 200);

    // Volumes: created with the manifest's owner and mode, mounted at targetPath; wildcard
    // matches at the matching paths; a missing skipIfMissing volume is simply absent.
    assert_eq!(
        owner_mode(&work.join("host/app-data")),
        (SERVICE_UID, SERVICE_UID, 0o750)
    );
    assert_eq!(
        planet.sh_ok("stat -c '%u %g %a' /var/lib/app-data"),
        format!("{SERVICE_UID} {SERVICE_UID} 750")
    );
    planet.sh_ok("echo from-planet > /var/lib/app-data/file");
    assert_eq!(
        std::fs::read_to_string(work.join("host/app-data/file")).unwrap(),
        "from-planet\n"
    );
    assert_eq!(
        planet.sh_ok("cat /srv/shard-1/id /srv/shard-2/id"),
        "shard-1shard-2"
    );
    assert!(!work.join("host/absent").exists());
    let (code, _) = planet.sh("test -e /var/tmp/absent");
    assert_ne!(code, 0);

    // Devices: the listed one appears with the manifest's mode and owner and can be read (the
    // rule says r), not written; a device nobody listed cannot be opened at all.
    assert_eq!(
        planet.sh_ok("stat -c '%F %a %u %g %t:%T' /dev/gravity-test-nvidia0"),
        format!(
            "block special file 640 0 {SERVICE_UID} {:x}:{:x}",
            listed.major, listed.minor
        )
    );
    assert_eq!(
        planet.sh_ok("head -c 20 /dev/gravity-test-nvidia0"),
        "listed-device-marker"
    );
    let (code, out) = planet.sh("echo x | dd of=/dev/gravity-test-nvidia0 conv=notrunc");
    assert_ne!(code, 0, "writing a read-only device worked: {out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    let (code, out) = planet.sh(&format!(
        "mknod /dev/gravity-unlisted b {} {} && head -c 22 /dev/gravity-unlisted",
        unlisted.major, unlisted.minor
    ));
    assert_ne!(code, 0, "an unlisted device was readable: {out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(!out.contains("unlisted-device-marker"), "{out}");

    // planet cannot raise (or otherwise change) its own cgroup limits, nor allow itself
    // more devices.
    let cgroup = sup["cgroup"]["path"]
        .as_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    let memory = Path::new("/sys/fs/cgroup/memory")
        .join(&cgroup)
        .join("memory.limit_in_bytes");
    let (limit_file, inside_file, raise) = if memory.exists() {
        (
            memory,
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "17179869184",
        )
    } else {
        (
            Path::new("/sys/fs/cgroup").join(&cgroup).join("memory.max"),
            "/sys/fs/cgroup/memory.max",
            "max",
        )
    };
    assert_eq!(
        std::fs::read_to_string(&limit_file).unwrap().trim(),
        (8u64 << 30).to_string()
    );
    let (code, out) = planet.sh(&format!("echo {raise} > {inside_file}"));
    assert_ne!(code, 0, "planet raised its memory limit: {out}");
    assert_eq!(
        std::fs::read_to_string(&limit_file).unwrap().trim(),
        (8u64 << 30).to_string()
    );
    let pids = if Path::new("/sys/fs/cgroup/pids").join(&cgroup).exists() {
        "/sys/fs/cgroup/pids/pids.max"
    } else {
        "/sys/fs/cgroup/pids.max"
    };
    let (code, out) = planet.sh(&format!("echo max > {pids}"));
    assert_ne!(code, 0, "planet raised its pids limit: {out}");
    if Path::new("/sys/fs/cgroup/devices").exists() {
        let (code, out) = planet.sh("echo a > /sys/fs/cgroup/devices/devices.allow");
        assert_ne!(code, 0, "planet allowed itself every device: {out}");
    }
    // ...while cgroups below its own still work: systemd's transient units, and a nested
    // container (dockerd creates its cgroups; the image is tini from planet's own /usr/bin).
    planet.sh_ok("systemd-run --wait --quiet /bin/true");
    planet.sh_ok(
        "tar -C /usr/bin -c tini-static | docker import --change 'ENTRYPOINT [\"/tini-static\"]' - gravity-test/tini:1 >/dev/null",
    );
    assert!(
        planet
            .sh_ok("docker run --rm --network=none gravity-test/tini:1 --version")
            .contains("tini version")
    );

    // exec propagates the exit code.
    assert_eq!(
        planet.exec(&["/bin/sh", "-c", "exit 7"]).status.code(),
        Some(7)
    );

    // Stop: everything gone from the host but the data.
    let stop = planet.stop();
    let left = planet::leftovers(&planet.state);
    assert!(left.is_clean(), "left after stop: {left}");
    let stop_ms = planet.supervisor_status()["timings"]["stopMs"].clone();

    // Start again: etcd's data survived.
    planet.start();
    let (healthy, status) = planet.status(Some("300s"));
    assert!(healthy, "{status:#}");
    assert_eq!(
        planet.sh_ok(&format!("{etcdctl} get --print-value-only /gravity/test")),
        "kept-across-restarts"
    );

    eprintln!(
        "planet timings: start command {:?}; rootfs ready {} ms and systemd running {} ms after `planet run` began; all units healthy {:?} after `planet start`; supervisor RSS {} KiB; stop command {:?} (supervisor: SIGRTMIN+3 to torn down {} ms)",
        start,
        sup["timings"]["rootfsReadyMs"],
        sup["timings"]["systemdReadyMs"],
        all_healthy,
        rss,
        stop,
        stop_ms
    );
}
