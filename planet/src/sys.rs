//! Process plumbing for the supervisor: signals through a self-pipe, pidfds, the supervisor
//! lock, the single-thread check.

use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::fcntl::{Flock, FlockArg};

/// The write end of the signal pipe, for the handler.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    // SAFETY: errno is thread-local; saving and restoring it keeps the interrupted code's
    // value, as a signal handler must.
    let saved = unsafe { *libc::__errno_location() };
    let byte = sig as u8;
    // SAFETY: write(2) is async-signal-safe; the buffer is a live local byte. A full pipe
    // drops the byte, which is fine: one pending byte per signal kind is enough.
    unsafe {
        libc::write(fd, (&byte as *const u8).cast(), 1);
        *libc::__errno_location() = saved;
    }
}

/// Signals delivered as bytes on a pipe, so that one poll(2) waits for signals, the
/// container's exit and notify messages alike. Unlike a signalfd this leaves the signal mask
/// alone, which every child (planet's init among them) would inherit.
pub struct SignalPipe {
    read: OwnedFd,
    _write: OwnedFd,
}

impl SignalPipe {
    pub fn install(signals: &[libc::c_int]) -> std::io::Result<Self> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(std::io::Error::from)?;
        SIGNAL_PIPE.store(write.as_raw_fd(), Ordering::Relaxed);
        for &sig in signals {
            // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value.
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            action.sa_sigaction = on_signal as *const () as usize;
            action.sa_flags = libc::SA_RESTART;
            // SAFETY: the handler only calls async-signal-safe functions; `action` is valid.
            if unsafe { libc::sigaction(sig, &action, std::ptr::null_mut()) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(SignalPipe {
            read,
            _write: write,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor lives as long as self.
        unsafe { BorrowedFd::borrow_raw(self.read.as_raw_fd()) }
    }

    /// The signals received since the last call.
    pub fn drain(&self) -> Vec<libc::c_int> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match nix::unistd::read(&self.read, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend(buf[..n].iter().map(|b| *b as libc::c_int)),
            }
        }
        out
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        SIGNAL_PIPE.store(-1, Ordering::Relaxed);
    }
}

/// A pidfd for `pid`: readable once the process exits.
pub fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Waits up to `timeout` for a pidfd to become readable (the process exited).
pub fn wait_pidfd(fd: &OwnedFd, timeout: std::time::Duration) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(fd), PollFlags::POLLIN)];
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    matches!(poll(&mut fds, PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)), Ok(n) if n > 0)
}

/// `/proc/<pid>/status` (`self` for this process), parsed by procfs.
fn proc_status(pid: &str) -> Option<procfs_core::process::Status> {
    use procfs_core::FromRead;
    procfs_core::process::Status::from_file(format!("/proc/{pid}/status")).ok()
}

/// Whether `pid` is alive (and not a zombie).
pub fn alive(pid: i32) -> bool {
    use procfs_core::FromRead;
    procfs_core::process::Stat::from_file(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !matches!(stat.state, 'Z' | 'X'))
}

/// The number of threads of this process.
pub fn thread_count() -> usize {
    proc_status("self").map_or(0, |s| s.threads as usize)
}

/// The supervisor's exclusive lock: held for as long as the supervisor lives (the kernel
/// drops it when the process dies, however it dies).
pub struct SupervisorLock {
    _lock: Flock<File>,
    pub path: PathBuf,
}

impl SupervisorLock {
    /// Takes the lock, or returns `None` if another process holds it.
    pub fn try_acquire(path: &Path) -> std::io::Result<Option<Self>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(SupervisorLock {
                _lock: lock,
                path: path.to_path_buf(),
            })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(e.into()),
        }
    }

    /// Whether some process holds the lock at `path` now.
    pub fn held(path: &Path) -> bool {
        let Ok(file) = File::options().read(true).open(path) else {
            return false;
        };
        matches!(
            Flock::lock(file, FlockArg::LockSharedNonblock),
            Err((_, nix::errno::Errno::EWOULDBLOCK))
        )
    }
}

pub use durable::now_ms;

/// The resident set size of `pid` in KiB (`VmRSS`; none for kernel threads).
pub fn rss_kib(pid: i32) -> Option<u64> {
    proc_status(&pid.to_string())?.vmrss
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procfs_reads_this_process() {
        let me = std::process::id() as i32;
        assert!(alive(me));
        assert!(!alive(i32::MAX), "no such pid");
        assert!(
            rss_kib(me).is_some_and(|kib| kib > 100),
            "{:?}",
            rss_kib(me)
        );
        assert!(thread_count() >= 1);
        let bounding = crate::spec::HostFacts::host_bounding_set().unwrap();
        assert_ne!(
            bounding, 0,
            "a test process has capabilities in its bounding set"
        );
    }

    #[test]
    fn lock_is_exclusive_and_visible() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x/supervisor.lock");
        assert!(!SupervisorLock::held(&path));
        let lock = SupervisorLock::try_acquire(&path).unwrap().unwrap();
        assert!(SupervisorLock::held(&path));
        assert!(SupervisorLock::try_acquire(&path).unwrap().is_none());
        drop(lock);
        assert!(!SupervisorLock::held(&path));
    }

    #[test]
    fn liveness_and_rss_of_this_process() {
        let me = std::process::id() as i32;
        assert!(alive(me));
        assert!(rss_kib(me).unwrap() > 0);
        assert!(!alive(i32::MAX));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let fd = pidfd_open(child.id() as i32).unwrap();
        assert!(wait_pidfd(&fd, std::time::Duration::from_secs(10)));
        child.wait().unwrap();
    }
}
