//! planet's kubectl run on the host with the admin kubeconfig, as `gravity kubectl` runs it:
//! static, and planet shares the host's network, so the kubeconfig's address works from here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// kubectl's own limit on each request; the process gets a little more.
const REQUEST_TIMEOUT: &str = "--request-timeout=30s";
const PROCESS_TIMEOUT: Duration = Duration::from_secs(45);

pub struct Kubectl {
    program: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    /// The kubectl of the planet running for `state_dir`.
    pub fn of(state_dir: &Path) -> anyhow::Result<Kubectl> {
        let kubeconfig = crate::state_dir::StateDir::new(state_dir)
            .pki()
            .join("admin.kubeconfig");
        if !kubeconfig.exists() {
            bail!(
                "no Kubernetes is installed in {}: hooks need it",
                state_dir.display()
            );
        }
        let pid = planet::status::Status::running_init_pid(state_dir).with_context(|| {
            format!(
                "planet is not running (state directory {}): hooks run in its Kubernetes",
                state_dir.display()
            )
        })?;
        Ok(Kubectl {
            program: planet::inside::host_path(pid, "/usr/bin/kubectl"),
            kubeconfig,
        })
    }

    /// kubectl's stdout, or an error with its last line of stderr.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        self.run_with_input(args, None)
    }

    pub fn run_with_input(&self, args: &[&str], input: Option<&[u8]>) -> anyhow::Result<String> {
        self.spawn(args, input, PROCESS_TIMEOUT)
    }

    /// [`Kubectl::run`] for a command that waits itself (`drain --timeout`): up to `timeout`.
    pub fn run_for(&self, args: &[&str], timeout: Duration) -> anyhow::Result<String> {
        self.spawn(args, None, timeout)
    }

    fn spawn(
        &self,
        args: &[&str],
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let mut child = Command::new(&self.program)
            .arg(REQUEST_TIMEOUT)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run planet's kubectl ({})", self.program.display()))?;
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(bytes).context("cannot write to kubectl")?;
        }
        // Read both pipes on threads so that a chatty kubectl cannot block on a full pipe.
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let out = std::thread::spawn(move || read_all(stdout));
        let err = std::thread::spawn(move || read_all(stderr));
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "kubectl {} did not finish within {timeout:?}",
                    args.join(" ")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        if status.success() {
            return Ok(stdout);
        }
        let last = stderr
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("kubectl failed without a message");
        bail!("kubectl {}: {last}", args.join(" "))
    }
}

fn read_all(pipe: Option<impl std::io::Read>) -> String {
    let mut s = String::new();
    if let Some(mut p) = pipe {
        let _ = p.read_to_string(&mut s);
    }
    s
}
