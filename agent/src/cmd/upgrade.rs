//! `gravity upgrade` (the image's `./upgrade`): the newer cluster image over this node, or
//! `--resume` of an interrupted upgrade. Says what will change and asks first.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::cli::GlobalArgs;
use crate::install::params::check_state_dir;
use crate::install::progress::Progress;
use crate::install::{InstallParams, prompt, values};
use crate::source::ClusterImage;
use crate::state_dir::StateDir;
use crate::upgrade::{self, Installed, UpgradeParams, versions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The newer cluster image: a tarball (plain or zstd) or an unpacked directory (default: the
    /// image this gravity runs from)
    #[arg(long, value_name = "PATH")]
    pub image: Option<PathBuf>,
    /// Helm values files for the update hooks, merged in order (repeatable); with neither
    /// --values nor --set the installed values stay
    #[arg(long, value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// Helm values on the command line: key.path=value (repeatable)
    #[arg(long, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Preflight check ids whose failure only warns, comma-separated, or `all`
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub ignore_preflight_errors: Vec<String>,
    /// Do not ask for confirmation (required without a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Continue an interrupted upgrade where it stopped
    #[arg(long)]
    pub resume: bool,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    check_state_dir(&global.state_dir).map_err(anyhow::Error::msg)?;
    if !nix::unistd::geteuid().is_root() {
        bail!("gravity upgrade restarts planet and changes its files: run it as root");
    }
    let start = if args.resume {
        upgrade::Start::Resume
    } else {
        let (params, image) = new_params(global, &args)?;
        eprint!("{}", describe(&params, &image));
        let interactive = prompt::interactive(args.yes);
        if !args.yes {
            if !interactive {
                bail!("nothing was changed: pass --yes to upgrade without a terminal");
            }
            if !prompt::ask("Upgrade? [y/N] ")? {
                bail!("nothing was changed");
            }
        }
        upgrade::Start::New(Box::new(params), Box::new(image))
    };
    let mut progress = Progress::new(upgrade::phases().len(), "done");
    let effects = crate::effects::Effects::host();
    let (ctx, _plan) = upgrade::run(start, &global.state_dir, effects, &mut progress)?;
    let m = ctx.node.manifest();
    eprintln!();
    eprintln!(
        "{} {} runs on {} (upgraded from {} in {:.1}s); the configuration before it: {}",
        m.metadata.name,
        m.metadata.resource_version,
        ctx.node.params.node.node_name,
        ctx.from.version,
        started.elapsed().as_secs_f64(),
        ctx.node.layout.upgrade_previous().display()
    );
    crate::cmd::install::print_endpoints(m, &global.state_dir, ctx.node.params.node.advertise_ip);
    Ok(ExitCode::SUCCESS)
}

fn new_params(global: &GlobalArgs, args: &Args) -> anyhow::Result<(UpgradeParams, ClusterImage)> {
    let layout = StateDir::new(&global.state_dir);
    let from = upgrade::installed(&layout)?;
    let image = crate::source::open(args.image.as_deref(), &global.state_dir)?;
    let m = &image.manifest;
    let record = crate::install::state::ClusterRecord::load(&layout)?
        .context("no cluster is installed here")?;
    versions::check_cluster(
        &record.name,
        &from.version,
        &m.metadata.name,
        &m.metadata.resource_version,
    )?;
    let role = &from.params.node.role;
    if m.profile(Some(role)).is_none() {
        bail!("the new image has no node profile `{role}`, which this node runs");
    }
    values::check(&args.values, &args.set)?;
    let given = !args.values.is_empty() || !args.set.is_empty();
    let files = args
        .values
        .iter()
        .map(|p| {
            p.canonicalize()
                .with_context(|| format!("cannot read {}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut ignore = from.params.ignore_preflight_errors.clone();
    ignore.extend(args.ignore_preflight_errors.iter().cloned());
    let node = InstallParams {
        image_dir: image.dir.canonicalize()?,
        values: files,
        set: if given {
            args.set.clone()
        } else {
            from.params.set.clone()
        },
        ignore_preflight_errors: ignore,
        ..from.params.clone()
    };
    let version = m.metadata.resource_version.clone();
    Ok((
        UpgradeParams {
            from,
            node,
            version,
        },
        image,
    ))
}

/// What the upgrade will change, for the person to confirm.
fn describe(params: &UpgradeParams, image: &ClusterImage) -> String {
    let Installed {
        version,
        planet_version,
        ..
    } = &params.from;
    let m = &image.manifest;
    let mut out = format!(
        "upgrade {} {version} -> {} on {}:\n",
        m.metadata.name, m.metadata.resource_version, params.node.node.node_name
    );
    let new_planet = m
        .profile(Some(&params.node.node.role))
        .and_then(|p| upgrade::planet_dir(image, &p).ok());
    let meta = new_planet.as_ref().and_then(|dir| {
        planet::artifact::ImageMeta::load(&dir.join(planet::artifact::META_FILE)).ok()
    });
    if let (Some(dir), Some(meta)) = (&new_planet, &meta) {
        let change = if &meta.version == planet_version {
            format!("{planet_version} (unchanged)")
        } else {
            format!("{planet_version} -> {}", meta.version)
        };
        out += &format!("  planet image: {change}\n");
        let installed = StateDir::new(&params.node.state_dir)
            .planet()
            .images()
            .join(planet_version);
        let (old, new) = (upgrade::components(&installed), upgrade::components(dir));
        for (key, name) in [("kubernetes", "Kubernetes"), ("etcd", "etcd")] {
            match (old.get(key), new.get(key)) {
                (Some(from), Some(to)) if from != to => {
                    out += &format!("  {name}: {from} -> {to}\n");
                }
                (Some(_), Some(to)) => out += &format!("  {name}: {to} (unchanged)\n"),
                (None, Some(to)) => out += &format!("  {name}: {to}\n"),
                (_, None) => {}
            }
        }
    }
    let refs = vendored(image);
    if !refs.is_empty() {
        out += &format!("  images to push: {}\n", refs.join(", "));
    }
    out += if upgrade::params::keeps_installed_values(&params.node, &params.from.params) {
        "  Helm values: the installed ones\n"
    } else {
        "  Helm values: the ones given here\n"
    };
    out += "  then: drain, restart on the new version, health gate, update hooks (a failure rolls back)\n";
    out
}

/// The references of the images the cluster image vendors.
fn vendored(image: &ClusterImage) -> Vec<String> {
    let index = image
        .path(cluster_image::layout::REGISTRY_DIR)
        .join("index.json");
    let Ok(bytes) = std::fs::read(index) else {
        return Vec::new();
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    value["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            d["annotations"][registry::store::REF_NAME]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}
