//! Port checks against real listeners: a taken port names the program and pid holding it.

use std::net::{TcpListener, UdpSocket};
use std::process::Stdio;
use std::time::Duration;

use tests::bins;
use tests::netns::ChildGuard;
use tests::preflight::{ManifestDir, TmpfsDir, check};

fn free_port() -> u16 {
    TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ports_manifest(tcp: &[String], udp: &[String]) -> ManifestDir {
    ManifestDir::with_profile(&format!(
        "    requirements:\n      network:\n        ports:\n          - protocol: tcp\n            ranges: [{}]\n          - protocol: udp\n            ranges: [{}]\n",
        tcp.iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", "),
        udp.iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

#[test]
fn taken_ports_name_their_holders() {
    bins::require_root();
    let state = TmpfsDir::new();
    // Another program holding a TCP port: a `gravity check --serve` process.
    let held = free_port();
    let mut server = ChildGuard::spawn(
        bins::gravity()
            .args(["check", "--serve", &format!("127.0.0.1:{held}")])
            .stderr(Stdio::piped()),
    );
    server.wait_for_stderr("serving gravity check peers", Duration::from_secs(10));
    // This test process holding a UDP port.
    let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let free = free_port();

    let m = ports_manifest(
        &[held.to_string(), free.to_string()],
        &[udp_port.to_string()],
    );
    let r = check(
        &m.path(),
        state.path(),
        &["--skip-rate-tests", "--output", "json"],
    );
    assert_eq!(r.code, 3, "{r}");
    let tcp = r.check(&format!("port:tcp/{held}"));
    assert_eq!(tcp["status"], "fail");
    assert_eq!(
        tcp["measured"],
        format!(
            "in use by gravity (pid {}), listening on 127.0.0.1",
            server.pid()
        )
    );
    assert!(
        tcp["fix"]
            .as_str()
            .unwrap()
            .starts_with(&format!("stop gravity (pid {})", server.pid()))
    );
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert_eq!(
        r.check(&format!("port:udp/{udp_port}"))["measured"],
        format!(
            "in use by {} (pid {}), bound on 0.0.0.0",
            comm.trim(),
            std::process::id()
        )
    );
    assert_eq!(r.status(&format!("port:tcp/{free}")), "pass");

    // A range with one taken port reports that port; the ignore list accepts it by id (and
    // this machine's kernel settings, which are not what this test is about).
    let range = format!("{}-{}", held.saturating_sub(2), held.saturating_add(2));
    let m = ports_manifest(&[range], &[]);
    let r = check(
        &m.path(),
        state.path(),
        &[
            "--skip-rate-tests",
            &format!("--ignore-preflight-errors=port:tcp/{held},sysctl:*"),
        ],
    );
    assert_eq!(r.code, 4, "only warnings are left: {r}");
    assert!(
        r.stdout.contains(&format!("WARN*   port:tcp/{held}")),
        "{r}"
    );
    assert!(
        r.stdout.contains(&format!(
            "Ignored by --ignore-preflight-errors (reported as warnings, marked WARN*): port:tcp/{held}"
        )),
        "{r}"
    );
    drop(udp);
}
