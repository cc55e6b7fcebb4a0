//! `gravity install`: the whole single-node install, or `--resume` of an interrupted one.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::cli::GlobalArgs;
use crate::install::params::{InstallParams, check_state_dir, parse_mount};
use crate::install::progress::Progress;
use crate::install::{self, network, prompt, values};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The cluster image: a tarball (plain or zstd) or an unpacked directory (default: the image
    /// this gravity runs from)
    #[arg(long, value_name = "PATH")]
    pub image: Option<PathBuf>,
    /// The uid of the `planet` service user (created when missing)
    #[arg(long, default_value_t = 1000, value_name = "UID")]
    pub service_uid: u32,
    /// The gid of the `planet` group (default: the same number as --service-uid)
    #[arg(long, value_name = "GID")]
    pub service_gid: Option<u32>,
    /// The node profile of this host (default: the first profile of the flavor)
    #[arg(long)]
    pub role: Option<String>,
    /// The cluster flavor (default: the manifest's default flavor; asked on a terminal)
    #[arg(long)]
    pub flavor: Option<String>,
    /// The address other nodes reach this one at (default: the address of the default route)
    #[arg(long, value_name = "IP")]
    pub advertise_addr: Option<IpAddr>,
    /// This node's name in the cluster (default: the hostname)
    #[arg(long)]
    pub node_name: Option<String>,
    /// Mount a host path for a profile volume instead of its default: NAME:PATH (repeatable)
    #[arg(long = "mount", value_name = "NAME:PATH", value_parser = parse_mount)]
    pub mounts: Vec<(String, PathBuf)>,
    /// Preflight check ids whose failure only warns, comma-separated, or `all`; a `sysctl:` or
    /// `module:` id given here is also left as it is by the install
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub ignore_preflight_errors: Vec<String>,
    /// Helm values files for the install hooks, merged in order (repeatable)
    #[arg(long, value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// Helm values on the command line: key.path=value (repeatable)
    #[arg(long, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Accept the image's end user license agreement without a prompt
    #[arg(long)]
    pub accept_eula: bool,
    /// Never prompt: take defaults (the EULA still needs --accept-eula)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Continue an interrupted or failed install where it stopped (with the flags it was
    /// started with; only --ignore-preflight-errors may be added)
    #[arg(long, conflicts_with_all = ["image", "service_uid", "service_gid", "role", "flavor", "advertise_addr", "node_name", "mounts", "values", "set"])]
    pub resume: bool,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    check_state_dir(&global.state_dir).map_err(anyhow::Error::msg)?;
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "gravity install changes the host (users, mounts, services): run it as root, e.g. `sudo ./gravity install`"
        );
    }
    let start = if args.resume {
        install::Start::Resume {
            ignore_preflight_errors: args.ignore_preflight_errors.clone(),
        }
    } else {
        install::Start::New(Box::new(new_params(global, &args)?))
    };
    let mut progress = Progress::new(install::phases().len(), "done");
    let (ctx, plan) = install::run(start, &global.state_dir, &mut progress).map_err(|e| {
        e.context(format!(
            "the install stopped; fix the cause and run `gravity install --resume` (state in {})",
            global.state_dir.display()
        ))
    })?;
    summary(&ctx, &plan, started.elapsed());
    Ok(ExitCode::SUCCESS)
}

fn new_params(global: &GlobalArgs, args: &Args) -> anyhow::Result<InstallParams> {
    let image = crate::source::open(args.image.as_deref(), &global.state_dir)?;
    let manifest = &image.manifest;
    let interactive = prompt::interactive(args.yes);
    prompt::eula(manifest, args.accept_eula, interactive)?;
    let flavor = prompt::flavor(manifest, args.flavor.as_deref(), interactive)?;
    let role = match &args.role {
        Some(r) => r.clone(),
        None => manifest
            .flavors()
            .iter()
            .find(|f| f.name == flavor)
            .and_then(|f| f.nodes.first())
            .map(|n| n.profile.clone())
            .unwrap_or_else(|| manifest.profiles()[0].name.clone()),
    };
    if manifest.profile(Some(&role)).is_none() {
        let names: Vec<String> = manifest.profiles().iter().map(|p| p.name.clone()).collect();
        bail!(
            "--role {role}: the image has no such node profile (it has: {})",
            names.join(", ")
        );
    }
    let advertise_ip = match args.advertise_addr {
        Some(ip) => ip,
        None => network::default_route_address()
            .context("cannot find this host's address (no default route): pass --advertise-addr")?,
    };
    // Catch bad --values/--set now rather than halfway through the install.
    values::merge(&args.values, &args.set)?;
    let values = args
        .values
        .iter()
        .map(|p| {
            p.canonicalize()
                .with_context(|| format!("cannot read {}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(InstallParams {
        image_dir: image.dir.canonicalize()?,
        state_dir: global.state_dir.clone(),
        service_uid: args.service_uid,
        service_gid: args.service_gid.unwrap_or(args.service_uid),
        role,
        flavor,
        node_name: args.node_name.clone().unwrap_or_else(network::hostname),
        advertise_ip,
        mounts: args.mounts.clone(),
        ignore_preflight_errors: args.ignore_preflight_errors.clone(),
        values,
        set: args.set.clone(),
    })
}

fn summary(ctx: &install::Ctx, plan: &operation::Plan, took: std::time::Duration) {
    let m = ctx.manifest();
    let p = &ctx.params;
    let supervisor = if systemd::is_pid1() {
        format!("systemd ({})", systemd::units::PLANET_UNIT)
    } else {
        "gravity (no systemd on this host)".to_string()
    };
    let phases_took: u64 = plan.phases.iter().filter_map(|ph| ph.duration_ms()).sum();
    eprintln!();
    eprintln!(
        "{} {} is installed on {} ({}) in {:.1}s ({:.1}s in phases).",
        m.metadata.name,
        m.metadata.resource_version,
        p.node_name,
        p.advertise_ip,
        took.as_secs_f64(),
        phases_took as f64 / 1000.0
    );
    eprintln!("  planet is running, supervised by {supervisor}");
    let visible: Vec<_> = m.endpoints.iter().filter(|e| !e.hidden).collect();
    if !visible.is_empty() {
        eprintln!("  endpoints:");
        for e in visible {
            let url = match (e.port, &e.service_name) {
                (Some(port), _) => format!(
                    "{}://{}:{port}",
                    e.protocol.as_deref().unwrap_or("http"),
                    p.advertise_ip
                ),
                (None, Some(service)) => format!("Kubernetes service `{service}`"),
                (None, None) => "selected by labels".to_string(),
            };
            eprintln!(
                "    {}: {url}{}",
                e.name,
                e.description
                    .as_ref()
                    .map(|d| format!("  ({d})"))
                    .unwrap_or_default()
            );
        }
    }
    eprintln!("  status:     gravity status");
    eprintln!("  uninstall:  gravity uninstall");
    eprintln!("  log:        {}", p.state_dir.join("logs").display());
}
