//! The cluster's PKI, made on this first node where planet runs Kubernetes: the CA, the
//! control plane's, kubelet's and etcd's certificates, the service-account keys and the
//! kubeconfigs, under `<state>/pki` (a 0700 directory, keys 0600, root's). Only file names
//! ever reach the log and the journal.

use anyhow::Context;

use crate::install::{Ctx, state};
use crate::node::kubernetes;
use operation::{Phase, Report};

pub struct Pki;

impl Phase<Ctx> for Pki {
    fn name(&self) -> &'static str {
        "pki"
    }
    fn description(&self) -> &'static str {
        "Make the cluster's certificates and keys"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let image = planet::artifact::imported(&ctx.params.state_dir)?.context(
            "the planet image is not imported: run `gravity install --resume` to redo that phase",
        )?;
        let Some(version) = kubernetes::version_of(&image.path) else {
            out.say("this planet image has no Kubernetes: no certificates to make");
            return Ok(());
        };
        let dir = ctx.layout.pki();
        // A resumed install keeps what it made: the CA must not change under issued certificates.
        if pki::Pki::complete_in(&dir) {
            out.say(format!("kept the certificates in {}", dir.display()));
            return Ok(());
        }
        let node = &ctx.params.node;
        let request = kubernetes::pki_request(&node.node_name, node.advertise_ip);
        let made = pki::generate_now(&request)?;
        made.write(&dir)?;
        out.say(format!(
            "made the cluster CA and {} certificates and keys for Kubernetes {version} in {}",
            made.files.len() - 1,
            dir.display()
        ));
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        state::remove_dir(&ctx.layout.pki())?;
        Ok(())
    }
}
