//! `gravity join ADDR --token=... --ca-hash=...`: this host joins the cluster whose first node
//! answers at ADDR (the command `gravity status` prints there).

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;

use crate::cli::GlobalArgs;
use crate::install::progress::Progress;
use crate::join::plan::{self, JoinParams, Start};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The first node's address (its advertise address, as `gravity status` prints it)
    #[arg(required_unless_present = "resume")]
    pub addr: Option<String>,
    /// The join token (`gravity token create` on the first node)
    #[arg(long, env = "GRAVITY_JOIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The cluster CA's hash, `sha256:...`: the first node is trusted only if it matches
    #[arg(long, required_unless_present = "resume")]
    pub ca_hash: Option<String>,
    /// The node profile this host runs (default: the installed flavor's next missing profile,
    /// else the first node's). The cluster's first three
    /// nodes run the control plane, later ones are workers, unless the profile's label
    /// gravitational.io/k8s-role pins it (master or node)
    #[arg(long)]
    pub role: Option<String>,
    /// The address other nodes reach this host at (default: the one on the route to the first
    /// node)
    #[arg(long)]
    pub advertise_addr: Option<IpAddr>,
    /// This node's name in the cluster (default: the host's name)
    #[arg(long)]
    pub node_name: Option<String>,
    /// Preflight checks whose failure does not stop the join (comma-separated ids, or `all`)
    #[arg(long, value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,
    /// Put a volume of the node's profile at another host path (NAME:PATH), as on install
    #[arg(long = "mount", value_name = "NAME:PATH", value_parser = crate::install::params::parse_mount)]
    pub mounts: Vec<(String, std::path::PathBuf)>,
    /// Continue an interrupted join
    #[arg(long)]
    pub resume: bool,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<ExitCode> {
    if !nix::unistd::geteuid().is_root() {
        bail!("gravity join changes the host: run it as root");
    }
    let started = Instant::now();
    let start = if args.resume {
        Start::Resume
    } else {
        let (Some(addr), Some(ca_hash)) = (args.addr.clone(), args.ca_hash.clone()) else {
            bail!(
                "give the first node's address and --ca-hash, as `gravity status` prints them there"
            );
        };
        if args.token.is_none() {
            bail!("give the join token: --token=... (or GRAVITY_JOIN_TOKEN)");
        }
        let node_name = match args.node_name.clone() {
            Some(n) => n,
            None => nix::unistd::gethostname()?.to_string_lossy().to_lowercase(),
        };
        if !rpc::agent::valid_node_name(&node_name) {
            bail!(
                "\"{node_name}\" is not a valid node name (lower-case letters, digits, '-' and '.'): pass --node-name"
            );
        }
        Start::New(JoinParams {
            addr,
            ca_hash,
            node_name,
            role: args.role.clone(),
            advertise_ip: args.advertise_addr,
            ignore_preflight_errors: args.ignore_preflight_errors.clone(),
            mounts: args.mounts.clone(),
        })
    };
    let new = !args.resume;
    let mut progress = Progress::new(plan::phases().len(), "done");
    let (ctx, _plan) = match plan::run(
        start,
        &global.state_dir,
        args.token.clone(),
        crate::effects::Effects::host(),
        &mut progress,
    ) {
        Ok(done) => done,
        Err(e) => {
            let layout = crate::state_dir::StateDir::new(&global.state_dir);
            // Refused before the cluster admitted the node: nothing to resume, nothing kept.
            if new && !layout.node_cert().exists() && !layout.cluster_record().exists() {
                let _ = plan::forget(&global.state_dir);
                return Err(e.context("the join was refused; nothing was changed on either host"));
            }
            return Err(e);
        }
    };
    eprintln!();
    eprintln!(
        "node {} joined the cluster at {} ({:.1}s).",
        ctx.params.node_name,
        ctx.params.addr,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
