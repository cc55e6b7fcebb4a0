//! A filesystem on a loop device, mounted on a private directory, for tests that need a real
//! xfs or ext4 volume. Unmounted, detached and deleted on drop, also when the test fails.

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub struct LoopMount {
    /// Where the filesystem is mounted.
    pub dir: PathBuf,
    pub device: String,
    pub fs_type: String,
    _work: tempfile::TempDir,
}

impl LoopMount {
    /// A `size_mib` sparse image formatted with `mkfs.<fs_type> <mkfs_args>`.
    pub fn new(fs_type: &str, size_mib: u64, mkfs_args: &[&str]) -> LoopMount {
        crate::bins::require_root();
        let work = tempfile::Builder::new()
            .prefix("gravity-loop-")
            .tempdir_in("/var/tmp")
            .expect("work dir");
        let image = work.path().join("fs.img");
        let file = std::fs::File::create(&image).expect("image file");
        file.set_len(size_mib << 20).expect("size the image");
        drop(file);
        let mkfs = format!("mkfs.{fs_type}");
        run(Command::new(&mkfs).arg("-q").args(mkfs_args).arg(&image));
        let device = run(Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&image));
        let dir = work.path().join("mnt");
        std::fs::create_dir(&dir).expect("mount point");
        let mounted = Command::new("mount")
            .args(["-t", fs_type, &device])
            .arg(&dir)
            .status();
        if !mounted.is_ok_and(|s| s.success()) {
            let _ = Command::new("losetup").args(["-d", &device]).status();
            panic!("cannot mount {device} ({fs_type}) on {}", dir.display());
        }
        LoopMount {
            dir,
            device,
            fs_type: fs_type.to_string(),
            _work: work,
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still has a file open: detach now, the kernel finishes later.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}
