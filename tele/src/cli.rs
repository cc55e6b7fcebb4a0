//! The `tele` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tele",
    version,
    about = "Builds Kubernetes cluster images from an Image Manifest",
    propagate_version = true,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Show debug output
    #[arg(long, short = 'd', global = true)]
    pub debug: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a cluster image tarball from an Image Manifest
    Build(Box<BuildArgs>),
    /// Print shell completions
    Completions {
        /// The shell to print completions for
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The Image Manifest
    #[arg(default_value = "app.yaml")]
    pub manifest: PathBuf,
    /// The tarball to write: NAME.tar, or NAME.tar.zst for zstd (default: <name>-<version>.tar)
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// Where tele caches what it downloads between builds
    #[arg(long, env = "TELE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// The gravity binary to ship (default: the one next to this tele)
    #[arg(long, value_name = "FILE")]
    pub gravity: Option<PathBuf>,
    /// The planet image directory (holding planet.json), as printed by planet-image/build.sh
    #[arg(long, value_name = "DIR", env = "TELE_PLANET")]
    pub planet: Option<PathBuf>,
    /// A custom planet image for the node profiles whose `systemOptions.baseImage` is REF
    /// (NAME:VERSION): the directory planet-image/build.sh printed; repeatable
    #[arg(long = "planet-image", value_name = "REF=DIR", value_parser = parse_planet_image)]
    pub planet_images: Vec<(String, PathBuf)>,
    /// Helm values files for rendering the charts (which images are vendored); repeatable,
    /// later files win, as with helm
    #[arg(long = "values", value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// A Helm value for rendering the charts (helm's --set syntax: a.b=c,d[0]=e); repeatable
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// The helm that renders the charts (default: helm in PATH)
    #[arg(long, value_name = "FILE", env = "TELE_HELM")]
    pub helm: Option<PathBuf>,
    /// Pull from this registry (HOST[:PORT]) over plain HTTP instead of HTTPS; repeatable
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// Take images from here before asking their registry: an OCI image layout directory whose
    /// index names images by full reference, or a `docker save` tarball; repeatable
    #[arg(long = "image-source", value_name = "PATH")]
    pub image_sources: Vec<PathBuf>,
    /// The platform vendored from multi-platform images (default: linux and this machine's
    /// architecture)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// zstd level for .tar.zst output (1-19)
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub zstd_level: i32,
    /// Print nothing but errors
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

fn parse_planet_image(s: &str) -> Result<(String, PathBuf), String> {
    let (reference, dir) = s
        .split_once('=')
        .filter(|(r, d)| !r.is_empty() && !d.is_empty())
        .ok_or_else(|| format!("expected REF=DIR (custom-planet:1.0.0=./planet-out), got `{s}`"))?;
    if cluster_image::layout::custom_planet_dir(reference).is_none() {
        return Err(format!(
            "`{reference}` is not a planet image reference: write NAME:VERSION, e.g. custom-planet:1.0.0"
        ));
    }
    Ok((reference.to_string(), PathBuf::from(dir)))
}
