//! `gravity kubectl ...`: planet's kubectl with the cluster's admin kubeconfig, run on the host,
//! so that files (`apply -f ./app.yaml`), the terminal and the working directory are the user's.
//! kubectl is static and planet shares the host's network: the apiserver's address in the
//! kubeconfig is the same from here.

use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::cli::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// kubectl's arguments, as you would give them to kubectl
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<ExitCode> {
    let kubeconfig = crate::state_dir::StateDir::new(&global.state_dir)
        .pki()
        .join("admin.kubeconfig");
    if !kubeconfig.exists() {
        bail!(
            "no Kubernetes is installed in {}: its planet image has none, or the install has not reached its `pki` phase",
            global.state_dir.display()
        );
    }
    let pid = planet::status::Status::running_init_pid(&global.state_dir).with_context(|| {
        format!(
            "planet is not running (state directory {}): start it with `gravity planet start`",
            global.state_dir.display()
        )
    })?;
    let kubectl = planet::inside::host_path(pid, "/usr/bin/kubectl");
    // Replaces this process: kubectl's exit code, signals and terminal are the user's.
    let err = std::process::Command::new(&kubectl)
        .args(&args.args)
        .env("KUBECONFIG", &kubeconfig)
        .exec();
    Err(err).with_context(|| format!("cannot run planet's kubectl ({})", kubectl.display()))
}
