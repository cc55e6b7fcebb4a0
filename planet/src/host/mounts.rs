//! Mounting planet's rootfs: the read-only image on a loop device, and an overlay over it for
//! the writable state.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::mount::{MntFlags, MsFlags};

use super::loopdev;

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(transparent)]
    Loop(#[from] loopdev::LoopError),
    #[error("cannot mount {what} at {target}: {source}{hint}")]
    Mount {
        what: String,
        target: PathBuf,
        source: nix::Error,
        hint: &'static str,
    },
    #[error("cannot unmount {target}: {source}")]
    Unmount { target: PathBuf, source: nix::Error },
    #[error("overlay paths must not contain ',' or ':' (the mount option syntax): {0}")]
    OverlayPath(PathBuf),
    #[error("cannot prepare {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What was mounted, so it can be undone in reverse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounted {
    pub target: PathBuf,
    /// The loop device under it, for a filesystem image.
    pub loop_device: Option<PathBuf>,
}

pub trait Mounter {
    /// Mounts the filesystem image `file` (type `fstype`) read-only at `target`.
    fn mount_image(&self, file: &Path, fstype: &str, target: &Path) -> Result<Mounted, MountError>;
    /// Mounts an overlay of `upper` (with `work`) over `lower` at `target`.
    fn mount_overlay(
        &self,
        lower: &Path,
        upper: &Path,
        work: &Path,
        target: &Path,
    ) -> Result<Mounted, MountError>;
    /// Unmounts `m` (lazily if busy) and detaches its loop device.
    fn unmount(&self, m: &Mounted) -> Result<(), MountError>;
}

/// The kernel.
pub struct KernelMounter;

fn mkdir(path: &Path) -> Result<(), MountError> {
    std::fs::create_dir_all(path).map_err(|source| MountError::Dir {
        path: path.to_path_buf(),
        source,
    })
}

impl Mounter for KernelMounter {
    fn mount_image(&self, file: &Path, fstype: &str, target: &Path) -> Result<Mounted, MountError> {
        mkdir(target)?;
        let dev = loopdev::attach_read_only(file)?;
        let res = nix::mount::mount(
            Some(&dev.path),
            target,
            Some(fstype),
            MsFlags::MS_RDONLY | MsFlags::MS_NODEV,
            None::<&str>,
        );
        if let Err(source) = res {
            let _ = loopdev::detach(&dev.path);
            return Err(MountError::Mount {
                what: format!("{} ({fstype} on {})", file.display(), dev.path.display()),
                target: target.to_path_buf(),
                source,
                hint: if source == nix::errno::Errno::ENODEV {
                    " (the kernel lacks this filesystem: `modprobe erofs`, or use a squashfs image)"
                } else {
                    ""
                },
            });
        }
        // With autoclear, the loop device now lives exactly as long as the mount.
        Ok(Mounted {
            target: target.to_path_buf(),
            loop_device: Some(dev.path.clone()),
        })
    }

    fn mount_overlay(
        &self,
        lower: &Path,
        upper: &Path,
        work: &Path,
        target: &Path,
    ) -> Result<Mounted, MountError> {
        for p in [lower, upper, work, target] {
            if p.to_string_lossy().contains([',', ':']) {
                return Err(MountError::OverlayPath(p.to_path_buf()));
            }
        }
        for p in [upper, work, target] {
            mkdir(p)?;
        }
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        nix::mount::mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        .map_err(|source| MountError::Mount {
            what: "the overlay".into(),
            target: target.to_path_buf(),
            source,
            hint: "",
        })?;
        Ok(Mounted {
            target: target.to_path_buf(),
            loop_device: None,
        })
    }

    fn unmount(&self, m: &Mounted) -> Result<(), MountError> {
        match nix::mount::umount2(&m.target, MntFlags::empty()) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(nix::errno::Errno::EBUSY) => {
                tracing::warn!(target = %m.target.display(), "busy: unmounting lazily");
                nix::mount::umount2(&m.target, MntFlags::MNT_DETACH).map_err(|source| {
                    MountError::Unmount {
                        target: m.target.clone(),
                        source,
                    }
                })?;
            }
            Err(source) => {
                return Err(MountError::Unmount {
                    target: m.target.clone(),
                    source,
                });
            }
        }
        if let Some(dev) = &m.loop_device {
            loopdev::detach(dev)?;
        }
        Ok(())
    }
}

/// Records mounts instead of making them.
#[derive(Default)]
pub struct RecordingMounter {
    pub calls: Mutex<Vec<String>>,
}

impl RecordingMounter {
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("recorder lock").clone()
    }
    fn record(&self, s: String) {
        self.calls.lock().expect("recorder lock").push(s);
    }
}

impl Mounter for RecordingMounter {
    fn mount_image(&self, file: &Path, fstype: &str, target: &Path) -> Result<Mounted, MountError> {
        self.record(format!(
            "mount -t {fstype} -o loop,ro {} {}",
            file.display(),
            target.display()
        ));
        Ok(Mounted {
            target: target.to_path_buf(),
            loop_device: Some(PathBuf::from("/dev/loop9")),
        })
    }
    fn mount_overlay(
        &self,
        lower: &Path,
        upper: &Path,
        work: &Path,
        target: &Path,
    ) -> Result<Mounted, MountError> {
        self.record(format!(
            "mount -t overlay lowerdir={},upperdir={},workdir={} {}",
            lower.display(),
            upper.display(),
            work.display(),
            target.display()
        ));
        Ok(Mounted {
            target: target.to_path_buf(),
            loop_device: None,
        })
    }
    fn unmount(&self, m: &Mounted) -> Result<(), MountError> {
        self.record(format!("umount {}", m.target.display()));
        Ok(())
    }
}
