//! `gravity kubectl ...`: kubectl inside planet with the cluster's admin kubeconfig.

use std::process::ExitCode;

use anyhow::bail;

use crate::cli::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// kubectl's arguments, as you would give them to kubectl
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: Args) -> anyhow::Result<ExitCode> {
    let pki = crate::state_dir::StateDir::new(&global.state_dir).pki();
    if !pki.join("admin.kubeconfig").exists() {
        bail!(
            "no Kubernetes is installed in {}: its planet image has none, or the install has not reached its `pki` phase",
            global.state_dir.display()
        );
    }
    // planet's exec sets KUBECONFIG to the admin kubeconfig for every command.
    let mut command = vec!["/usr/bin/kubectl".to_string()];
    command.extend(args.args);
    Ok(ExitCode::from(planet::exec::exec(
        &global.state_dir,
        &command,
    )?))
}
