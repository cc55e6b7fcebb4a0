//! `gravity planet enter` / `exec`: a command inside planet through libcontainer's tenant exec,
//! from the fresh single-threaded `gravity` process the command line starts. The command's
//! exit code becomes ours.

use std::collections::HashMap;
use std::path::Path;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use std::os::fd::AsFd;

use super::paths::{CONTAINER_ID, Paths};
use super::status::Status;
use crate::host::cgroups::{self, CgroupLayout, CgroupMode};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(
        "planet is not running (no container state in {0}): start it with `gravity planet start`"
    )]
    NotRunning(std::path::PathBuf),
    #[error(
        "this process has {0} threads: exec must run in a fresh single-threaded `gravity planet exec`"
    )]
    Threads(usize),
    #[error("cannot run {command:?} in planet: {detail}")]
    Exec { command: String, detail: String },
}

/// Runs `args` inside planet with the caller's stdio; returns the command's exit code
/// (128 + signal when killed).
pub fn exec(state_dir: &Path, args: &[String]) -> Result<u8, ExecError> {
    let paths = Paths::new(state_dir);
    let threads = super::sys::thread_count();
    if threads > 1 {
        return Err(ExecError::Threads(threads));
    }
    if !paths.container_state().join("state.json").exists() {
        return Err(ExecError::NotRunning(paths.container_state()));
    }
    let command = args.join(" ");
    let fail = |detail: String| ExecError::Exec {
        command: command.clone(),
        detail,
    };

    // Join planet's cgroup where libcontainer does not put tenants (name=systemd and a hybrid
    // host's cgroup2), like the supervisor does for init: processes inside planet then see
    // themselves inside planet's cgroup namespace.
    let plan = Status::load(state_dir).and_then(|s| s.cgroup);
    let layout = CgroupLayout::detect(Path::new("/")).ok();
    let mut sub_cgroup = None;
    if let (Some(layout), Some(plan)) = (&layout, &plan) {
        for (mount, _) in layout.unmanaged() {
            let dir = mount.join(plan.path.trim_start_matches('/'));
            if let Err(e) = cgroups::move_to(Path::new("/"), &dir, std::process::id()) {
                tracing::debug!(error = %e, "cannot join {}", dir.display());
            }
        }
        // cgroup2 allows no processes in planet's top cgroup once its systemd has enabled
        // controllers for its children: join systemd's own leaf instead.
        if layout.mode == CgroupMode::Unified {
            sub_cgroup = Some("init.scope".to_string());
        }
    }

    let mut env = HashMap::from([
        ("HOME".to_string(), "/root".to_string()),
        // Messages for the supervisor come from planet's systemd only.
        ("NOTIFY_SOCKET".to_string(), String::new()),
    ]);
    if let Ok(term) = std::env::var("TERM") {
        env.insert("TERM".into(), term);
    }
    // kubectl and etcdctl work without flags where planet runs Kubernetes.
    let pki = Status::running_init_pid(state_dir)
        .map(|pid| super::inside::host_path(pid, super::paths::PKI_INSIDE).join("ca.crt"));
    if pki.is_some_and(|ca| ca.exists()) {
        for (k, v) in super::paths::KUBERNETES_ENV {
            env.insert(k.to_string(), v.to_string());
        }
    }
    // Ctrl-C and Ctrl-\ reach the command from the terminal; they must not kill us first.
    // Caught (not ignored) signals are reset to the default by exec, so the command gets them
    // as usual. SIGTERM and SIGHUP sent to us are passed on.
    let signals = super::sys::SignalPipe::install(&[
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGHUP,
    ])
    .map_err(|e| fail(e.to_string()))?;
    let pid = ContainerBuilder::new(CONTAINER_ID.to_string(), SyscallType::default())
        .with_root_path(paths.runtime())
        .map_err(|e| fail(e.to_string()))?
        .as_tenant()
        .with_container_args(args.to_vec())
        .with_env(env)
        .with_cwd(Some("/"))
        .with_sub_cgroup(sub_cgroup)
        .with_detach(false)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    // libcontainer speaks nix 0.29; we speak 0.30.
    let pid = nix::unistd::Pid::from_raw(pid.as_raw());
    let pidfd = super::sys::pidfd_open(pid.as_raw()).map_err(|e| fail(e.to_string()))?;
    loop {
        let mut fds = [
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.fd(), PollFlags::POLLIN),
        ];
        let _ = poll(&mut fds, PollTimeout::NONE);
        for sig in signals.drain() {
            if sig == libc::SIGTERM || sig == libc::SIGHUP {
                // SAFETY: kill(2) takes no pointers; pid is our child.
                unsafe { libc::kill(pid.as_raw(), sig) };
            }
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            break;
        }
    }
    loop {
        // The tenant is a CLONE_PARENT child without an exit signal: only __WALL finds it.
        match waitpid(pid, Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code.clamp(0, 255) as u8),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128u8.saturating_add(sig as u8)),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(fail(format!("cannot wait for it: {e}"))),
        }
    }
}
