//! Hosts as network namespaces joined by veth pairs, with links shaped by `tc`, and child
//! processes that die with the test. Names are unique per process so tests run in parallel;
//! everything is removed on drop, also when a test fails.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static N: AtomicU32 = AtomicU32::new(0);

fn unique() -> String {
    format!(
        "{}{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The device [`NetNs::host`] routes through.
pub const HOST_DEV: &str = "gvhost0";

pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new(label: &str) -> NetNs {
        crate::bins::require_root();
        let name = format!("gvt-{label}-{}", unique());
        ip(&["netns", "add", &name]);
        let ns = NetNs { name };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// A namespace that stands in for a host of its own, for planet and installs: loopback up,
    /// and a device with an address and the default route (planet's units and the install's
    /// advertise address want one): one end of a veth pair whose other end is in the same
    /// namespace, so nothing leaves the machine.
    pub fn host(label: &str) -> NetNs {
        let ns = NetNs::new(label);
        // A veth pair with both ends inside (this kernel may lack the dummy driver).
        ns.run(&[
            "ip", "link", "add", HOST_DEV, "type", "veth", "peer", "name", "gvhost1",
        ]);
        ns.run(&["ip", "addr", "add", "10.213.0.2/24", "dev", HOST_DEV]);
        ns.run(&["ip", "link", "set", HOST_DEV, "up"]);
        ns.run(&["ip", "link", "set", "gvhost1", "up"]);
        ns.run(&[
            "ip",
            "route",
            "add",
            "default",
            "via",
            "10.213.0.1",
            "dev",
            HOST_DEV,
        ]);
        ns
    }

    /// Makes `cmd` run in this namespace: only the network namespace is entered (with `setns`
    /// between fork and exec), so unlike `ip netns exec` the mount namespace stays the host's
    /// and the mounts the child makes (planet's image, overlay, volumes) are the host's too.
    /// Children the command starts (gravity's daemon, planet) stay in the namespace.
    pub fn enter<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        use std::os::fd::AsFd;
        use std::os::unix::process::CommandExt;
        let file = std::fs::File::open(format!("/run/netns/{}", self.name))
            .unwrap_or_else(|e| panic!("cannot open the namespace {}: {e}", self.name));
        // SAFETY: the closure runs in the forked child before exec and only makes the setns
        // system call on a descriptor opened before the fork (async-signal-safe).
        unsafe {
            cmd.pre_exec(move || {
                nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)
            });
        }
        cmd
    }

    /// Runs `f` on a thread that has entered this namespace (a thread's network namespace is
    /// its own): e.g. to connect to a port planet listens on inside it.
    pub fn within<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = std::fs::File::open(format!("/run/netns/{}", self.name))
            .unwrap_or_else(|e| panic!("cannot open the namespace {}: {e}", self.name));
        std::thread::scope(|s| {
            s.spawn(move || {
                use std::os::fd::AsFd;
                nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("setns");
                f()
            })
            .join()
            .expect("thread in the namespace")
        })
    }

    /// `program` run inside the namespace (`ip netns exec` execs it: the child is the program).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs a command inside the namespace and asserts it worked.
    pub fn run(&self, argv: &[&str]) -> String {
        let out = self
            .command(argv[0])
            .args(&argv[1..])
            .output()
            .expect("run in netns");
        assert!(
            out.status.success(),
            "{} in {} failed: {}",
            argv.join(" "),
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace removes the veth ends in it and their qdiscs.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A veth pair between two namespaces, `10.<subnet>.0.1/24` in `a`, `.2` in `b`.
pub struct Link {
    pub a_dev: String,
    pub b_dev: String,
    pub a_ip: String,
    pub b_ip: String,
}

pub fn link(a: &NetNs, b: &NetNs, subnet: u8) -> Link {
    let id = unique();
    let (a_dev, b_dev) = (format!("gva{id}"), format!("gvb{id}"));
    ip(&[
        "link", "add", &a_dev, "type", "veth", "peer", "name", &b_dev,
    ]);
    ip(&["link", "set", &a_dev, "netns", &a.name]);
    ip(&["link", "set", &b_dev, "netns", &b.name]);
    let (a_ip, b_ip) = (format!("10.{subnet}.0.1"), format!("10.{subnet}.0.2"));
    a.run(&["ip", "addr", "add", &format!("{a_ip}/24"), "dev", &a_dev]);
    b.run(&["ip", "addr", "add", &format!("{b_ip}/24"), "dev", &b_dev]);
    a.run(&["ip", "link", "set", &a_dev, "up"]);
    b.run(&["ip", "link", "set", &b_dev, "up"]);
    Link {
        a_dev,
        b_dev,
        a_ip,
        b_ip,
    }
}

/// Shapes egress of `dev` in `ns` to `bytes_per_sec` with a token bucket filter.
pub fn shape(ns: &NetNs, dev: &str, bytes_per_sec: u64) {
    let rate = format!("{}bit", bytes_per_sec * 8);
    // A burst of a few ms at the rate (at least 32 KiB) keeps tbf accurate without big spikes.
    let burst = format!("{}", (bytes_per_sec / 250).max(32 << 10));
    ns.run(&[
        "tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", &rate, "burst", &burst,
        "latency", "50ms",
    ]);
}

/// Drops incoming TCP or UDP packets for `port` in `ns`, as a host firewall would (nftables).
pub fn drop_port(ns: &NetNs, proto: &str, port: u16) {
    ns.run(&["nft", "add", "table", "inet", "gravity_test"]);
    ns.run(&[
        "nft",
        "add chain inet gravity_test input { type filter hook input priority 0; policy accept; }",
    ]);
    let port = port.to_string();
    ns.run(&[
        "nft",
        "add",
        "rule",
        "inet",
        "gravity_test",
        "input",
        proto,
        "dport",
        &port,
        "drop",
    ]);
}

/// A child process killed (with SIGKILL) and reaped on drop.
pub struct ChildGuard {
    pub child: Child,
}

impl ChildGuard {
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        ChildGuard { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a line of stderr contains `needle` (the child's stderr must be piped).
    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) -> String {
        let stderr: ChildStderr = self.child.stderr.take().expect("stderr is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        let wanted = needle.to_string();
        std::thread::spawn(move || {
            let mut seen = String::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(&wanted) {
                    let _ = tx.send(Ok(line));
                    // Keep draining so the child never blocks on a full pipe.
                    continue;
                }
            }
            let _ = tx.send(Err(seen));
        });
        let start = Instant::now();
        match rx.recv_timeout(timeout) {
            Ok(Ok(line)) => line,
            Ok(Err(seen)) => panic!("the child exited without printing \"{needle}\":\n{seen}"),
            Err(_) => panic!("no \"{needle}\" on stderr within {:?}", start.elapsed()),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
