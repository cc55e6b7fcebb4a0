//! Preflight checks: whether this host can run a node profile of a cluster image, each check a
//! piece of data (id, title, status, measured, required, fix) that the agent renders as a table
//! or JSON. Host reads go through a root prefix ([`host::Host`]); host changes (modprobe,
//! sysctls, scripts) go through small traits with real and recording implementations.
//!
//! ```no_run
//! fn check(manifest: &cluster_image::Manifest) -> u8 {
//!     let profile = manifest.profile(None).expect("a manifest has at least one profile");
//!     let report = preflight::run(manifest, &profile, &preflight::Options::default());
//!     print!("{}", report.render_table());
//!     report.exit_code()
//! }
//! ```

pub mod autofix;
pub mod check;
pub mod checks;
pub mod host;
pub mod report;

#[cfg(test)]
pub(crate) mod testutil;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cluster_image::Manifest;
use cluster_image::manifest::NodeProfile;

#[cfg(any(test, feature = "test-util"))]
pub use autofix::RecordingChanger;
pub use autofix::{HostChanger, RealChanger};
pub use check::{CheckResult, Status};
pub use checks::clock::ClockThresholds;
#[cfg(any(test, feature = "test-util"))]
pub use checks::custom::RecordingRunner;
pub use checks::custom::{BashRunner, ScriptRunner};
pub use checks::disk::{RateLimits, SyncLimits, SyncThresholds};
pub use checks::network::NetworkLimits;
pub use host::Host;
pub use report::{IgnoreList, Report};

#[derive(Debug, Clone)]
pub struct Options {
    /// The host as seen through a root prefix: `/` in production.
    pub root: PathBuf,
    /// Gravity's state directory (a host path): d_type and the etcd fdatasync test run there.
    pub state_dir: PathBuf,
    /// `HOST:PORT` of peers running `gravity check --serve`.
    pub peers: Vec<String>,
    /// A running cluster's endpoints this host must reach (a joining node's).
    pub cluster_endpoints: Vec<checks::endpoints::Endpoint>,
    /// Disk write rate, fdatasync latency and network rate: off for a quick run.
    pub rate_tests: bool,
    /// Overrides every custom check's timeout (the manifest's per-check `timeout`, else 60 s).
    pub custom_timeout: Option<Duration>,
    /// Load missing modules and set sysctls before checking.
    pub autofix: bool,
    pub disk_rate: RateLimits,
    pub fdatasync: SyncLimits,
    pub fdatasync_thresholds: SyncThresholds,
    pub network: NetworkLimits,
    pub clock: ClockThresholds,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            root: PathBuf::from("/"),
            state_dir: PathBuf::from("/var/lib/gravity"),
            peers: Vec::new(),
            cluster_endpoints: Vec::new(),
            rate_tests: true,
            custom_timeout: None,
            autofix: false,
            disk_rate: RateLimits::default(),
            fdatasync: SyncLimits::default(),
            fdatasync_thresholds: SyncThresholds::default(),
            network: NetworkLimits::default(),
            clock: ClockThresholds::default(),
        }
    }
}

/// Runs every check for `profile` on the real host: bash for custom checks, modprobe and
/// `/proc/sys` writes for `--autofix`.
pub fn run(manifest: &Manifest, profile: &NodeProfile, opts: &Options) -> Report {
    let host = Host::with_root(&opts.root);
    let mut changer = RealChanger::new(host);
    run_with(
        manifest,
        profile,
        opts,
        &BashRunner::default(),
        &mut changer,
    )
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let r = f();
    tracing::debug!(elapsed = ?start.elapsed(), "{what}");
    r
}

/// [`run`] with the effects given: tests pass recording fakes.
pub fn run_with(
    manifest: &Manifest,
    profile: &NodeProfile,
    opts: &Options,
    scripts: &dyn ScriptRunner,
    changer: &mut dyn HostChanger,
) -> Report {
    let host = Host::with_root(&opts.root);
    let req = profile.requirements();
    let mut report = Report {
        subject: report::Subject {
            profile: profile.name.clone(),
            cluster: Some(manifest.metadata.name.clone()),
            version: Some(manifest.metadata.resource_version.clone()),
            hostname: host.read_opt("/proc/sys/kernel/hostname").ok().flatten(),
        },
        ..Report::default()
    };
    if opts.autofix {
        report.autofix = timed("autofix", || {
            autofix::autofix(&host, changer, manifest.network_type())
        });
        for c in &report.autofix {
            match &c.error {
                None => tracing::info!("autofix: {}", c.what),
                Some(e) => tracing::warn!("autofix: {} failed: {e}", c.what),
            }
        }
    }
    let checks = &mut report.checks;
    if let Some(cpu) = &req.cpu {
        checks.push(checks::cpu_ram::check_cpu(&host, cpu));
    }
    if let Some(ram) = &req.ram {
        checks.push(checks::cpu_ram::check_ram(&host, ram));
    }
    if !req.os.is_empty() {
        checks.push(checks::os::check_os(&host, &req.os));
    }
    let vctx = checks::volumes::VolumeCtx {
        host: &host,
        rate_limits: opts.rate_tests.then_some(&opts.disk_rate),
    };
    for v in &req.volumes {
        checks.extend(timed("volume", || checks::volumes::check_volume(&vctx, v)));
    }
    for d in &req.devices {
        checks.push(checks::devices::check_device(&host, d));
    }
    if let Some(net) = &req.network {
        checks.extend(timed("ports", || {
            checks::ports::check_ports(&host, &net.ports)
        }));
    }
    for m in checks::kernel::modules_for(manifest.network_type()) {
        checks.push(checks::kernel::check_module(&host, m));
    }
    for s in checks::kernel::SYSCTLS {
        checks.push(checks::kernel::check_sysctl(&host, s));
    }
    checks.push(checks::kernel::check_cgroups(&host));
    checks.push(checks::kernel::check_swap(&host));
    checks.push(timed("d_type", || {
        checks::disk::check_d_type(&host, &opts.state_dir)
    }));
    checks.push(timed("fdatasync", || {
        checks::disk::check_fdatasync(
            &host,
            &opts.state_dir,
            opts.rate_tests.then_some(&opts.fdatasync),
            &opts.fdatasync_thresholds,
        )
    }));
    for (i, c) in req.custom_checks.iter().enumerate() {
        checks.push(checks::custom::check_custom(
            scripts,
            i + 1,
            c,
            opts.custom_timeout,
        ));
    }
    if opts.peers.is_empty()
        && let Some(r) = req.network.as_ref().and_then(checks::network::no_peers)
    {
        checks.push(r);
    }
    checks.extend(checks::endpoints::check_endpoints(
        &opts.cluster_endpoints,
        checks::endpoints::TIMEOUT,
    ));
    for peer in &opts.peers {
        match timed("peer", || {
            checks::network::check_peer(
                peer,
                req.network.as_ref(),
                &opts.network,
                &opts.clock,
                opts.rate_tests,
            )
        }) {
            Ok(r) => checks.extend(r),
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    for c in &report.checks {
        tracing::debug!(id = %c.id, status = ?c.status, measured = ?c.measured, required = ?c.required, "check");
    }
    report
}
