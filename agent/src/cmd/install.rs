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
    /// The uid of the `planet` service user (created when missing) [default: 1000]
    #[arg(long, value_name = "UID")]
    pub service_uid: Option<u32>,
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
    /// Continue an interrupted or failed install where it stopped, with the flags it was started
    /// with: the original command plus --resume works; a flag that differs from the recorded one
    /// is refused, and --ignore-preflight-errors may add ids
    #[arg(long)]
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
        refuse_changed_flags(global, &args)?;
        install::Start::Resume {
            ignore_preflight_errors: args.ignore_preflight_errors.clone(),
        }
    } else {
        let (params, image) = new_params(global, &args)?;
        install::Start::New(Box::new(params), Box::new(image))
    };
    let mut progress = Progress::new(install::phases().len(), "done");
    let effects = crate::effects::Effects::host();
    let (ctx, plan) = install::run(start, &global.state_dir, effects, &mut progress).map_err(|e| {
        // Only a journaled install can be resumed; before that the error says what to do.
        match operation::Journal::new(&global.state_dir).load() {
            Ok(Some(_)) => e.context(format!(
                "the install stopped; fix the cause and run `gravity install --resume` (state in {})",
                global.state_dir.display()
            )),
            _ => e,
        }
    })?;
    summary(&ctx, &plan, started.elapsed());
    Ok(ExitCode::SUCCESS)
}

const DEFAULT_SERVICE_UID: u32 = 1000;

/// `--resume` continues with the journaled parameters: the flags of the original command may be
/// repeated, but one that asks for something else is refused, naming each difference.
fn refuse_changed_flags(global: &GlobalArgs, args: &Args) -> anyhow::Result<()> {
    let Some(plan) = operation::Journal::new(&global.state_dir).load()? else {
        return Ok(()); // install::run says there is nothing to resume
    };
    if plan.kind != install::KIND {
        return Ok(());
    }
    let recorded: InstallParams = serde_json::from_value(plan.params)
        .context("the journaled install parameters are unreadable")?;
    let differences = changed_flags(args, &recorded, &global.state_dir);
    if differences.is_empty() {
        return Ok(());
    }
    bail!(
        "--resume continues the install with the flags it was started with, and these differ:\n  {}\nrepeat the original flags or leave them out; to install with other flags, undo this install first with `gravity plan rollback`",
        differences.join("\n  ")
    )
}

/// Each flag given to a resume that differs from the recorded install: `--flag X (the install
/// was started with Y)`.
fn changed_flags(
    args: &Args,
    recorded: &InstallParams,
    state_dir: &std::path::Path,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut differs = |flag: &str, given: String, was: String| {
        if given != was {
            out.push(format!(
                "--{flag} {given} (the install was started with {was})"
            ));
        }
    };
    if let Some(image) = &args.image {
        // A tarball is unpacked into the state directory: compare where it would go.
        let dir = if image.is_file() {
            crate::source::unpack_target(image, state_dir)
        } else {
            image.canonicalize().unwrap_or_else(|_| image.clone())
        };
        differs(
            "image",
            dir.display().to_string(),
            recorded.image_dir.display().to_string(),
        );
    }
    if let Some(uid) = args.service_uid {
        differs(
            "service-uid",
            uid.to_string(),
            recorded.service_uid.to_string(),
        );
    }
    if let Some(gid) = args.service_gid {
        differs(
            "service-gid",
            gid.to_string(),
            recorded.service_gid.to_string(),
        );
    }
    if let Some(role) = &args.role {
        differs("role", role.clone(), recorded.node.role.clone());
    }
    if let Some(flavor) = &args.flavor {
        differs("flavor", flavor.clone(), recorded.flavor.clone());
    }
    if let Some(ip) = args.advertise_addr {
        differs(
            "advertise-addr",
            ip.to_string(),
            recorded.node.advertise_ip.to_string(),
        );
    }
    if let Some(name) = &args.node_name {
        differs("node-name", name.clone(), recorded.node.node_name.clone());
    }
    let list = |v: &mut dyn Iterator<Item = String>| v.collect::<Vec<_>>().join(",");
    if !args.mounts.is_empty() {
        let show = |m: &[(String, PathBuf)]| {
            list(&mut m.iter().map(|(n, p)| format!("{n}:{}", p.display())))
        };
        differs("mount", show(&args.mounts), show(&recorded.mounts));
    }
    if !args.values.is_empty() {
        let given = list(&mut args.values.iter().map(|p| {
            p.canonicalize()
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string()
        }));
        differs(
            "values",
            given,
            list(&mut recorded.values.iter().map(|p| p.display().to_string())),
        );
    }
    if !args.set.is_empty() {
        differs("set", args.set.join(","), recorded.set.join(","));
    }
    out
}

fn new_params(
    global: &GlobalArgs,
    args: &Args,
) -> anyhow::Result<(InstallParams, crate::source::ClusterImage)> {
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
    values::check(&args.values, &args.set)?;
    let values = args
        .values
        .iter()
        .map(|p| {
            p.canonicalize()
                .with_context(|| format!("cannot read {}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let params = InstallParams {
        image_dir: image.dir.canonicalize()?,
        state_dir: global.state_dir.clone(),
        service_uid: args.service_uid.unwrap_or(DEFAULT_SERVICE_UID),
        service_gid: args
            .service_gid
            .or(args.service_uid)
            .unwrap_or(DEFAULT_SERVICE_UID),
        node: crate::node::NodeIdentity {
            node_name: args.node_name.clone().unwrap_or_else(network::hostname),
            advertise_ip,
            role,
            joined: None,
        },
        flavor,
        mounts: args.mounts.clone(),
        ignore_preflight_errors: args.ignore_preflight_errors.clone(),
        values,
        set: args.set.clone(),
    };
    Ok((params, image))
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
        p.node.node_name,
        p.node.advertise_ip,
        took.as_secs_f64(),
        phases_took as f64 / 1000.0
    );
    eprintln!("  planet is running, supervised by {supervisor}");
    print_endpoints(m, &p.state_dir, p.node.advertise_ip);
    eprintln!("  status:     gravity status");
    eprintln!("  uninstall:  gravity uninstall");
    eprintln!("  log:        {}", ctx.layout.logs().display());
}

/// The manifest's endpoints (not the hidden ones), resolved against the cluster's Services.
pub(crate) fn print_endpoints(
    m: &cluster_image::Manifest,
    state_dir: &std::path::Path,
    advertise_ip: IpAddr,
) {
    if m.endpoints.iter().any(|e| !e.hidden) {
        eprintln!("  endpoints:");
        let services = planet::Planet::load(state_dir)
            .map_err(std::io::Error::other)
            .and_then(|planet| {
                planet.kubectl(&["get", "services", "--all-namespaces", "-o", "json"])
            })
            .and_then(|json| serde_json::from_str(&json).map_err(std::io::Error::other))
            .unwrap_or_else(|e| {
                eprintln!("    (cannot list the cluster's services: {e})");
                serde_json::Value::Null
            });
        for e in crate::node::endpoints::resolve(&m.endpoints, &services, advertise_ip) {
            let at = match e.urls {
                Ok(urls) => urls.join(" "),
                Err(why) => format!("not reachable yet: {why}"),
            };
            eprintln!(
                "    {}: {at}{}",
                e.name,
                e.description
                    .map(|d| format!("  ({d})"))
                    .unwrap_or_default()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn recorded() -> InstallParams {
        InstallParams {
            image_dir: PathBuf::from("/nonexistent/image"),
            state_dir: PathBuf::from("/var/lib/gravity"),
            service_uid: 1001,
            service_gid: 1001,
            node: crate::node::NodeIdentity {
                node_name: "n1".into(),
                advertise_ip: "10.0.0.5".parse().unwrap(),
                role: "node".into(),
                joined: None,
            },
            flavor: "one".into(),
            mounts: vec![],
            ignore_preflight_errors: vec![],
            values: vec![],
            set: vec!["a=1".into()],
        }
    }

    fn changed(argv: &[&str]) -> Vec<String> {
        let cli = Cli::try_parse_from([&["install"], argv].concat()).unwrap();
        changed_flags(
            &cli.args,
            &recorded(),
            std::path::Path::new("/var/lib/gravity"),
        )
    }

    #[test]
    fn resume_accepts_the_original_flags_and_names_each_changed_one() {
        assert!(changed(&["--resume", "--service-uid=1001", "--set", "a=1", "--yes"]).is_empty());
        assert!(changed(&["--resume", "--role", "node", "--node-name", "n1"]).is_empty());
        assert_eq!(
            changed(&[
                "--resume",
                "--service-uid=1002",
                "--advertise-addr",
                "10.0.0.6"
            ]),
            [
                "--service-uid 1002 (the install was started with 1001)",
                "--advertise-addr 10.0.0.6 (the install was started with 10.0.0.5)",
            ]
        );
        assert_eq!(
            changed(&["--resume", "--image", "/nonexistent/other"]),
            ["--image /nonexistent/other (the install was started with /nonexistent/image)"]
        );
    }
}
