//! `requirements.customChecks`: the vendor's bash scripts, each in its own process group with a
//! timeout that kills the whole group; stdout and stderr are kept for the report and the log.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
#[cfg(any(test, feature = "test-util"))]
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cluster_image::manifest::CustomCheck;

use crate::check::CheckResult;

/// The default when neither the manifest nor the command line sets a timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of each stream is kept; the rest is counted and dropped.
const KEEP_BYTES: usize = 64 << 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    TimedOut(Duration),
    /// bash could not be started at all.
    NotStarted(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptOutcome {
    pub exit: Exit,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs a script. The real one runs bash; tests use [`RecordingRunner`].
pub trait ScriptRunner: Sync {
    fn run(&self, script: &str, timeout: Duration) -> ScriptOutcome;
}

/// Runs scripts with `bash` from a private file, in their own process group.
#[derive(Debug, Clone)]
pub struct BashRunner {
    pub bash: PathBuf,
    /// The scripts' working directory (the cluster image's directory); inherited when None.
    pub workdir: Option<PathBuf>,
}

impl Default for BashRunner {
    fn default() -> Self {
        BashRunner {
            bash: PathBuf::from("bash"),
            workdir: None,
        }
    }
}

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn read_bounded(mut r: impl Read) -> String {
    let mut kept = Vec::new();
    let mut dropped = 0usize;
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = KEEP_BYTES.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                dropped += n.saturating_sub(room);
            }
        }
    }
    let mut s = String::from_utf8_lossy(&kept).into_owned();
    if dropped > 0 {
        s.push_str(&format!("\n[... {dropped} more bytes not kept]"));
    }
    s
}

impl ScriptRunner for BashRunner {
    fn run(&self, script: &str, timeout: Duration) -> ScriptOutcome {
        static N: AtomicU64 = AtomicU64::new(0);
        let start = Instant::now();
        let not_started = |why: String| ScriptOutcome {
            exit: Exit::NotStarted(why),
            stdout: String::new(),
            stderr: String::new(),
            elapsed: start.elapsed(),
        };
        let path = std::env::temp_dir().join(format!(
            ".gravity-check-{}-{}.sh",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, script.as_bytes()));
        let _cleanup = RemoveOnDrop(path.clone());
        if let Err(e) = written {
            return not_started(format!(
                "cannot write the script to {}: {e}",
                path.display()
            ));
        }
        let mut cmd = Command::new(&self.bash);
        cmd.arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that a timeout kills everything it started.
            .process_group(0);
        if let Some(d) = &self.workdir {
            cmd.current_dir(d);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return not_started(format!("cannot run {}: {e}", self.bash.display()));
            }
        };
        let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
        let (out_tx, out_rx) = mpsc::channel();
        for (which, stream) in [
            (
                0,
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn Read + Send>),
            ),
            (
                1,
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn Read + Send>),
            ),
        ] {
            let tx = out_tx.clone();
            if let Some(stream) = stream {
                std::thread::spawn(move || {
                    let _ = tx.send((which, read_bounded(stream)));
                });
            }
        }
        drop(out_tx);
        let (wait_tx, wait_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = wait_tx.send(child.wait());
        });
        let exit = match wait_rx.recv_timeout(timeout) {
            Ok(Ok(status)) => match (status.code(), status.signal()) {
                (Some(c), _) => Exit::Code(c),
                (None, Some(s)) => Exit::Signal(s),
                (None, None) => Exit::Code(-1),
            },
            Ok(Err(e)) => Exit::NotStarted(format!("waiting for bash failed: {e}")),
            Err(_) => {
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                let _ = wait_rx.recv();
                Exit::TimedOut(timeout)
            }
        };
        // Whatever the script left running in its group would keep our pipes open.
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let mut stdout = String::new();
        let mut stderr = String::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        for _ in 0..2 {
            let left = deadline.saturating_duration_since(Instant::now());
            match out_rx.recv_timeout(left) {
                Ok((0, s)) => stdout = s,
                Ok((_, s)) => stderr = s,
                // A process that left the group (setsid) still holds the pipe: stop waiting.
                Err(_) => break,
            }
        }
        ScriptOutcome {
            exit,
            stdout,
            stderr,
            elapsed: start.elapsed(),
        }
    }
}

/// A fake that returns prepared outcomes in order and records what it was asked to run.
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug, Default)]
pub struct RecordingRunner {
    pub outcomes: Mutex<Vec<ScriptOutcome>>,
    pub calls: Mutex<Vec<(String, Duration)>>,
}

#[cfg(any(test, feature = "test-util"))]
impl RecordingRunner {
    pub fn new(outcomes: Vec<ScriptOutcome>) -> Self {
        RecordingRunner {
            outcomes: Mutex::new(outcomes),
            calls: Mutex::new(Vec::new()),
        }
    }
}

#[cfg(any(test, feature = "test-util"))]
impl ScriptRunner for RecordingRunner {
    fn run(&self, script: &str, timeout: Duration) -> ScriptOutcome {
        self.calls
            .lock()
            .expect("calls lock")
            .push((script.to_string(), timeout));
        let mut o = self.outcomes.lock().expect("outcomes lock");
        if o.is_empty() {
            ScriptOutcome {
                exit: Exit::Code(0),
                stdout: String::new(),
                stderr: String::new(),
                elapsed: Duration::ZERO,
            }
        } else {
            o.remove(0)
        }
    }
}

/// The timeout for one check: the command line's, else the manifest's, else 60 s.
pub fn timeout_for(check: &CustomCheck, cli: Option<Duration>) -> Result<Duration, String> {
    if let Some(t) = cli {
        return Ok(t);
    }
    match &check.timeout {
        Some(t) => cluster_image::units::parse_duration(t),
        None => Ok(DEFAULT_TIMEOUT),
    }
}

fn last_line(s: &str) -> Option<&str> {
    s.lines().map(str::trim).rfind(|l| !l.is_empty())
}

fn signal_name(s: i32) -> String {
    nix::sys::signal::Signal::try_from(s)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {s}"))
}

/// Runs check number `index` (1-based, as `custom:<index>` in the report).
pub fn check_custom(
    runner: &dyn ScriptRunner,
    index: usize,
    check: &CustomCheck,
    cli_timeout: Option<Duration>,
) -> CheckResult {
    let id = format!("custom:{index}");
    let title = check
        .description
        .clone()
        .unwrap_or_else(|| format!("Custom check {index}"));
    let where_ = format!("customChecks[{}] in the manifest", index - 1);
    let timeout = match timeout_for(check, cli_timeout) {
        Ok(t) => t,
        Err(e) => {
            return CheckResult::fail(id, title)
                .measured("not run")
                .detail(e)
                .fix(format!("correct the timeout of {where_}"));
        }
    };
    let o = runner.run(&check.script, timeout);
    tracing::info!(
        check = %id,
        exit = ?o.exit,
        elapsed = ?o.elapsed,
        stdout = %o.stdout,
        stderr = %o.stderr,
        "custom check \"{title}\""
    );
    let mut detail = String::new();
    if !o.stdout.trim().is_empty() {
        detail.push_str(&format!("stdout:\n{}\n", o.stdout.trim_end()));
    }
    if !o.stderr.trim().is_empty() {
        detail.push_str(&format!("stderr:\n{}\n", o.stderr.trim_end()));
    }
    let said = last_line(&o.stderr)
        .filter(|_| o.exit != Exit::Code(0))
        .or_else(|| last_line(&o.stdout));
    let with_said = |m: String| match said {
        Some(s) => format!("{m}: {s}"),
        None => m,
    };
    let r = match &o.exit {
        Exit::Code(0) => CheckResult::pass(id, title).measured(with_said("exit code 0".into())),
        Exit::Code(c) => CheckResult::fail(id, title)
            .measured(with_said(format!("exit code {c}")))
            .fix(format!(
                "fix what the script reports (its output is below and in the log); the check is {where_}"
            )),
        Exit::Signal(s) => CheckResult::fail(id, title)
            .measured(with_said(format!("killed by {}", signal_name(*s))))
            .fix(format!("the script was killed by a signal: run it by hand to see why ({where_})")),
        Exit::TimedOut(t) => CheckResult::fail(id, title)
            .measured(with_said(format!(
                "timed out after {} s, killed with its process group",
                t.as_secs_f64()
            )))
            .fix(format!(
                "the script did not finish in {} s: find what it waits for, or raise `timeout` in {where_} or --custom-check-timeout",
                t.as_secs_f64()
            )),
        Exit::NotStarted(why) => CheckResult::fail(id, title)
            .measured("not run")
            .detail(why.clone())
            .fix("install bash on this host"),
    };
    r.required("exit code 0").detail(detail).took(o.elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;

    fn cc(script: &str, timeout: Option<&str>) -> CustomCheck {
        CustomCheck {
            description: Some("test".into()),
            script: script.into(),
            timeout: timeout.map(str::to_string),
        }
    }

    #[test]
    fn timeouts_cli_then_manifest_then_default() {
        assert_eq!(timeout_for(&cc("", None), None).unwrap(), DEFAULT_TIMEOUT);
        assert_eq!(
            timeout_for(&cc("", Some("30s")), None).unwrap(),
            Duration::from_secs(30)
        );
        assert_eq!(
            timeout_for(&cc("", Some("30s")), Some(Duration::from_secs(5))).unwrap(),
            Duration::from_secs(5)
        );
        assert!(timeout_for(&cc("", Some("soon")), None).is_err());
    }

    #[test]
    fn outcomes_become_results() {
        let out = |exit, stdout: &str, stderr: &str| ScriptOutcome {
            exit,
            stdout: stdout.into(),
            stderr: stderr.into(),
            elapsed: Duration::from_millis(5),
        };
        let runner = RecordingRunner::new(vec![
            out(Exit::Code(0), "hostname is node-1\n", ""),
            out(Exit::Code(2), "checking\n", "no GPU driver\n"),
            out(Exit::TimedOut(Duration::from_secs(3)), "waiting\n", ""),
            out(Exit::Signal(9), "", ""),
        ]);
        let c = cc("#!/bin/bash\ntrue\n", Some("3s"));
        let r1 = check_custom(&runner, 1, &c, None);
        assert_eq!(r1.status, Status::Pass);
        assert_eq!(
            r1.measured.as_deref(),
            Some("exit code 0: hostname is node-1")
        );
        assert_eq!(r1.detail.as_deref(), Some("stdout:\nhostname is node-1\n"));
        let r2 = check_custom(&runner, 2, &c, None);
        assert_eq!(r2.status, Status::Fail);
        assert_eq!(r2.measured.as_deref(), Some("exit code 2: no GPU driver"));
        assert!(r2.fix.as_ref().unwrap().contains("customChecks[1]"));
        let r3 = check_custom(&runner, 3, &c, None);
        assert_eq!(
            r3.measured.as_deref(),
            Some("timed out after 3 s, killed with its process group: waiting")
        );
        let r4 = check_custom(&runner, 4, &c, None);
        assert_eq!(r4.measured.as_deref(), Some("killed by SIGKILL"));
        let calls = runner.calls.lock().unwrap();
        assert_eq!(calls.len(), 4);
        assert_eq!(
            calls[0],
            ("#!/bin/bash\ntrue\n".to_string(), Duration::from_secs(3))
        );
    }

    #[test]
    fn bash_runs_scripts_and_keeps_both_streams() {
        let o =
            BashRunner::default().run("echo out; echo err >&2; exit 7", Duration::from_secs(10));
        assert_eq!(o.exit, Exit::Code(7));
        assert_eq!(o.stdout, "out\n");
        assert_eq!(o.stderr, "err\n");
    }

    #[test]
    fn bash_timeout_kills_the_whole_group() {
        let marker = std::env::temp_dir().join(format!("gravity-custom-{}", std::process::id()));
        let script = format!(
            "sleep 30 & echo $! > {m}; echo started; wait",
            m = marker.display()
        );
        let start = Instant::now();
        let o = BashRunner::default().run(&script, Duration::from_millis(500));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(o.exit, Exit::TimedOut(Duration::from_millis(500)));
        assert_eq!(o.stdout, "started\n");
        let pid: i32 = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let _ = std::fs::remove_file(&marker);
        // The background sleep was in the group: SIGKILL is on its way; within a moment it is
        // gone (or a zombie waiting for init to reap it).
        let gone = || {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            state.is_empty() || state.split_whitespace().nth(2) == Some("Z")
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while !gone() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(gone(), "sleep {pid} survived the timeout");
    }
}
