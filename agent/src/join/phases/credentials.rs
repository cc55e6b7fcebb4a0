//! What this node is in the cluster: its record (name, address, profile, the service user
//! and the control plane it uses), and where the cluster runs Kubernetes its certificates.
//! A control plane node (the cluster's first three, or one its profile pins) gets an etcd
//! member, a learner until the promote phase, and the secrets every control plane node shares
//! (the CA's and service-account keys) to make its own PKI with; a worker gets kubelet's and
//! kube-proxy's certificates only, signed by the cluster from CSRs of keys made here.

use std::net::{IpAddr, UdpSocket};
use std::path::Path;

use anyhow::Context;
use cluster_image::archive::ImageIndex;
use operation::{Phase, Report};

use crate::install::state::{self, ClusterRecord, Supervisor};
use crate::join::plan::Ctx;
use crate::node::NodeIdentity;
use crate::node::identity::Joined;
use crate::node::kubernetes;

pub struct Credentials;

/// What the node's Kubernetes daemons read from its PKI directory (a subset of the first
/// node's: no CA key, no control plane).
const FILES: &[&str] = &[
    "ca.crt",
    "kubelet.crt",
    "kubelet.key",
    "kubelet.kubeconfig",
    "kube-proxy.kubeconfig",
];

impl Phase<Ctx> for Credentials {
    fn name(&self) -> &'static str {
        "credentials"
    }
    fn description(&self) -> &'static str {
        "Record the cluster, get this node's Kubernetes certificates"
    }
    fn run(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        let client = ctx.client()?;
        let info = client.cluster(ctx.params.role.as_deref())?;
        let facts = &info.facts;
        let index = ImageIndex::from_json(info.index.as_bytes(), Path::new("index.json"))?;
        let image_dir = super::fetch::image_dir(ctx, &index);
        let agent = rpc::agent::with_port(&ctx.params.addr);
        let advertise_ip = match ctx.params.advertise_ip {
            Some(ip) => ip,
            None => route_to(&agent)?,
        };
        let control_plane = facts
            .first_node_ip
            .context("the cluster's agent does not say where its control plane is")?;
        let role = super::role(ctx, facts).unwrap_or_default();
        let pin = k8s_role(&image_dir, &role)?;
        // Asked before anything is recorded: the cluster's answer is the same when asked again.
        let member = match (&facts.apiserver, pin) {
            (Some(_), Some(K8sRole::Node)) | (None, _) => None,
            (Some(_), pin) => {
                let peer_url = format!("https://{}", std::net::SocketAddr::new(advertise_ip, 2380));
                client.control_plane(&peer_url, pin == Some(K8sRole::Master))?
            }
        };
        let record = ClusterRecord {
            name: info.name.clone(),
            version: info.version.clone(),
            installed_ms: durable::now_ms(),
            node: NodeIdentity {
                node_name: ctx.params.node_name.clone(),
                advertise_ip,
                role,
                joined: Some(Joined {
                    agent,
                    control_plane,
                    etcd: member.as_ref().map(|m| m.initial_cluster.clone()),
                }),
            },
            flavor: String::new(),
            service_uid: facts.service_uid,
            service_gid: facts.service_gid,
            // The install's finish phase records the real one.
            supervisor: Supervisor::Gravity,
            image_dir,
        };
        state::write_record(&ctx.layout.join_record(), &record)?;
        out.say(format!(
            "node {} at {advertise_ip}, profile {}, service user {}:{}; {}",
            record.node.node_name,
            record.node.role,
            record.service_uid,
            record.service_gid,
            if member.is_some() {
                "a control plane node (an etcd member)"
            } else {
                "a worker"
            }
        ));

        let Some(apiserver) = &facts.apiserver else {
            out.say("the cluster runs no Kubernetes: no certificates to get");
            return Ok(());
        };
        let dir = ctx.layout.pki();
        if let Some(member) = member {
            return control_plane_pki(ctx, &record.node, member, out);
        }
        // kubelet and kube-proxy reach the apiservers through the node agent's proxy, which
        // follows the cluster's list from the first node's apiserver on.
        let first: std::net::SocketAddr = apiserver
            .strip_prefix("https://")
            .and_then(|a| a.parse().ok())
            .with_context(|| {
                format!("the cluster's apiserver {apiserver:?} is not https://IP:PORT")
            })?;
        if crate::node::apiserver_proxy::read(&ctx.layout)?.is_none() {
            crate::node::apiserver_proxy::write(&ctx.layout, &[first])?;
        }
        let proxy = crate::node::apiserver_proxy::url();
        if FILES.iter().all(|f| dir.join(f).is_file()) {
            out.say(format!("kept the certificates in {}", dir.display()));
            return Ok(());
        }
        let (creds, keys) = client.kubernetes(&ctx.params.node_name, &[advertise_ip])?;
        let ca = std::fs::read_to_string(ctx.layout.cluster_ca()).with_context(|| {
            format!(
                "cannot read the cluster's CA at {}",
                ctx.layout.cluster_ca().display()
            )
        })?;
        durable::create_private_dir(&dir)
            .with_context(|| format!("cannot make {}", dir.display()))?;
        let kubeconfig =
            |user: &str, cert: &str, key: &str| pki::kubeconfig(&proxy, &ca, user, cert, key);
        let files = [
            ("ca.crt", ca.clone(), 0o644),
            ("kubelet.crt", creds.kubelet_serving.clone(), 0o644),
            ("kubelet.key", keys.kubelet_serving.clone(), 0o600),
            (
                "kube-proxy.kubeconfig",
                kubeconfig("kube-proxy", &creds.kube_proxy, &keys.kube_proxy),
                0o600,
            ),
            // Last: with it every file is there.
            (
                "kubelet.kubeconfig",
                kubeconfig("kubelet", &creds.kubelet_client, &keys.kubelet_client),
                0o600,
            ),
        ];
        for (name, contents, mode) in files {
            durable::write_atomic_mode(&dir.join(name), contents.as_bytes(), mode)?;
        }
        out.say(format!(
            "kubelet's and kube-proxy's certificates are in {}; they reach the apiservers through this node's agent at {proxy}, from {apiserver} on",
            dir.display()
        ));
        Ok(())
    }
    fn rollback(&self, ctx: &mut Ctx, out: &mut Report<'_>) -> anyhow::Result<()> {
        // A learner never started, or one the promote phase's undoing could not reach.
        if super::promote::control_plane_node(ctx)
            && ctx.unless_forgotten(ctx.client()?.remove_member(), out)? == Some(true)
        {
            out.say("removed this node's etcd member from the cluster");
        }
        state::remove_dir(&ctx.layout.pki())?;
        state::remove_file(&ctx.layout.apiservers())?;
        state::remove_file(&ctx.layout.join_record())?;
        Ok(())
    }
}

/// What a profile's `gravitational.io/k8s-role` label pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum K8sRole {
    /// A control plane node, however many the cluster has.
    Master,
    /// A worker.
    Node,
}

/// The label with which a node profile pins whether its nodes run the control plane.
pub const K8S_ROLE_LABEL: &str = "gravitational.io/k8s-role";

/// What the profile `role` of the fetched image in `image_dir` pins, if anything.
fn k8s_role(image_dir: &Path, role: &str) -> anyhow::Result<Option<K8sRole>> {
    let path = image_dir.join(cluster_image::layout::MANIFEST);
    let manifest = cluster_image::manifest::load_resolved(&path)
        .with_context(|| format!("cannot read the cluster's manifest {}", path.display()))?;
    let profile = manifest
        .profile(Some(role).filter(|r| !r.is_empty()))
        .with_context(|| format!("the cluster has no node profile `{role}`"))?;
    match profile.labels.get(K8S_ROLE_LABEL).map(String::as_str) {
        None => Ok(None),
        Some("master") => Ok(Some(K8sRole::Master)),
        Some("node") => Ok(Some(K8sRole::Node)),
        Some(other) => anyhow::bail!(
            "profile {role}: label {K8S_ROLE_LABEL}={other:?} must be \"master\" (a control plane node) or \"node\" (a worker)"
        ),
    }
}

/// A control plane node's PKI: made here, like the first node's, from the cluster's CA and
/// service-account keys.
fn control_plane_pki(
    ctx: &Ctx,
    node: &NodeIdentity,
    member: rpc::agent::ControlPlaneJoin,
    out: &mut Report<'_>,
) -> anyhow::Result<()> {
    let dir = ctx.layout.pki();
    if pki::Pki::complete_in(&dir) {
        out.say(format!("kept the certificates in {}", dir.display()));
        return Ok(());
    }
    let ca_crt = std::fs::read_to_string(ctx.layout.cluster_ca()).with_context(|| {
        format!(
            "cannot read the cluster's CA at {}",
            ctx.layout.cluster_ca().display()
        )
    })?;
    let secrets = pki::Secrets {
        ca_crt,
        ca_key: member.ca_key,
        sa_key: member.sa_key,
    };
    let request = kubernetes::pki_request(&node.node_name, node.advertise_ip);
    let made = pki::generate_member(&request, &secrets, time::OffsetDateTime::now_utc())?;
    made.write(&dir)?;
    out.say(format!(
        "the control plane's certificates for {} are in {} (the cluster's CA)",
        request.apiserver_url,
        dir.display()
    ));
    Ok(())
}

/// This host's address on the way to `addr`: what the cluster's nodes reach it at.
fn route_to(addr: &str) -> anyhow::Result<IpAddr> {
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.connect(addr)
        .and_then(|()| sock.local_addr())
        .map(|a| a.ip())
        .with_context(|| {
            format!("this host has no route to {addr}: pass --advertise-addr, or fix the routes")
        })
}
