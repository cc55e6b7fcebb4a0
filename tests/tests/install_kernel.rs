//! The install sets the kernel settings Kubernetes needs (here: `net.ipv4.ip_forward`, off in
//! a new network namespace), persists them in /etc/sysctl.d, and uninstall puts both back as
//! they were. `ip_forward` is per network namespace: the install's is changed, never the host's.

use std::path::Path;

use tests::install::{Installation, text};
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

#[test]
fn install_sets_ip_forward_and_uninstall_puts_it_back() {
    let _lock = serial::lock("planet");
    let before = Restore {
        file: std::fs::read_to_string(SYSCTL_FILE).ok(),
    };
    let host_ip_forward = read(IP_FORWARD);
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

    let out = inst.uninstall();
    assert!(out.status.success(), "uninstall failed:\n{}", text(&out));
    assert_eq!(ip_forward().trim(), "0", "ip_forward was not put back");
    assert_eq!(
        read(IP_FORWARD),
        host_ip_forward,
        "the host's ip_forward changed"
    );
    assert_eq!(
        std::fs::read_to_string(SYSCTL_FILE).ok(),
        before.file,
        "{SYSCTL_FILE} is not as it was"
    );
    assert!(Path::new(IP_FORWARD).exists());
}
