//! `gravity planet run`: the foreground supervisor. One process, one thread: it prepares the
//! rootfs, creates and starts planet with libcontainer (whose clone3-and-run-Rust children
//! deadlock in a threaded caller), stays planet's parent and subreaper, reports readiness to
//! the host's systemd, stops planet with SIGRTMIN+3 on SIGTERM/SIGINT, and tears everything
//! down when planet's init exits.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use libcontainer::container::Container;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::config::{ConfigError, PlanetConfig};
use super::paths::{CONTAINER_ID, Paths};
use super::spec::{HostFacts, SpecError};
use super::status::{ExitInfo, RunState, Status, Timings};
use super::sys::{SignalPipe, SupervisorLock};
use super::{artifact, cleanup, devices, env, inside, rootfs, spec, sys, volumes, write_atomic};
use crate::host::cgroups::{self, CgroupError, CgroupLayout, CgroupMode, CgroupPlan, Membership};
use crate::host::devfilter;
use crate::host::fs::RealFs;
use crate::host::mounts::{KernelMounter, MountError, Mounted};

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(
        "planet is already running under another supervisor (pid {pid}): stop it with `gravity planet stop`"
    )]
    AlreadyRunning { pid: String },
    #[error(
        "the supervisor has {0} threads: libcontainer must be called from a single-threaded process (a fresh `gravity planet run`)"
    )]
    Threads(usize),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Image(#[from] artifact::ImageError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    Volume(#[from] volumes::VolumeError),
    #[error(transparent)]
    Device(#[from] crate::host::devices::DeviceError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    DeviceFilter(#[from] devfilter::FilterError),
    #[error(transparent)]
    Cleanup(#[from] cleanup::CleanupError),
    #[error("libcontainer could not {what} planet: {detail}")]
    Runtime { what: &'static str, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SupervisorError {
    let what = what.into();
    move |source| SupervisorError::Io { what, source }
}

/// How planet's init ended, as the supervisor's exit code.
pub mod code {
    /// Stopped on request, or halted from inside.
    pub const CLEAN: u8 = 0;
    /// The stop timeout passed and planet was killed.
    pub const KILLED: u8 = 137;
}

/// Runs planet until it stops; returns the exit code for the process.
pub fn run(state_dir: &Path) -> Result<u8, SupervisorError> {
    let started = Instant::now();
    let paths = Paths::new(state_dir);
    // Before anything that could start a thread.
    let threads = sys::thread_count();
    if threads > 1 {
        return Err(SupervisorError::Threads(threads));
    }
    let Some(_lock) = SupervisorLock::try_acquire(&paths.lock())
        .map_err(io("cannot take the supervisor lock"))?
    else {
        let pid = Status::load(state_dir)
            .map(|s| s.supervisor_pid.to_string())
            .unwrap_or_else(|| "unknown".into());
        return Err(SupervisorError::AlreadyRunning { pid });
    };
    let config = PlanetConfig::load(state_dir)?;
    let mut status = Status {
        state: RunState::Starting,
        supervisor_pid: std::process::id(),
        init_pid: None,
        image_version: config.image.version.clone(),
        cgroup: Status::load(state_dir).and_then(|s| s.cgroup),
        system_state: None,
        started_at_ms: sys::now_ms(),
        updated_at_ms: 0,
        timings: Timings::default(),
        exit: None,
        error: None,
    };
    status.save(state_dir);
    systemd::notify::status("preparing planet's rootfs");

    let mut run = Run {
        paths: paths.clone(),
        config,
        started,
        status,
        mounted: Vec::new(),
        layout: None,
        plan: None,
        own: Membership::default(),
    };
    let result = run.supervise();
    let stop_started = Instant::now();
    let teardown = run.teardown();
    match (&result, &teardown) {
        (Ok(_), Ok(())) => {}
        (_, Err(e)) => {
            tracing::error!(error = %e, "teardown incomplete: run `gravity planet teardown`")
        }
        _ => {}
    }
    let mut status = run.status;
    status.init_pid = None;
    if let Some(ms) = status.timings.stop_ms {
        status.timings.stop_ms = Some(ms + stop_started.elapsed().as_millis() as u64);
    }
    match result {
        Ok(exit) => {
            status.state = if exit.code == code::CLEAN {
                RunState::Stopped
            } else {
                RunState::Failed
            };
            tracing::info!(code = exit.code, reason = %exit.reason, "planet exited");
            let code = exit.code;
            status.exit = Some(exit);
            status.save(state_dir);
            teardown?;
            Ok(code)
        }
        Err(e) => {
            status.state = RunState::Failed;
            status.error = Some(e.to_string());
            status.save(state_dir);
            Err(e)
        }
    }
}

struct Run {
    paths: Paths,
    config: PlanetConfig,
    started: Instant,
    status: Status,
    mounted: Vec<Mounted>,
    layout: Option<CgroupLayout>,
    plan: Option<CgroupPlan>,
    own: Membership,
}

enum Phase {
    Booting,
    Up,
    Stopping { deadline: Instant, killed: bool },
}

impl Run {
    fn ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn supervise(&mut self) -> Result<ExitInfo, SupervisorError> {
        let signals =
            SignalPipe::install(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD])
                .map_err(io("cannot install signal handlers"))?;
        set_subreaper().map_err(io("cannot become a subreaper"))?;

        // A run killed with SIGKILL (or a power loss) leaves its container, cgroups and
        // mounts: remove them before anything else.
        cleanup::stale(&self.paths)?;
        tracing::debug!(ms = self.ms(), "leftovers of earlier runs removed");
        let dir = &self.paths.dir;
        std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;

        let t = Instant::now();
        artifact::verify(&self.config.image.path, &self.config.image.sha256)?;
        tracing::debug!(ms = self.ms(), elapsed = ?t.elapsed(), "image verified");

        // Our mounts live in a namespace of our own (slave of the host's, so later host mounts
        // still reach volumes): they vanish with this process, however it ends.
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
            .map_err(|e| io("cannot create a mount namespace")(e.into()))?;
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE,
            None::<&str>,
        )
        .map_err(|e| io("cannot make the mount namespace a slave")(e.into()))?;

        let layout = CgroupLayout::detect(Path::new("/"))?;
        self.own = Membership::read(Path::new("/"), "self")?;
        let plan = cgroups::plan(&layout, &self.own, &self.paths.instance());
        self.status.cgroup = Some(plan.clone());
        self.status.save(&self.paths.state_dir);
        if let Some(leaf) = &plan.supervisor {
            // cgroup2: no processes in a cgroup whose children get controllers.
            let dir = layout.dirs(leaf).remove(0);
            std::fs::create_dir_all(&dir)
                .map_err(io(format!("cannot create {}", dir.display())))?;
            cgroups::move_to(Path::new("/"), &dir, std::process::id())?;
        }
        layout.create(&plan.path)?;
        tracing::debug!(ms = self.ms(), "cgroups created");
        self.layout = Some(layout.clone());
        self.plan = Some(plan.clone());

        self.mounted = rootfs::mount(&self.config, &self.paths, &KernelMounter)?;
        tracing::debug!(ms = self.ms(), "rootfs mounted");

        let env_file = self.paths.environment();
        write_atomic(&env_file, env::render(&self.config).as_bytes())
            .map_err(io(format!("cannot write {}", env_file.display())))?;
        let notify = bind_notify_socket(&self.paths)?;

        let facts = HostFacts {
            cap_bounding: HostFacts::host_bounding_set()
                .map_err(io("cannot read the bounding set"))?,
            rlimit_hard: HostFacts::host_rlimits(),
            cgroup_path: plan.path.clone(),
            cgroup_readonly: layout.readonly_files(&plan.path)?,
            devices: devices::resolve(Path::new("/"), &self.config.devices)?,
            volumes: volumes::prepare(&self.config.volumes, &RealFs::host())?,
            resolv_conf: HostFacts::host_resolv_conf(),
            lib_modules: Path::new("/lib/modules").is_dir(),
        };
        let oci = spec::build(&self.config, &facts, &self.paths)?;
        spec::save(&oci, &self.paths.bundle())?;
        tracing::debug!(ms = self.ms(), "volumes and devices resolved, spec written");

        let mut container = self.create_container(&layout, &plan)?;
        tracing::debug!(ms = self.ms(), "container created");
        if let Some(unified) = layout
            .unified
            .as_ref()
            .filter(|_| layout.mode != CgroupMode::Legacy)
        {
            // cgroup2's device controller is an eBPF program; libcontainer (without libbpf)
            // leaves it to us. On a hybrid host it backs the v1 device cgroup up.
            let mut all = devices::base_devices();
            all.extend(facts.devices.iter().cloned());
            let cg = unified.join(plan.path.trim_start_matches('/'));
            devfilter::attach(&cg, &spec::device_allow_list(&all))?;
        }
        container.start().map_err(|e| SupervisorError::Runtime {
            what: "start",
            detail: e.to_string(),
        })?;
        let init_pid = container
            .pid()
            .ok_or(SupervisorError::Runtime {
                what: "find the init process of",
                detail: "no pid in its state".into(),
            })?
            .as_raw();
        let pidfd = sys::pidfd_open(init_pid).map_err(io("cannot watch planet's init"))?;
        self.status.init_pid = Some(init_pid);
        self.status.timings.rootfs_ready_ms = Some(self.ms());
        self.status.save(&self.paths.state_dir);
        tracing::info!(
            init_pid,
            rootfs_ready_ms = self.ms(),
            devices = facts.devices.len(),
            volumes = facts.volumes.len(),
            "planet {} started",
            self.config.image.version
        );
        systemd::notify::status("planet's systemd is booting");

        self.wait(init_pid, &pidfd, &signals, &notify)
    }

    /// Creates the container with libcontainer. On a v1 host the supervisor first joins
    /// planet's cgroup in the hierarchies libcontainer does not manage (name=systemd, and a
    /// hybrid host's cgroup2), so that planet's init is created there, then leaves again.
    fn create_container(
        &self,
        layout: &CgroupLayout,
        plan: &CgroupPlan,
    ) -> Result<Container, SupervisorError> {
        let root = Path::new("/");
        let pid = std::process::id();
        let rel = plan.path.trim_start_matches('/');
        let unmanaged = layout.unmanaged();
        for (mount, _) in &unmanaged {
            cgroups::move_to(root, &mount.join(rel), pid)?;
        }
        let runtime = self.paths.runtime();
        std::fs::create_dir_all(&runtime)
            .map_err(io(format!("cannot create {}", runtime.display())))?;
        let devnull = std::fs::File::open("/dev/null").map_err(io("cannot open /dev/null"))?;
        let built = ContainerBuilder::new(CONTAINER_ID.to_string(), SyscallType::default())
            .with_root_path(&runtime)
            .and_then(|b| {
                b.with_stdin(OwnedFd::from(devnull))
                    .as_init(self.paths.bundle())
                    .with_systemd(false)
                    .with_detach(true)
                    .build()
            });
        // Back where we came from, whatever happened.
        for (mount, key) in &unmanaged {
            let original = self.own.path(key).unwrap_or("/");
            if let Err(e) =
                cgroups::move_to(root, &mount.join(original.trim_start_matches('/')), pid)
            {
                tracing::warn!(error = %e, "cannot move the supervisor back");
            }
        }
        built.map_err(|e| SupervisorError::Runtime {
            what: "create",
            detail: e.to_string(),
        })
    }

    fn wait(
        &mut self,
        init_pid: i32,
        pidfd: &OwnedFd,
        signals: &SignalPipe,
        notify: &UnixDatagram,
    ) -> Result<ExitInfo, SupervisorError> {
        let mut phase = Phase::Booting;
        let mut stop_requested: Option<Instant> = None;
        let stop_timeout = Duration::from_secs(self.config.stop_timeout_secs);
        let mut last_probe = Instant::now();
        let mut periodic: Vec<Scheduled> = self
            .config
            .periodic
            .iter()
            .map(|p| Scheduled {
                argv: p.argv.clone(),
                interval: Duration::from_secs(p.interval_secs.max(1)),
                due: None,
                running: None,
            })
            .collect();
        loop {
            let timeout = match &phase {
                Phase::Booting => Duration::from_millis(500),
                Phase::Up => periodic
                    .iter()
                    .filter_map(|p| p.due)
                    .map(|due| due.saturating_duration_since(Instant::now()))
                    .min()
                    .unwrap_or(Duration::from_secs(3600)),
                Phase::Stopping { deadline, .. } => {
                    deadline.saturating_duration_since(Instant::now())
                }
            };
            let mut fds = [
                PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(signals.fd(), PollFlags::POLLIN),
                PollFd::new(notify.as_fd(), PollFlags::POLLIN),
            ];
            let ms = timeout.as_millis().min(3_600_000) as i32;
            match poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(io("poll failed")(e.into())),
            }
            let ready = |i: usize| {
                fds[i]
                    .revents()
                    .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP))
            };
            let (init_done, got_signal, got_notify) = (ready(0), ready(1), ready(2));

            if init_done {
                let status = reap(init_pid);
                let killed = matches!(phase, Phase::Stopping { killed: true, .. });
                if let Some(at) = stop_requested {
                    self.status.timings.stop_ms = Some(at.elapsed().as_millis() as u64);
                }
                return Ok(exit_info(
                    status,
                    stop_requested.is_some(),
                    killed,
                    stop_timeout,
                ));
            }
            if got_signal {
                for sig in signals.drain() {
                    match sig {
                        libc::SIGCHLD => reap_others(init_pid),
                        libc::SIGTERM | libc::SIGINT | libc::SIGHUP => {
                            if let Phase::Stopping { killed: false, .. } = phase {
                                // A second request: do not wait any longer.
                                tracing::warn!("second stop request: killing planet");
                                let _ = kill(Pid::from_raw(init_pid), Signal::SIGKILL);
                                phase = Phase::Stopping {
                                    deadline: Instant::now() + Duration::from_secs(30),
                                    killed: true,
                                };
                            } else if !matches!(phase, Phase::Stopping { .. }) {
                                stop_requested = Some(Instant::now());
                                phase = self.begin_stop(init_pid, stop_timeout);
                                for p in &mut periodic {
                                    p.stop();
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            if got_notify {
                for msg in read_notify(notify) {
                    if msg.lines().any(|l| l == "READY=1") && matches!(phase, Phase::Booting) {
                        self.booted(init_pid);
                        phase = Phase::Up;
                    }
                    if msg.lines().any(|l| l == "STOPPING=1")
                        && !matches!(phase, Phase::Stopping { .. })
                    {
                        tracing::info!("planet's systemd is shutting down");
                        self.status.state = RunState::Stopping;
                        self.status.save(&self.paths.state_dir);
                    }
                }
            }
            match phase {
                Phase::Booting if last_probe.elapsed() >= Duration::from_secs(1) => {
                    // In case READY=1 never reaches us (an image whose systemd does not send
                    // it): ask systemd directly, once a second.
                    last_probe = Instant::now();
                    if let Some(state) = inside::system_state(init_pid)
                        && (state == "running" || state == "degraded")
                    {
                        self.booted(init_pid);
                        phase = Phase::Up;
                    }
                }
                Phase::Up => {
                    for p in &mut periodic {
                        p.tick();
                    }
                }
                Phase::Stopping {
                    deadline,
                    killed: false,
                } if Instant::now() >= deadline => {
                    tracing::warn!(timeout = ?stop_timeout, "planet did not stop in time: killing it");
                    let _ = kill(Pid::from_raw(init_pid), Signal::SIGKILL);
                    phase = Phase::Stopping {
                        deadline: Instant::now() + Duration::from_secs(30),
                        killed: true,
                    };
                }
                _ => {}
            }
        }
    }

    fn begin_stop(&mut self, init_pid: i32, timeout: Duration) -> Phase {
        tracing::info!("stopping planet (SIGRTMIN+3 to its systemd)");
        systemd::notify::stopping();
        self.status.state = RunState::Stopping;
        self.status.save(&self.paths.state_dir);
        // systemd's "halt" request; libcontainer's kill cannot send real-time signals.
        let sigrtmin3 = libc::SIGRTMIN() + 3;
        // SAFETY: kill(2) with a pid we own (planet's init) and a valid signal number.
        if unsafe { libc::kill(init_pid, sigrtmin3) } != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot signal planet's init");
        }
        Phase::Stopping {
            deadline: Instant::now() + timeout,
            killed: false,
        }
    }

    fn booted(&mut self, init_pid: i32) {
        let state = inside::system_state(init_pid).unwrap_or_else(|| "unknown".into());
        let ms = self.ms();
        self.status.timings.systemd_ready_ms = Some(ms);
        self.status.system_state = Some(state.clone());
        self.status.state = if state == "degraded" {
            RunState::Degraded
        } else {
            RunState::Running
        };
        self.status.save(&self.paths.state_dir);
        if state == "degraded" {
            tracing::warn!(ms, "planet booted degraded: see `gravity planet status`");
            systemd::notify::status("planet is running degraded (failed units inside)");
        } else {
            tracing::info!(ms, "planet is running");
            systemd::notify::status("planet is running");
        }
        systemd::notify::ready();
    }

    /// Undoes what this run set up; safe to call after a partial setup.
    fn teardown(&mut self) -> Result<(), SupervisorError> {
        let mut first: Option<SupervisorError> = None;
        if let (Some(layout), Some(plan)) = (&self.layout, &self.plan) {
            if let Err(e) = cleanup::container_and_cgroups(&self.paths, layout, plan) {
                first.get_or_insert(e.into());
            }
        } else if let Err(e) = cleanup::container_state(&self.paths) {
            first.get_or_insert(e.into());
        }
        if let Err(e) = rootfs::unmount(&self.mounted, &KernelMounter) {
            first.get_or_insert(e.into());
        }
        self.mounted.clear();
        let _ = std::fs::remove_file(self.paths.notify_socket());
        first.map_or(Ok(()), Err)
    }
}

fn set_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes no pointers.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn bind_notify_socket(paths: &Paths) -> Result<UnixDatagram, SupervisorError> {
    let dir = paths.run();
    std::fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
    let path = paths.notify_socket();
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).map_err(io(format!("cannot bind {}", path.display())))?;
    sock.set_nonblocking(true)
        .map_err(io("cannot make the notify socket non-blocking"))?;
    Ok(sock)
}

fn read_notify(sock: &UnixDatagram) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        tracing::debug!(message = %msg.replace('\n', " "), "planet's systemd");
        out.push(msg);
    }
    out
}

/// Reaps planet's init. Created with CLONE_PARENT and no exit signal, it is a "clone" child:
/// only __WALL finds it.
fn reap(init_pid: i32) -> WaitStatus {
    loop {
        match waitpid(Pid::from_raw(init_pid), Some(WaitPidFlag::__WALL)) {
            Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return s,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reap planet's init");
                return WaitStatus::StillAlive;
            }
        }
    }
}

/// Reaps other children (orphans we inherited as subreaper), never planet's init.
/// A [`crate::config::Periodic`] command's schedule: first due one interval after planet is up,
/// skipped while its previous run still runs (the child is reaped with the others on SIGCHLD).
struct Scheduled {
    argv: Vec<String>,
    interval: Duration,
    due: Option<Instant>,
    running: Option<i32>,
}

impl Scheduled {
    /// Stops a run in progress (planet is stopping: its answer would be about a cluster that
    /// is going away, and an uninstall must not see it write into the state directory).
    fn stop(&mut self) {
        self.due = None;
        if let Some(pid) = self.running.take().filter(|p| sys::alive(*p)) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        let Some(due) = self.due else {
            self.due = Some(now + self.interval);
            return;
        };
        if now < due {
            return;
        }
        self.due = Some(now + self.interval);
        if self.running.is_some_and(sys::alive) {
            return;
        }
        let Some((program, args)) = self.argv.split_first() else {
            return;
        };
        match std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            Ok(child) => self.running = Some(child.id() as i32),
            Err(e) => {
                tracing::warn!(command = ?self.argv, error = %e, "cannot run a periodic command")
            }
        }
    }
}

fn reap_others(init_pid: i32) {
    loop {
        match waitpid(
            None::<Pid>,
            Some(WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT | WaitPidFlag::__WALL),
        ) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(s) => match s.pid() {
                Some(pid) if pid.as_raw() != init_pid => {
                    let _ = waitpid(pid, Some(WaitPidFlag::__WALL));
                }
                // Planet's init: left for the pidfd path to reap with its status.
                _ => return,
            },
        }
    }
}

fn exit_info(status: WaitStatus, requested: bool, killed: bool, timeout: Duration) -> ExitInfo {
    match status {
        _ if killed => ExitInfo {
            code: code::KILLED,
            reason: format!("planet did not stop within {timeout:?} and was killed"),
        },
        WaitStatus::Exited(_, 0) => ExitInfo {
            code: code::CLEAN,
            reason: if requested {
                "stopped".into()
            } else {
                "planet's systemd halted".into()
            },
        },
        WaitStatus::Exited(_, n) => ExitInfo {
            code: n.clamp(1, 255) as u8,
            reason: format!("planet's init exited with status {n}"),
        },
        // A systemd in a pid namespace "reboots" or "halts" by having the kernel kill it with
        // SIGHUP or SIGINT (pid_namespaces(7)).
        WaitStatus::Signaled(_, Signal::SIGINT, _) => ExitInfo {
            code: code::CLEAN,
            reason: if requested {
                "stopped".into()
            } else {
                "planet powered off".into()
            },
        },
        WaitStatus::Signaled(_, Signal::SIGHUP, _) if requested => ExitInfo {
            code: code::CLEAN,
            reason: "stopped".into(),
        },
        WaitStatus::Signaled(_, sig, _) => ExitInfo {
            code: 128u8.saturating_add(sig as u8),
            reason: format!("planet's init was killed by {sig}"),
        },
        other => ExitInfo {
            code: 1,
            reason: format!("planet's init ended unexpectedly: {other:?}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let pid = Pid::from_raw(1);
        let t = Duration::from_secs(60);
        assert_eq!(
            exit_info(WaitStatus::Exited(pid, 0), true, false, t).code,
            0
        );
        assert_eq!(
            exit_info(WaitStatus::Exited(pid, 3), false, false, t).code,
            3
        );
        assert_eq!(
            exit_info(
                WaitStatus::Signaled(pid, Signal::SIGINT, false),
                false,
                false,
                t
            )
            .code,
            0
        );
        assert_eq!(
            exit_info(
                WaitStatus::Signaled(pid, Signal::SIGSEGV, true),
                false,
                false,
                t
            )
            .code,
            139
        );
        let killed = exit_info(
            WaitStatus::Signaled(pid, Signal::SIGKILL, false),
            true,
            true,
            t,
        );
        assert_eq!(killed.code, 137);
        assert!(killed.reason.contains("60s"), "{}", killed.reason);
    }

    #[test]
    fn notify_messages() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let sock = bind_notify_socket(&paths).unwrap();
        let client = UnixDatagram::unbound().unwrap();
        client
            .send_to(b"READY=1\nSTATUS=Startup finished", paths.notify_socket())
            .unwrap();
        let msgs = read_notify(&sock);
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].lines().any(|l| l == "READY=1"));
        assert!(read_notify(&sock).is_empty());
    }
}
