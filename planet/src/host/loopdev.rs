//! Loop devices for the read-only planet image, through the kernel's ioctls (no `losetup`).
//!
//! Devices are attached read-only with `LO_FLAGS_AUTOCLEAR`: the kernel detaches one when its
//! last mount goes, so a supervisor killed with SIGKILL leaks no loop device once its mounts
//! are gone.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

// linux/loop.h
const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_NAME_SIZE: usize = 64;

#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error("cannot open {path}: {source} (is the loop module loaded? `modprobe loop`)")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot attach {file} to a loop device: {source}")]
    Attach {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot detach {device}: {source}")]
    Detach {
        device: PathBuf,
        source: std::io::Error,
    },
}

/// An attached loop device. Keep it until the filesystem on it is mounted: with autoclear,
/// closing the last handle of an unmounted device detaches it.
pub struct LoopDevice {
    pub path: PathBuf,
    file: File,
}

impl LoopDevice {
    pub fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }
}

/// Attaches `backing` read-only (with autoclear) to a free loop device.
pub fn attach_read_only(backing: &Path) -> Result<LoopDevice, LoopError> {
    let image = File::open(backing).map_err(|source| LoopError::Open {
        path: backing.to_path_buf(),
        source,
    })?;
    let control_path = Path::new("/dev/loop-control");
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(control_path)
        .map_err(|source| LoopError::Open {
            path: control_path.to_path_buf(),
            source,
        })?;
    let mut info = LoopInfo64 {
        lo_device: 0,
        lo_inode: 0,
        lo_rdevice: 0,
        lo_offset: 0,
        lo_sizelimit: 0,
        lo_number: 0,
        lo_encrypt_type: 0,
        lo_encrypt_key_size: 0,
        lo_flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
        lo_file_name: [0; LO_NAME_SIZE],
        lo_crypt_name: [0; LO_NAME_SIZE],
        lo_encrypt_key: [0; 32],
        lo_init: [0; 2],
    };
    let name = backing.as_os_str().as_encoded_bytes();
    let n = name.len().min(LO_NAME_SIZE - 1);
    info.lo_file_name[..n].copy_from_slice(&name[..n]);

    // Another process may take the device we were offered between GET_FREE and CONFIGURE
    // (EBUSY): ask again.
    let mut last = None;
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number or -1.
        let nr = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if nr < 0 {
            return Err(LoopError::Attach {
                file: backing.to_path_buf(),
                source: std::io::Error::last_os_error(),
            });
        }
        let path = PathBuf::from(format!("/dev/loop{nr}"));
        let dev = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => f,
            Err(source) => return Err(LoopError::Open { path, source }),
        };
        match configure(&dev, &image, &info) {
            Ok(()) => return Ok(LoopDevice { path, file: dev }),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = Some(e),
            Err(source) => {
                return Err(LoopError::Attach {
                    file: backing.to_path_buf(),
                    source,
                });
            }
        }
    }
    Err(LoopError::Attach {
        file: backing.to_path_buf(),
        source: last.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::EBUSY)),
    })
}

fn configure(dev: &File, image: &File, info: &LoopInfo64) -> std::io::Result<()> {
    let config = LoopConfig {
        fd: image.as_raw_fd() as u32,
        block_size: 0,
        info: *info,
        reserved: [0; 8],
    };
    // SAFETY: LOOP_CONFIGURE reads a `struct loop_config`, which LoopConfig mirrors
    // (repr(C)); the pointer is valid for the call.
    let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE as _, &config) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EINVAL) && err.raw_os_error() != Some(libc::ENOTTY) {
        return Err(err);
    }
    // Kernels before 5.8: SET_FD then SET_STATUS64.
    // SAFETY: LOOP_SET_FD takes the backing file's descriptor as its argument.
    if unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_FD as _, image.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: LOOP_SET_STATUS64 reads a `struct loop_info64`, which LoopInfo64 mirrors.
    if unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_STATUS64 as _, info) } != 0 {
        let err = std::io::Error::last_os_error();
        // SAFETY: LOOP_CLR_FD takes no argument.
        unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CLR_FD as _, 0) };
        return Err(err);
    }
    Ok(())
}

/// Detaches `device` (a no-op when it is not attached). A device still mounted is detached by
/// the kernel when unmounted.
pub fn detach(device: &Path) -> Result<(), LoopError> {
    let dev = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(device)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(LoopError::Detach {
                device: device.to_path_buf(),
                source,
            });
        }
    };
    // SAFETY: LOOP_CLR_FD takes no argument.
    if unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CLR_FD as _, 0) } != 0 {
        let source = std::io::Error::last_os_error();
        if source.raw_os_error() == Some(libc::ENXIO) {
            return Ok(());
        }
        return Err(LoopError::Detach {
            device: device.to_path_buf(),
            source,
        });
    }
    Ok(())
}

/// Attached loop devices whose backing file is below `dir`, from `root/sys/block`.
pub fn backed_by(root: &Path, dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(super::under(root, Path::new("/sys/block"))) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("loop"))
        .filter_map(|e| {
            let backing = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            let backing = PathBuf::from(backing.trim().trim_end_matches(" (deleted)"));
            backing
                .starts_with(dir)
                .then(|| (Path::new("/dev").join(e.file_name()), backing))
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_struct_sizes() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }

    #[test]
    fn finds_devices_by_backing_file() {
        let root = tempfile::tempdir().unwrap();
        for (dev, file) in [
            ("loop0", "/var/lib/gravity/planet/images/1/planet.erofs\n"),
            ("loop1", "/srv/other.img\n"),
            (
                "loop2",
                "/var/lib/gravity/planet/images/0/planet.erofs (deleted)\n",
            ),
        ] {
            let d = root.path().join("sys/block").join(dev).join("loop");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("backing_file"), file).unwrap();
        }
        std::fs::create_dir_all(root.path().join("sys/block/loop3")).unwrap();
        let found = backed_by(root.path(), Path::new("/var/lib/gravity/planet"));
        assert_eq!(
            found.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>(),
            [PathBuf::from("/dev/loop0"), PathBuf::from("/dev/loop2")]
        );
    }
}
