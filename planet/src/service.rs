//! Keeping planet running: `start`, `stop`, `is_running`.
//!
//! Where systemd is PID 1 and gravity's unit is installed, planet is
//! `gravity-planet.service` (its ExecStart is `gravity planet run`). Elsewhere (this kind of
//! machine, CI, containers) gravity keeps planet running itself: a small daemon
//! (`gravity planet daemon`, detached with setsid and a double fork, output in
//! `<state>/logs/planet.log`, pid in `<state>/planet/supervisor.pid`) runs `gravity planet run`
//! and restarts it with a backoff when it crashes.

use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use systemd::manager::{ServiceManager, Systemctl};

use super::inside;
use super::paths::Paths;
use super::status::{RunState, Status};
use super::sys::{self, SignalPipe, SupervisorLock};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Systemctl(#[from] systemd::manager::ManagerError),
    #[error("planet is not configured: {0} is missing (gravity install writes it)")]
    NotConfigured(PathBuf),
    #[error("cannot start gravity's daemon ({exe}): {source}")]
    Spawn {
        exe: PathBuf,
        source: std::io::Error,
    },
    #[error("planet failed to start: {reason}{}", log_hint(log))]
    Failed { reason: String, log: PathBuf },
    #[error(
        "planet is not {what} after {waited:?} (state: {state}){}{}",
        waits.as_ref().map(|w| format!("; its systemd still waits for: {w}")).unwrap_or_default(),
        log_hint(log)
    )]
    Timeout {
        what: &'static str,
        waited: Duration,
        state: String,
        /// The jobs planet's systemd has queued, when it boots too long.
        waits: Option<String>,
        log: PathBuf,
    },
}

fn log_hint(log: &Path) -> String {
    if log.exists() {
        format!("; see {}", log.display())
    } else {
        String::new()
    }
}

/// Whether the host's systemd runs planet (PID 1 is systemd and gravity's unit is installed).
pub fn uses_systemd() -> bool {
    systemd::is_pid1()
        && Path::new("/")
            .join(systemd::units::UNIT_DIR)
            .join(systemd::units::PLANET_UNIT)
            .exists()
}

/// Whether planet's supervisor (or gravity's daemon about to restart it) is running.
pub fn is_running(state_dir: &Path) -> bool {
    if uses_systemd() {
        return Systemctl.is_active(systemd::units::PLANET_UNIT);
    }
    let paths = Paths::new(state_dir);
    SupervisorLock::held(&paths.lock()) || daemon_pid(&paths).is_some()
}

/// Starts planet and waits until its systemd reports running (or degraded), or `timeout`
/// says why not. A no-op when it already runs.
pub fn start(state_dir: &Path, timeout: Duration) -> Result<(), ServiceError> {
    let paths = Paths::new(state_dir);
    if !paths.config().exists() {
        return Err(ServiceError::NotConfigured(paths.config()));
    }
    if uses_systemd() {
        // Type=notify: systemctl returns once the supervisor reported ready.
        Systemctl.start(systemd::units::PLANET_UNIT)?;
        return wait_running(&paths, timeout, None);
    }
    let since = sys::now_ms();
    let spawned = daemon_pid(&paths).is_none() && !SupervisorLock::held(&paths.lock());
    if spawned {
        spawn_daemon(&paths)?;
    }
    match wait_running(&paths, timeout, spawned.then_some(since)) {
        Ok(()) => Ok(()),
        Err(e @ ServiceError::Failed { .. }) => {
            // Do not leave a daemon restarting a planet that cannot start.
            let _ = stop(state_dir, Duration::from_secs(60));
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// Stops planet and waits until its supervisor has torn everything down.
pub fn stop(state_dir: &Path, timeout: Duration) -> Result<(), ServiceError> {
    let paths = Paths::new(state_dir);
    if uses_systemd() {
        Systemctl.stop(systemd::units::PLANET_UNIT)?;
    } else if let Some(pid) = daemon_pid(&paths) {
        signal(pid, libc::SIGTERM);
    } else if SupervisorLock::held(&paths.lock())
        && let Some(status) = Status::load(state_dir)
    {
        signal(status.supervisor_pid as i32, libc::SIGTERM);
    }
    let started = Instant::now();
    while SupervisorLock::held(&paths.lock()) || daemon_pid(&paths).is_some() {
        if started.elapsed() >= timeout {
            return Err(ServiceError::Timeout {
                what: "stopped",
                waited: started.elapsed(),
                state: Status::load(state_dir)
                    .map(|s| format!("{:?}", s.state).to_lowercase())
                    .unwrap_or_else(|| "unknown".into()),
                waits: None,
                log: paths.log(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) takes no pointers.
    unsafe { libc::kill(pid, sig) };
}

/// Polls the supervisor's status until planet runs. `since`: only a status written after
/// this (ms) counts, so a previous run's `failed` is not taken for this one's.
fn wait_running(paths: &Paths, timeout: Duration, since: Option<u64>) -> Result<(), ServiceError> {
    let started = Instant::now();
    let mut state = "not started".to_string();
    loop {
        if let Some(s) = Status::load(&paths.state_dir)
            && since.is_none_or(|t| s.started_at_ms >= t.saturating_sub(1000))
        {
            state = format!("{:?}", s.state).to_lowercase();
            match s.state {
                RunState::Running | RunState::Degraded if SupervisorLock::held(&paths.lock()) => {
                    return Ok(());
                }
                RunState::Failed if s.error.is_some() => {
                    return Err(ServiceError::Failed {
                        reason: s.error.unwrap_or_default(),
                        log: paths.log(),
                    });
                }
                _ => {}
            }
        }
        if started.elapsed() >= timeout {
            let waits = Status::load(&paths.state_dir)
                .and_then(|s| s.init_pid)
                .filter(|pid| sys::alive(*pid))
                .and_then(inside::pending_jobs);
            return Err(ServiceError::Timeout {
                what: "running",
                waited: started.elapsed(),
                state,
                waits,
                log: paths.log(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The daemon's pid, if it runs.
fn daemon_pid(paths: &Paths) -> Option<i32> {
    running_pid(&paths.daemon_pid())
}

/// The pid in `pid_file`, if that process runs and is a gravity daemon.
pub fn running_pid(pid_file: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let is_ours = String::from_utf8_lossy(&cmdline).contains("daemon");
    (sys::alive(pid) && is_ours).then_some(pid)
}

fn spawn_daemon(paths: &Paths) -> Result<(), ServiceError> {
    // planet.log is the only record of planet's runs on such hosts: info level, without
    // libcontainer's per-start warnings about controllers this host lacks.
    let filter = std::env::var("GRAVITY_PLANET_LOG")
        .unwrap_or_else(|_| "info,libcgroups=error,libcontainer=error".to_string());
    let args = [
        "planet".into(),
        "daemon".into(),
        "--state-dir".into(),
        paths.state_dir.clone().into_os_string(),
    ];
    let exe = match paths.gravity() {
        kept if kept.is_file() => kept,
        _ => std::env::current_exe().map_err(|source| ServiceError::Spawn {
            exe: PathBuf::from("gravity"),
            source,
        })?,
    };
    spawn_detached(&exe, &args, &paths.log(), &filter)
}

/// Starts `EXE ARGS` (gravity's `daemon` subcommand, which forks once more and returns) in a
/// session of its own, its output appended to `log`, logging at `filter`.
pub fn spawn_detached(
    exe: &Path,
    args: &[std::ffi::OsString],
    log: &Path,
    filter: &str,
) -> Result<(), ServiceError> {
    let exe = exe.to_path_buf();
    let spawn_err = |source| ServiceError::Spawn {
        exe: exe.clone(),
        source,
    };
    std::fs::create_dir_all(log.parent().unwrap_or(Path::new("/"))).map_err(spawn_err)?;
    let out = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(spawn_err)?;
    let err = out.try_clone().map_err(spawn_err)?;
    let mut cmd = Command::new(&exe);
    cmd.args(args)
        .env("RUST_LOG", filter)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: setsid(2) is async-signal-safe; the closure touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // The daemon forks again and its first process exits at once: wait for that one.
    let status = cmd.status().map_err(spawn_err)?;
    if !status.success() {
        return Err(ServiceError::Spawn {
            exe,
            source: std::io::Error::other(format!("the daemon exited with {status}")),
        });
    }
    Ok(())
}

/// `gravity planet daemon`: detach (second fork), then run `gravity planet run` and restart it
/// when it exits on its own, with a backoff (1 s doubling to 30 s; back to 1 s after a minute
/// of uptime). SIGTERM stops the current supervisor and the daemon.
pub fn daemon(state_dir: &Path) -> std::io::Result<u8> {
    let paths = Paths::new(state_dir);
    let args = [
        "planet".into(),
        "run".into(),
        "--state-dir".into(),
        state_dir.as_os_str().to_owned(),
    ];
    keep_running(&paths.daemon_pid(), &args, "the supervisor")
}

/// Detaches (second fork), records its pid in `pid_file`, then runs `gravity ARGS` and
/// restarts it when it exits on its own, with a backoff (1 s doubling to 30 s; back to 1 s
/// after a minute of uptime). SIGTERM stops the child and the daemon.
pub fn keep_running(
    pid_file: &Path,
    args: &[std::ffi::OsString],
    what: &str,
) -> std::io::Result<u8> {
    // SAFETY: fork(2) in a single-threaded process (clap and logging start no threads); the
    // child continues with ordinary code, the parent only exits.
    match unsafe { nix::unistd::fork() }.map_err(std::io::Error::from)? {
        nix::unistd::ForkResult::Parent { .. } => return Ok(0),
        nix::unistd::ForkResult::Child => {}
    }
    // A daemon keeps nothing it inherited but stdio: a lock its starter held (`flock FILE
    // gravity planet start`) or a pipe someone reads to the end would otherwise be held for
    // planet's whole life (and by every supervisor it starts).
    // SAFETY: close_range(2) takes no pointers; no descriptor from 3 up belongs to this
    // process's own code at this point (clap and logging keep none open).
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    super::write_atomic(pid_file, std::process::id().to_string().as_bytes())?;
    let signals = SignalPipe::install(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP])?;
    let exe = std::env::current_exe()?;
    let mut backoff = Duration::from_secs(1);
    let mut stopping = false;
    let result = loop {
        let started = Instant::now();
        let mut child = match Command::new(&exe).args(args).stdin(Stdio::null()).spawn() {
            Ok(c) => c,
            Err(e) => break Err(e),
        };
        let pidfd = sys::pidfd_open(child.id() as i32)?;
        loop {
            let mut fds = [
                PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(signals.fd(), PollFlags::POLLIN),
            ];
            let _ = poll(&mut fds, PollTimeout::NONE);
            if !signals.drain().is_empty() && !stopping {
                stopping = true;
                signal(child.id() as i32, libc::SIGTERM);
            }
            if fds[0].revents().is_some_and(|r| !r.is_empty()) {
                break;
            }
        }
        let status = child.wait()?;
        if stopping {
            break Ok(0);
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        eprintln!("gravity daemon: {what} exited ({status}); restarting it in {backoff:?}");
        // Sleep, but wake up for a stop request.
        let mut fds = [PollFd::new(signals.fd(), PollFlags::POLLIN)];
        let ms = backoff.as_millis() as i32;
        if poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        )
        .unwrap_or(0)
            > 0
            && !signals.drain().is_empty()
        {
            break Ok(0);
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    };
    let _ = std::fs::remove_file(pid_file);
    result
}
