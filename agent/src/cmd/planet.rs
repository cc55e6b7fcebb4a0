//! `gravity planet run|start|stop|status|enter|exec|teardown|configure`

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use crate::cli::{GlobalArgs, Output};
use crate::host::user::{DEFAULT_SERVICE_ID, SystemAccounts, ensure_service_user};
use crate::node::PlanetOptions;
use planet::{self, artifact, health, service};

#[derive(Debug, Subcommand)]
pub enum PlanetCommand {
    /// Run planet in the foreground until it stops (what the host's service runs)
    Run,
    /// Start planet (through systemd, or gravity's own daemon) and wait until it runs
    Start {
        /// How long to wait for planet's systemd to report running
        #[arg(long, default_value = "300s", value_parser = cluster_image::units::parse_duration)]
        timeout: Duration,
    },
    /// Stop planet and wait until it is torn down
    Stop {
        #[arg(long, default_value = "120s", value_parser = cluster_image::units::parse_duration)]
        timeout: Duration,
    },
    /// Show planet's state and the health of each service inside it
    Status {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
        /// Wait up to this long for planet to be healthy
        #[arg(long, value_parser = cluster_image::units::parse_duration)]
        wait: Option<Duration>,
    },
    /// Open a shell (or run a command) inside planet
    Enter {
        /// The command and its arguments (default: bash)
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Run a command inside planet; its exit code becomes gravity's
    Exec {
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Stop planet and remove what it put on this host (mounts, loop devices, cgroups,
    /// container state), keeping its data
    Teardown {
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Write planet's configuration from a manifest and a planet image (what install does):
    /// imports the image, creates the service user
    Configure(ConfigureArgs),
    /// Keep `gravity planet run` running, restarting it when it crashes (started by `start`
    /// where systemd is not PID 1)
    #[command(hide = true)]
    Daemon,
}

#[derive(Debug, clap::Args)]
pub struct ConfigureArgs {
    /// The Image Manifest (app.yaml)
    #[arg(long)]
    pub manifest: PathBuf,
    /// The directory holding planet.json and the image (a cluster image's planet/ directory,
    /// or what planet-image/build.sh prints)
    #[arg(long)]
    pub planet_dir: PathBuf,
    /// The node profile (default: the first)
    #[arg(long)]
    pub role: Option<String>,
    #[arg(long, default_value_t = DEFAULT_SERVICE_ID)]
    pub service_uid: u32,
    /// Default: the service uid
    #[arg(long)]
    pub service_gid: Option<u32>,
    /// Default: this host's name
    #[arg(long)]
    pub node_name: Option<String>,
    #[arg(long, default_value = "127.0.0.1")]
    pub advertise_ip: IpAddr,
    /// NAME:PATH: mount PATH for the volume NAME (repeatable)
    #[arg(long = "mount", value_name = "NAME:PATH", value_parser = crate::install::params::parse_mount)]
    pub mounts: Vec<(String, PathBuf)>,
}

pub fn run(global: &GlobalArgs, command: PlanetCommand) -> anyhow::Result<ExitCode> {
    let state_dir = &global.state_dir;
    match command {
        PlanetCommand::Run => {
            let code = planet::supervisor::run(state_dir)?;
            if let Some(s) = planet::status::Status::load(state_dir) {
                eprintln!(
                    "planet: {} (rootfs ready {} ms, systemd ready {} ms, stop {} ms)",
                    s.exit.map(|e| e.reason).unwrap_or_default(),
                    ms(s.timings.rootfs_ready_ms),
                    ms(s.timings.systemd_ready_ms),
                    ms(s.timings.stop_ms)
                );
            }
            Ok(ExitCode::from(code))
        }
        PlanetCommand::Daemon => Ok(ExitCode::from(service::daemon(state_dir)?)),
        PlanetCommand::Start { timeout } => {
            service::start(state_dir, timeout)?;
            let h = health::check(state_dir);
            eprint!("{}", health::render(&h));
            Ok(ExitCode::SUCCESS)
        }
        PlanetCommand::Stop { timeout } => {
            service::stop(state_dir, timeout)?;
            eprintln!("planet: stopped");
            Ok(ExitCode::SUCCESS)
        }
        PlanetCommand::Status { output, wait } => {
            let h = match wait {
                Some(t) => health::wait_healthy(state_dir, t).unwrap_or_else(|e| match e {
                    health::HealthError::Timeout { last, .. }
                    | health::HealthError::NotRunning { last } => *last,
                    health::HealthError::Apiserver { .. }
                    | health::HealthError::Node { .. }
                    | health::HealthError::Dns { .. }
                    | health::HealthError::CrashLoop { .. } => health::check(state_dir),
                }),
                None => health::check(state_dir),
            };
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&h)?),
                Output::Text => print!("{}", health::render(&h)),
            }
            Ok(if h.is_healthy() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(crate::exit::ERROR)
            })
        }
        PlanetCommand::Enter { command } => {
            let command = if command.is_empty() {
                vec!["/bin/bash".to_string(), "-l".to_string()]
            } else {
                command
            };
            Ok(ExitCode::from(planet::exec::exec(state_dir, &command)?))
        }
        PlanetCommand::Exec { command } => {
            Ok(ExitCode::from(planet::exec::exec(state_dir, &command)?))
        }
        PlanetCommand::Teardown { output } => {
            let left = planet::teardown(state_dir)?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&left)?),
                Output::Text => eprintln!("planet: torn down; left on the host: {left}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        PlanetCommand::Configure(args) => configure(global, args),
    }
}

fn ms(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

fn configure(global: &GlobalArgs, args: ConfigureArgs) -> anyhow::Result<ExitCode> {
    let manifest = cluster_image::manifest::load_resolved(&args.manifest)?;
    let profile = manifest
        .profile(args.role.as_deref())
        .with_context(|| format!("the manifest has no node profile {:?}", args.role))?;
    let system = manifest.system_options_for(&profile);
    let src = crate::node::source_for(&args.planet_dir, system.base_image.as_deref())?;
    let imported = artifact::import(&src, &global.state_dir, artifact::Source::Unverified)?;
    let gid = args.service_gid.unwrap_or(args.service_uid);
    let user = ensure_service_user(args.service_uid, gid, &SystemAccounts::host())?;
    let node_name = match args.node_name {
        Some(n) => n,
        None => nix::unistd::gethostname()?.to_string_lossy().into_owned(),
    };
    let opts = PlanetOptions {
        state_dir: global.state_dir.clone(),
        service_uid: user.uid,
        service_gid: user.gid,
        node: crate::node::NodeIdentity {
            node_name,
            advertise_ip: args.advertise_ip,
            role: profile.name.clone(),
            joined: None,
        },
        cluster_name: manifest.metadata.name.clone(),
        mounts: args.mounts,
        image: imported.path.clone(),
        image_sha256: imported.sha256.clone(),
        image_version: imported.version.clone(),
        // A bare planet: no Kubernetes (that is the install's).
        pki: None,
        status_hook: false,
    };
    let config = crate::node::planet_config(&manifest, &profile, &opts)?;
    config.save(&global.state_dir)?;
    eprintln!(
        "planet: configured {} (image {}, profile {}, service user planet {}:{})",
        crate::state_dir::StateDir::new(&global.state_dir)
            .planet()
            .config()
            .display(),
        imported.version,
        profile.name,
        user.uid,
        user.gid
    );
    Ok(ExitCode::SUCCESS)
}
