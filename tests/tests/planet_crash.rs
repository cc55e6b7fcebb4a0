//! A supervisor killed with SIGKILL: gravity's daemon restarts it, the new run removes the
//! old container first, and etcd's data is still there. With the daemon killed too, the next
//! start (or teardown) cleans up what the dead run left: container, cgroups, mounts.

use std::time::{Duration, Instant};

use tests::planet::{Planet, ServiceUser};
use tests::serial;

const MANIFEST: &str = r#"apiVersion: cluster.gravitational.io/v2
kind: Cluster
metadata:
  name: planet-crash
  resourceVersion: 0.0.1
"#;

fn pid_of(planet: &Planet, key: &str) -> i32 {
    planet.supervisor_status()[key].as_i64().expect(key) as i32
}

fn alive(pid: i32) -> bool {
    planet::sys::alive(pid)
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < timeout, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_supervisor_is_replaced_and_its_leftovers_removed() {
    let _lock = serial::lock("planet");
    let _user = ServiceUser::expect(1001);
    let planet = Planet::new();
    planet.configure(MANIFEST, &["--service-uid", "1001", "--node-name", "crash"]);
    // Started the way scripts do it, under `flock FILE cmd`: the daemon must not keep the
    // lock (it would hold it for planet's whole life).
    let lock = planet.work.join("script.lock");
    let mut flock = std::process::Command::new("flock");
    let out = planet
        .ns
        .enter(&mut flock)
        .arg(&lock)
        .arg(tests::bins::path("gravity"))
        .arg("--state-dir")
        .arg(&planet.state)
        .args(["planet", "start", "--timeout", "300s"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let free = std::process::Command::new("flock")
        .args(["--nonblock"])
        .arg(&lock)
        .arg("true")
        .status()
        .unwrap();
    assert!(
        free.success(),
        "planet's daemon kept the lock its starter held"
    );
    let (healthy, status) = planet.status(Some("300s"));
    assert!(healthy, "{status:#}");
    let etcdctl = "etcdctl --endpoints=http://127.0.0.1:2379";
    planet.sh_ok(&format!("{etcdctl} put /crash/key survived"));

    // SIGKILL the supervisor: the daemon restarts it, and the new one replaces the orphaned
    // container (same ports, same data) instead of failing next to it.
    let (supervisor, init) = (pid_of(&planet, "supervisorPid"), pid_of(&planet, "initPid"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("a new supervisor", Duration::from_secs(60), || {
        let s = planet.supervisor_status();
        s["supervisorPid"].as_i64() != Some(supervisor as i64) && s["state"] == "running"
    });
    wait_until("the old init to be gone", Duration::from_secs(30), || {
        !alive(init)
    });
    let (healthy, status) = planet.status(Some("300s"));
    assert!(healthy, "{status:#}");
    assert_eq!(
        planet.sh_ok(&format!("{etcdctl} get --print-value-only /crash/key")),
        "survived"
    );

    // SIGKILL the daemon and the supervisor: nothing restarts planet, and its init is left
    // running unsupervised; status says so.
    let daemon: i32 = std::fs::read_to_string(planet.state.join("planet/supervisor.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (supervisor, init) = (pid_of(&planet, "supervisorPid"), pid_of(&planet, "initPid"));
    for pid in [daemon, supervisor] {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    wait_until("the supervisor to die", Duration::from_secs(10), || {
        !alive(supervisor) && !alive(daemon)
    });
    let (healthy, status) = planet.status(None);
    assert!(!healthy);
    assert_eq!(status["state"], "failed", "{status:#}");
    assert!(
        status["detail"].as_str().unwrap().contains("still runs"),
        "{status:#}"
    );
    assert!(alive(init));
    let left = planet::leftovers(&planet.state);
    assert!(
        !left.cgroups.is_empty() && left.container_state.is_some(),
        "{left:?}"
    );

    // Teardown removes the orphan and everything it holds.
    planet.gravity_ok(&["planet", "teardown"]);
    assert!(!alive(init), "teardown left planet's init running");
    let left = planet::leftovers(&planet.state);
    assert!(left.is_clean(), "left after teardown: {left}");
    assert!(
        planet.state.join("planet/data/etcd/member").is_dir(),
        "etcd's data is kept"
    );
}
