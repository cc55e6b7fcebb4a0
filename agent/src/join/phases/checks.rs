//! The joining node's preflight: its profile's checks on this host (from the fetched image,
//! verified again as a whole), and the cross-node checks (network rate each way, ports, clock
//! offset) against the first node, whose agent starts a peer-check server for them.

use anyhow::{Context, bail};
use operation::{Phase, Report};

use crate::join::plan::Ctx;

pub struct Checks;

/// What every node connects to on the first node: its apiserver (kubelet, kube-proxy) and the
/// cluster's registry (containerd's pulls).
fn cluster_endpoints(
    facts: &rpc::agent::ClusterFacts,
) -> Vec<preflight::checks::endpoints::Endpoint> {
    use preflight::checks::endpoints::Endpoint;
    let mut out = Vec::new();
    let apiserver = facts
        .apiserver
        .as_deref()
        .and_then(|url| url.strip_prefix("https://"))
        .and_then(|hostport| hostport.parse().ok());
    if let Some(addr) = apiserver {
        out.push(Endpoint {
            what: "the cluster's apiserver".into(),
            addr,
        });
    }
    if let Some(ip) = facts.first_node_ip {
        out.push(Endpoint {
            what: "the cluster's registry".into(),
            addr: std::net::SocketAddr::new(ip, crate::install::phases::images::REGISTRY_PORT),
        });
    }
    out
}

impl Phase<Ctx> for Checks {
    fn name(&self) -> &'static str {
        "checks"
    }
    fn description(&self) -> &'static str {
        "Run preflight checks, this host's and against the first node"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let client = ctx.client()?;
        let index = client.cluster(ctx.params.role.as_deref())?;
        let dir = super::fetch::image_dir(
            ctx,
            &cluster_image::archive::ImageIndex::from_json(
                index.index.as_bytes(),
                std::path::Path::new("index.json"),
            )?,
        );
        let image = crate::source::open(Some(&dir), ctx.layout.root())
            .with_context(|| format!("the fetched image in {} does not verify", dir.display()))?;
        let role = super::role(ctx, &index.facts);
        let role = role.as_deref();
        let Some(profile) = image.manifest.profile(role) else {
            let names: Vec<String> = image
                .manifest
                .profiles()
                .iter()
                .map(|p| p.name.clone())
                .collect();
            bail!(
                "the cluster has no node profile `{}` (it has: {})",
                role.unwrap_or_default(),
                names.join(", ")
            );
        };
        let peer = client.peer_server()?;
        let opts = preflight::Options {
            state_dir: ctx.layout.root().to_path_buf(),
            peers: vec![peer],
            cluster_endpoints: cluster_endpoints(&index.facts),
            ..preflight::Options::default()
        };
        let mut report = ctx
            .effects()
            .checks
            .run(&image.manifest, &profile, &opts, &image.dir);
        report.apply_ignores(&preflight::IgnoreList::from_entries(
            &ctx.params.ignore_preflight_errors,
        ));
        let value: serde_json::Value = serde_json::from_str(&report.to_json())?;
        crate::install::state::write_json(&ctx.layout.join_checks_report(), &value)?;
        let failed: Vec<&str> = crate::install::phases::checks::failed_unless_fixed(&report, out)
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        if !failed.is_empty() {
            for line in report.render_table().lines() {
                out.say(line);
            }
            bail!(
                "{} preflight check{} failed on this host ({}): fix them and run `gravity join --resume`, or go on anyway with `gravity join --resume --ignore-preflight-errors={}`",
                failed.len(),
                if failed.len() == 1 { "" } else { "s" },
                failed.join(", "),
                failed.join(",")
            );
        }
        out.say(format!(
            "profile {}: {} checks passed, the first node included",
            profile.name,
            report.checks.len()
        ));
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, _out: &mut Report<'_>) -> anyhow::Result<()> {
        crate::install::state::remove_file_and_empty_parent(&ctx.layout.join_checks_report())?;
        Ok(())
    }
}
