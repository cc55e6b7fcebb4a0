//! The cgroup2 device filter (the eBPF program gravity attaches to planet's cgroup where
//! libcontainer, built without libbpf, attaches none), loaded into the real kernel: a process
//! in the cgroup may open only what the rules allow. Runs wherever a cgroup2 hierarchy is
//! mounted (pure v2, or a hybrid host's /sys/fs/cgroup/unified).

use std::path::{Path, PathBuf};
use std::process::Command;

use planet::host::cgroups::CgroupLayout;
use planet::host::devfilter::{Allow, attach};
use planet::host::devices::DeviceKind;

struct TestCgroup(PathBuf);

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Runs `script` with sh inside cgroup `dir`; returns the exit code and output.
fn in_cgroup(dir: &Path, script: &str) -> (i32, String) {
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec /bin/sh -c '{script}' 2>&1",
            dir.display()
        ))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn only_allowed_devices_open() {
    tests::bins::require_root();
    let layout = CgroupLayout::detect(Path::new("/")).unwrap();
    let Some(unified) = layout.unified else {
        eprintln!("no cgroup2 hierarchy on this host: nothing to test");
        return;
    };
    let dir = unified.join(format!("gravity-test-devfilter-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    let cg = TestCgroup(dir.clone());
    attach(
        &cg.0,
        &[Allow {
            kind: Some(DeviceKind::Char),
            major: Some(1),
            minor: Some(3),
            read: true,
            write: true,
            mknod: false,
        }],
    )
    .unwrap();

    let (code, out) = in_cgroup(&dir, "echo x > /dev/null && cat /dev/null && echo null-ok");
    assert_eq!((code, out.trim()), (0, "null-ok"));
    let (code, out) = in_cgroup(&dir, "head -c 1 /dev/zero");
    assert_ne!(code, 0, "/dev/zero opened: {out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    let (code, out) = in_cgroup(&dir, "head -c 1 /dev/urandom");
    assert_ne!(code, 0, "/dev/urandom opened: {out}");

    // Outside the cgroup nothing changed.
    let out = Command::new("head")
        .args(["-c", "1", "/dev/zero"])
        .output()
        .unwrap();
    assert!(out.status.success());
}
