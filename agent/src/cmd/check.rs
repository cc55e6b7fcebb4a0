//! `gravity check`: preflight checks of this host for a node profile, and `--serve`, the peer
//! endpoint other hosts measure the network against.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, bail};
use cluster_image::layout;
use cluster_image::manifest::{Manifest, Offline, load_file};

use crate::cli::{GlobalArgs, Output};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 all checks passed, 3 a check failed, 4 only warnings, \
1 a check could not run (e.g. a peer is unreachable), 2 the command line or manifest is wrong.\n\n\
Across hosts: run `gravity check --serve ADDR:PORT` on one host, then \
`gravity check --peers ADDR:PORT` on another."
)]
pub struct Args {
    /// What to check against: a manifest (app.yaml), an unpacked cluster image or a tarball
    /// (the same as --manifest or --image)
    #[arg(value_name = "PATH", conflicts_with_all = ["manifest", "image"])]
    pub target: Option<PathBuf>,
    /// The node profile to check (default: the manifest's first profile)
    #[arg(long)]
    pub role: Option<String>,
    /// Check against a plain manifest file instead of a cluster image
    #[arg(long, value_name = "APP_YAML", conflicts_with = "image")]
    pub manifest: Option<PathBuf>,
    /// The cluster image, a tarball or unpacked directory (default: the one gravity runs from,
    /// else ./app.yaml)
    #[arg(long, value_name = "PATH")]
    pub image: Option<PathBuf>,
    /// `text`: a table, failures first; `json`: the report for machines
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Report these failed checks as warnings: check ids (`ram`, `port:tcp/8080`; a trailing `*`
    /// matches by prefix, e.g. `volume:/var/lib/data:*`), or `all`
    #[arg(long, value_delimiter = ',', value_name = "ID,...|all")]
    pub ignore_preflight_errors: Vec<String>,
    /// Load missing kernel modules and set the sysctls Kubernetes needs, persisting them in
    /// /etc/modules-load.d and /etc/sysctl.d, then check
    #[arg(long)]
    pub autofix: bool,
    /// Also check the network to these hosts, each running `gravity check --serve`
    #[arg(long, value_delimiter = ',', value_name = "HOST:PORT,...")]
    pub peers: Vec<String>,
    /// Serve the peer checks on HOST:PORT for other hosts' `--peers` instead of checking
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["peers", "autofix", "manifest", "image", "role", "target"])]
    pub serve: Option<String>,
    /// With --serve: stop after this long without a client
    #[arg(long, value_parser = cluster_image::units::parse_duration, default_value = "30m", value_name = "DURATION")]
    pub serve_idle_timeout: Duration,
    /// Skip the disk write rate, fdatasync and network rate measurements (faster, less thorough)
    #[arg(long)]
    pub skip_rate_tests: bool,
    /// Time limit for each custom check script, overriding the manifest's `timeout` (default 60s)
    #[arg(long, value_parser = cluster_image::units::parse_duration, value_name = "DURATION")]
    pub custom_check_timeout: Option<Duration>,
}

/// The manifest to check and the directory its custom check scripts run in.
struct Subject {
    manifest: Manifest,
    dir: PathBuf,
}

fn load_plain(path: &Path) -> anyhow::Result<Subject> {
    let loaded = load_file(path, &Offline)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    Ok(Subject {
        manifest: loaded.manifest,
        dir,
    })
}

fn subject(global: &GlobalArgs, args: &Args) -> anyhow::Result<Subject> {
    if let Some(t) = &args.target {
        // A file that is not a tarball is a manifest; a directory or a tarball is an image.
        let is_manifest = t.is_file()
            && t.extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json");
        if is_manifest {
            return load_plain(t);
        }
        let img = crate::source::open(Some(t), &global.state_dir)?;
        return Ok(Subject {
            manifest: img.manifest,
            dir: img.dir,
        });
    }
    if let Some(m) = &args.manifest {
        return load_plain(m);
    }
    if args.image.is_some() {
        let img = crate::source::open(args.image.as_deref(), &global.state_dir)?;
        return Ok(Subject {
            manifest: img.manifest,
            dir: img.dir,
        });
    }
    let own = crate::source::own_dir()?;
    if own.join(layout::INDEX).exists() {
        let img = crate::source::open(None, &global.state_dir)?;
        return Ok(Subject {
            manifest: img.manifest,
            dir: img.dir,
        });
    }
    // Not inside an unpacked image: a vendor trying a manifest next to a gravity binary.
    let cwd = std::env::current_dir().context("cannot find the current directory")?;
    for dir in [&cwd, &own] {
        let candidate = dir.join(layout::MANIFEST);
        if candidate.is_file() {
            tracing::info!(manifest = %candidate.display(), "not in an unpacked cluster image: checking the manifest here");
            return load_plain(&candidate);
        }
    }
    bail!(
        "{} is not an unpacked cluster image and there is no {} in {}: pass --manifest app.yaml or --image PATH",
        own.display(),
        layout::MANIFEST,
        cwd.display()
    )
}

fn serve(addr: &str, idle: Duration) -> anyhow::Result<ExitCode> {
    let server = rpc::peer::Server::bind(addr)?;
    eprintln!(
        "serving gravity check peers on {} (stops after {} s without a client; Ctrl-C to stop)",
        server.local_addr(),
        idle.as_secs()
    );
    tracing::info!(addr = %server.local_addr(), "peer endpoint up");
    // Runs until the idle timeout or a signal ends the process; nothing needs cleaning up.
    server.serve(&AtomicBool::new(false), Some(idle));
    Ok(ExitCode::SUCCESS)
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<ExitCode> {
    if let Some(addr) = &args.serve {
        return serve(addr, args.serve_idle_timeout);
    }
    let subject = subject(global, &args)?;
    let manifest = &subject.manifest;
    let Some(profile) = manifest.profile(args.role.as_deref()) else {
        let names: Vec<String> = manifest.profiles().iter().map(|p| p.name.clone()).collect();
        eprintln!(
            "error: the manifest has no node profile \"{}\": use --role with one of {}",
            args.role.as_deref().unwrap_or_default(),
            names.join(", ")
        );
        return Ok(ExitCode::from(crate::exit::USAGE));
    };
    let opts = preflight::Options {
        state_dir: global.state_dir.clone(),
        peers: args.peers.clone(),
        rate_tests: !args.skip_rate_tests,
        custom_timeout: args.custom_check_timeout,
        autofix: args.autofix,
        ..preflight::Options::default()
    };
    let mut report = crate::node::run_checks(manifest, &profile, &opts, &subject.dir);
    report.apply_ignores(&preflight::IgnoreList::from_entries(
        &args.ignore_preflight_errors,
    ));
    match args.output {
        Output::Json => println!("{}", report.to_json()),
        Output::Text => print!("{}", report.render_table()),
    }
    let code = report.exit_code();
    tracing::info!(code, summary = ?report.summary(), "preflight checks done");
    Ok(ExitCode::from(code))
}
