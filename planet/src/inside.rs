//! Short read-only queries inside planet (`systemctl is-system-running`, `systemctl show`)
//! without libcontainer: the child joins planet's namespaces with setns(2) between fork and
//! exec (and forks once more to enter the pid namespace, as nsenter does). Only system calls
//! run there, so this is safe from any process, threaded or not (health checks run from the
//! install engine). Interactive and user commands go through
//! libcontainer's tenant exec instead (`gravity planet exec`).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// `path` inside planet as this host reaches it: through planet's init's root
/// (`/proc/<pid>/root/...`); planet's image is mounted in its supervisor's own mount namespace,
/// so the state directory's mount points are empty from the host.
pub fn host_path(pid: i32, path: &str) -> std::path::PathBuf {
    std::path::Path::new(&format!("/proc/{pid}/root")).join(path.trim_start_matches('/'))
}

/// A command that runs `program` (an absolute path inside planet) in the namespaces of
/// planet's init, `pid`.
pub fn command(pid: i32, program: &str, args: &[&str]) -> std::io::Result<Command> {
    // The mount namespace last: joining it changes root and working directory.
    let kinds = [
        ("cgroup", libc::CLONE_NEWCGROUP),
        ("ipc", libc::CLONE_NEWIPC),
        ("uts", libc::CLONE_NEWUTS),
        ("pid", libc::CLONE_NEWPID),
        ("mnt", libc::CLONE_NEWNS),
    ];
    let mut fds = Vec::new();
    for (name, flag) in kinds {
        let f = File::open(format!("/proc/{pid}/ns/{name}"))?;
        fds.push((f, flag));
    }
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("SYSTEMD_COLORS", "0")
        .stdin(Stdio::null());
    // SAFETY: the closure runs in the forked child and calls only async-signal-safe system
    // calls (setns, chdir, fork, prctl, waitpid, _exit); the descriptors it uses are owned by
    // `fds`, moved into the closure.
    unsafe {
        cmd.pre_exec(move || {
            // The waiting middle process never execs, so O_CLOEXEC does not close what it
            // inherited (an operation's lock among them): it must not outlive its parent.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            for (f, flag) in &fds {
                if libc::setns(f.as_raw_fd(), *flag) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::chdir(c"/".as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Joining a pid namespace only moves children: fork once more, as nsenter does.
            // Outside planet's pid namespace, systemctl's connections to planet's systemd
            // fail intermittently ("Transport endpoint is not connected").
            let pid = libc::fork();
            if pid < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if pid == 0 {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                return Ok(());
            }
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            let mut status = 0;
            while libc::waitpid(pid, &mut status, 0) < 0 {
                if *libc::__errno_location() != libc::EINTR {
                    libc::_exit(127);
                }
            }
            if libc::WIFEXITED(status) {
                libc::_exit(libc::WEXITSTATUS(status));
            }
            libc::_exit(128 + libc::WTERMSIG(status));
        });
    }
    Ok(cmd)
}

/// Runs a query inside planet and returns its output, or `None` when it could not run or did
/// not finish within `timeout`. The pipes are drained while it runs: an answer larger than a
/// pipe's buffer must not block it until the timeout.
pub fn query(pid: i32, program: &str, args: &[&str], timeout: Duration) -> Option<Output> {
    let mut child = command(pid, program, args)
        .ok()?
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    Some(Output {
        status,
        stdout: stdout.join().ok()?,
        stderr: stderr.join().ok()?,
    })
}

/// What planet's systemd still has to do: its queued jobs (`planet-setup.service start
/// running`, ...), joined by commas; `None` where it has none or does not answer.
pub fn pending_jobs(pid: i32) -> Option<String> {
    let out = query(
        pid,
        "/usr/bin/systemctl",
        &["list-jobs", "--no-legend", "--no-pager"],
        Duration::from_secs(5),
    )?;
    let jobs = parse_jobs(&String::from_utf8_lossy(&out.stdout));
    (!jobs.is_empty()).then(|| jobs.join(", "))
}

/// `systemctl list-jobs --no-legend` lines (`JOB UNIT TYPE STATE`) as `UNIT TYPE (STATE)`,
/// the running ones first: those are what the others wait on.
fn parse_jobs(text: &str) -> Vec<String> {
    let mut jobs: Vec<(bool, String)> = text
        .lines()
        .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [_, unit, kind, state, ..] => {
                Some((state != "running", format!("{unit} {kind} ({state})")))
            }
            _ => None,
        })
        .collect();
    jobs.sort_by_key(|(waiting, _)| *waiting);
    jobs.into_iter().map(|(_, j)| j).collect()
}

pub fn system_state(pid: i32) -> Option<String> {
    let out = query(
        pid,
        "/usr/bin/systemctl",
        &["is-system-running"],
        Duration::from_secs(5),
    )?;
    let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!state.is_empty()).then_some(state)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_running_jobs_come_first() {
        let text = "\
104 planet.target                start waiting
98  planet-setup.service         start running
101 planet-containerd.service    start waiting
";
        assert_eq!(
            super::parse_jobs(text),
            [
                "planet-setup.service start (running)",
                "planet.target start (waiting)",
                "planet-containerd.service start (waiting)"
            ]
        );
        assert!(super::parse_jobs("").is_empty());
    }
}
