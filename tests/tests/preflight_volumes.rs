//! Volume checks on real xfs and ext4 filesystems on loop devices: filesystem type, free
//! capacity, direct-write rate (and that it cleans up), and d_type of the state directory.

use tests::bins;
use tests::loopdev::LoopMount;
use tests::preflight::{ManifestDir, TmpfsDir, check};

fn volume_manifest(path: &std::path::Path, extra: &str) -> ManifestDir {
    ManifestDir::with_profile(&format!(
        "    requirements:\n      volumes:\n        - path: {}\n{extra}",
        path.display()
    ))
}

#[test]
fn filesystem_type_and_capacity_on_xfs_and_ext4() {
    bins::require_root();
    let state = TmpfsDir::new();
    for fs in ["xfs", "ext4"] {
        let vol = LoopMount::new(fs, 400, &[]);
        let id = |what: &str| format!("volume:{}:{what}", vol.path().display());
        let m = volume_manifest(
            vol.path(),
            "          capacity: \"100MB\"\n          filesystems: [\"xfs\"]\n",
        );
        let r = check(
            &m.path(),
            state.path(),
            &["--skip-rate-tests", "--output", "json"],
        );
        let fs_check = r.check(&id("filesystem"));
        let measured = fs_check["measured"].as_str().unwrap();
        assert!(
            measured.starts_with(&format!(
                "{fs} ({} mounted at {}",
                vol.device,
                vol.path().display()
            )),
            "{measured}"
        );
        assert_eq!(
            fs_check["status"],
            if fs == "xfs" { "pass" } else { "fail" },
            "{r}"
        );
        if fs == "ext4" {
            assert_eq!(
                fs_check["fix"],
                format!(
                    "mount a xfs filesystem at {} (it is on ext4 now)",
                    vol.path().display()
                )
            );
        }
        assert_eq!(r.status(&id("capacity")), "pass", "{r}");

        // A directory inside the volume that does not exist yet is checked where it will be.
        let sub = vol.path().join("not/yet");
        let m = volume_manifest(&sub, "          capacity: \"1GB\"\n");
        let r = check(
            &m.path(),
            state.path(),
            &["--skip-rate-tests", "--output", "json"],
        );
        let cap = r.check(&format!("volume:{}:capacity", sub.display()));
        assert_eq!(cap["status"], "fail", "{r}");
        let measured = cap["measured"].as_str().unwrap();
        assert!(
            measured.contains("free of")
                && measured.ends_with(&format!("on {}", vol.path().display())),
            "{measured}"
        );
        assert_eq!(cap["required"], "at least 1GB (953.7 MiB)");
        assert!(!sub.exists(), "the check must not create the volume");
    }
}

#[test]
fn write_rate_is_measured_in_the_volume_and_cleaned_up() {
    bins::require_root();
    let _rates = tests::serial::lock("rate-tests");
    let state = TmpfsDir::new();
    for fs in ["xfs", "ext4"] {
        let vol = LoopMount::new(fs, 600, &[]);
        let id = format!("volume:{}:rate", vol.path().display());
        let ok = volume_manifest(vol.path(), "          minTransferRate: \"1MB/s\"\n");
        let start = std::time::Instant::now();
        let r = check(&ok.path(), state.path(), &["--output", "json"]);
        let rate = r.check(&id);
        assert_eq!(rate["status"], "pass", "{r}");
        assert!(
            rate["measured"].as_str().unwrap().contains(" MB/s ("),
            "{rate}"
        );
        assert!(start.elapsed().as_secs() < 8, "{:?}", start.elapsed());
        let slow = volume_manifest(vol.path(), "          minTransferRate: \"100GB/s\"\n");
        let r = check(&slow.path(), state.path(), &["--output", "json"]);
        let rate = r.check(&id);
        assert_eq!(rate["status"], "fail", "{r}");
        assert!(rate["fix"].as_str().unwrap().contains("faster storage"));
        assert_eq!(r.code, 3);
        // Nothing left behind, and all the space is back.
        assert_eq!(
            std::fs::read_dir(vol.path())
                .unwrap()
                .filter(|e| { e.as_ref().unwrap().file_name() != "lost+found" })
                .count(),
            0
        );
    }
}

#[test]
fn state_dir_without_d_type_fails() {
    bins::require_root();
    // ext4 without the filetype feature returns DT_UNKNOWN from readdir, as xfs with ftype=0
    // does (which this kernel no longer mounts).
    let vol = LoopMount::new("ext4", 64, &["-O", "^filetype"]);
    let m = ManifestDir::with_profile("    requirements: {}\n");
    let r = check(
        &m.path(),
        vol.path(),
        &["--skip-rate-tests", "--output", "json"],
    );
    let d = r.check("state-dir:d_type");
    assert_eq!(d["status"], "fail", "{r}");
    assert_eq!(
        d["measured"],
        format!("not supported in {} on ext4", vol.path().display())
    );
    assert!(d["fix"].as_str().unwrap().contains("ftype=1"));

    let ok = LoopMount::new("xfs", 300, &[]);
    let r = check(
        &m.path(),
        ok.path(),
        &["--skip-rate-tests", "--output", "json"],
    );
    assert_eq!(r.status("state-dir:d_type"), "pass", "{r}");
}

#[test]
fn fdatasync_latency_is_measured_in_the_state_dir() {
    bins::require_root();
    let _rates = tests::serial::lock("rate-tests");
    let vol = LoopMount::new("ext4", 128, &[]);
    let m = ManifestDir::with_profile("    requirements: {}\n");
    let r = check(&m.path(), vol.path(), &["--output", "json"]);
    let f = r.check("state-dir:fdatasync");
    // Pass or warn depends on this machine's disk; the measurement itself must be there.
    let measured = f["measured"].as_str().unwrap();
    assert!(
        measured.starts_with("p99 ") && measured.contains(" writes in "),
        "{measured}"
    );
    assert_ne!(f["status"], "skip");
    // No scratch file is left (the log directory gravity writes there is expected).
    let scratch: Vec<String> = std::fs::read_dir(vol.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".gravity-preflight"))
        .collect();
    assert!(scratch.is_empty(), "{scratch:?}");
}
