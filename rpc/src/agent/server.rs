//! The join agent's server: accepts TLS connections and answers requests, a thread each.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cluster_image::archive::{ImageIndex, Kind};
use rustls::{ServerConnection, StreamOwned};
use serde::Serialize;

use super::messages::{
    ClusterFacts, ClusterInfo, ControlPlaneJoin, ErrorKind, KubeCredentials, NodeHook, Request,
    Response,
};
use super::roles::{RoleError, Roles};
use super::rollout::{Report, Rollout, Step};
use super::tokens::TokenStore;
use super::{AgentError, VERSION};
pub use crate::accept::ServerHandle;

const MAX_CONNECTIONS: usize = 64;
const MAX_LINE: u64 = 1 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// What every connection's thread needs: the cluster's identity, its CA to sign with, the
/// tokens, and the cluster image to serve.
pub struct Shared {
    pub cluster: String,
    pub version: String,
    pub tls: Arc<rustls::ServerConfig>,
    pub tokens: TokenStore,
    pub ca: pki::issue::Ca,
    /// The CA's certificate (PEM), handed to joining nodes.
    pub ca_pem: String,
    /// The unpacked cluster image the first node installed from.
    pub image_dir: PathBuf,
    /// Where each joined node is recorded (`<node>.json`).
    pub nodes_dir: PathBuf,
    /// The first node's name: no other node may take it.
    pub first_node: String,
    /// What joined nodes share with the first (handed out with the image's index; `role`
    /// is the first node's there, and each node's own in the answer).
    pub facts: ClusterFacts,
    /// Which profile a node runs when it does not ask for one.
    pub roles: Roles,
    /// Removes what else of a leaving node the cluster has (its Kubernetes Node object);
    /// the node is forgotten only once this succeeded.
    pub forget: Option<Forget>,
    /// Runs the application's node hooks (whether the hook is defined); once a node is
    /// forgotten, its postNodeRemove.
    pub node_hooks: Option<RunNodeHook>,
    /// Where the cluster runs Kubernetes: what makes more control plane nodes.
    pub control_plane: Option<ControlPlane>,
    /// Cordons a leaving node and evicts its pods (where the cluster runs Kubernetes).
    pub drain: Option<Drain>,
    /// Makes an upgraded node schedulable again (where the cluster runs Kubernetes).
    pub uncordon: Option<Drain>,
    /// Every control plane node's apiserver (where the cluster runs Kubernetes), for the
    /// workers' proxies.
    pub apiservers: Option<Apiservers>,
}

/// What the agent hands a new control plane node, and the etcd cluster it joins.
pub struct ControlPlane {
    pub secrets: pki::Secrets,
    pub members: Box<dyn Members>,
}

/// The cluster's etcd membership, changed one node at a time.
pub trait Members: Send + Sync {
    /// Adds `node` as a learner at `peer_url` (again: the same answer) and returns etcd's
    /// initial cluster for it; `None` when the cluster has its control plane nodes already
    /// and the node did not insist (`pinned`).
    fn add(&self, node: &str, peer_url: &str, pinned: bool) -> Result<Option<String>, String>;
    /// Promotes `node`'s learner once it caught up with the leader; removes it if it does
    /// not in time.
    fn promote(&self, node: &str) -> Result<(), String>;
    /// Removes `node`'s member; whether there was one.
    fn remove(&self, node: &str) -> Result<bool, String>;
}

/// Shared with what else changes the membership (the removal of a node).
impl<T: Members + ?Sized> Members for Arc<T> {
    fn add(&self, node: &str, peer_url: &str, pinned: bool) -> Result<Option<String>, String> {
        (**self).add(node, peer_url, pinned)
    }
    fn promote(&self, node: &str) -> Result<(), String> {
        (**self).promote(node)
    }
    fn remove(&self, node: &str) -> Result<bool, String> {
        (**self).remove(node)
    }
}

/// See [`Shared::forget`]: the node's name in, why it failed out.
pub type Forget = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;
/// See [`Shared::drain`]: the node's name in; whether the cluster has it to drain, or why it
/// failed.
pub type Drain = Box<dyn Fn(&str) -> Result<bool, String> + Send + Sync>;
/// See [`Shared::node_hooks`]: the hook and the node's name in; whether it ran, or why it failed.
pub type RunNodeHook = Box<dyn Fn(NodeHook, &str) -> Result<bool, String> + Send + Sync>;

/// See [`Shared::apiservers`].
pub type Apiservers = Box<dyn Fn() -> Vec<SocketAddr> + Send + Sync>;

pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    pub fn bind(addr: SocketAddr, shared: Shared) -> Result<Server, AgentError> {
        let listener = TcpListener::bind(addr).map_err(|source| AgentError::Io {
            addr: addr.to_string(),
            what: "cannot listen (does another gravity agent run?)".into(),
            source,
        })?;
        Ok(Server {
            listener,
            shared: Arc::new(shared),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn spawn(self) -> io::Result<ServerHandle> {
        let addr = self.local_addr()?;
        Ok(ServerHandle::spawn(addr, move |stop| self.serve(stop)))
    }

    /// Serves until `stop` is set.
    pub fn serve(self, stop: &AtomicBool) {
        if let Err(e) = self.listener.set_nonblocking(true) {
            tracing::error!(error = %e, "cannot make the agent's listener non-blocking");
            return;
        }
        let active = Arc::new(AtomicUsize::new(0));
        while !stop.load(Ordering::SeqCst) {
            let Some((stream, peer)) = crate::accept::accept_within(&self.listener) else {
                continue;
            };
            if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                tracing::warn!(%peer, "too many connections: closing this one");
                continue;
            }
            active.fetch_add(1, Ordering::SeqCst);
            let (a, shared) = (active.clone(), self.shared.clone());
            std::thread::spawn(move || {
                if let Err(e) = connection(&shared, stream, peer) {
                    tracing::info!(%peer, error = %e, "agent connection ended");
                }
                a.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }
}

type Tls = BufReader<StreamOwned<ServerConnection, TcpStream>>;

fn send<T: Serialize>(tls: &mut Tls, msg: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(msg).map_err(io::Error::other)?;
    line.push(b'\n');
    let w = tls.get_mut();
    w.write_all(&line)?;
    w.flush()
}

fn refuse(tls: &mut Tls, kind: ErrorKind, message: impl Into<String>) -> io::Result<()> {
    send(
        tls,
        &Response::Error {
            kind,
            message: message.into(),
        },
    )
}

fn connection(shared: &Shared, stream: TcpStream, peer: SocketAddr) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let conn = ServerConnection::new(shared.tls.clone()).map_err(io::Error::other)?;
    let mut tls = BufReader::new(StreamOwned::new(conn, stream));
    // The handshake: a client certificate, when sent, is verified against the cluster CA here.
    while tls.get_ref().conn.is_handshaking() {
        let s = tls.get_mut();
        s.conn.complete_io(&mut s.sock)?;
    }
    let certificate = tls
        .get_ref()
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    let node = certificate.as_deref().and_then(node_of);
    // A valid certificate of a node the cluster forgot, or of an earlier join of its name,
    // may do nothing but say it leaves (what an undone join says again after a crash).
    let standing = match (&node, &certificate) {
        (Some(node), Some(der)) => standing(&shared.nodes_dir, node, der),
        _ => Standing::Member,
    };
    let mut hello = false;
    loop {
        let mut line = String::new();
        if (&mut tls).take(MAX_LINE).read_line(&mut line)? == 0 {
            return Ok(());
        }
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => return refuse(&mut tls, ErrorKind::Invalid, format!("bad request: {e}")),
        };
        match request {
            Request::Hello { version } => {
                if version != VERSION {
                    return refuse(
                        &mut tls,
                        ErrorKind::Version,
                        format!(
                            "this agent speaks version {VERSION}, the node {version}: run the cluster's own gravity on the node"
                        ),
                    );
                }
                hello = true;
                send(
                    &mut tls,
                    &Response::Hello {
                        version: VERSION,
                        cluster: shared.cluster.clone(),
                    },
                )?;
            }
            _ if !hello => {
                return refuse(&mut tls, ErrorKind::Invalid, "say hello first");
            }
            Request::Join { token, node, csr } => {
                let answer = join(shared, &token, &node, &csr, peer);
                send(&mut tls, &answer)?;
            }
            _ if node.is_none() => {
                return refuse(
                    &mut tls,
                    ErrorKind::Unauthenticated,
                    "this request needs the node's client certificate: join with a token first",
                );
            }
            Request::Leave if standing == Standing::Forgotten => {
                let node = node.clone().unwrap_or_default();
                send(&mut tls, &Response::Left { node })?;
            }
            _ if standing != Standing::Member => {
                let node = node.as_deref().unwrap_or_default();
                tracing::warn!(%peer, node, ?standing, "a revoked node certificate refused");
                return refuse(&mut tls, standing.kind(), standing.why(node));
            }
            Request::Cluster { role, version } => {
                let node = node.as_deref().unwrap_or_default();
                send(
                    &mut tls,
                    &cluster(shared, node, role.as_deref(), version.as_deref()),
                )?;
            }
            Request::Fetch {
                path,
                offset,
                version,
            } => match image_of(shared, version.as_deref()) {
                Ok((_, dir)) => fetch(&mut tls, &dir, &path, offset)?,
                Err((kind, message)) => refuse(&mut tls, kind, message)?,
            },
            Request::Kubernetes {
                kubelet_client_csr,
                kubelet_serving_csr,
                kube_proxy_csr,
                ips,
            } => {
                let node = node.clone().unwrap_or_default();
                let csrs = [kubelet_client_csr, kubelet_serving_csr, kube_proxy_csr];
                send(&mut tls, &kubernetes(shared, &node, &csrs, ips))?;
            }
            Request::Peer => {
                let answer = match peer_server() {
                    Ok(port) => Response::Peer { port },
                    Err(e) => Response::Error {
                        kind: ErrorKind::Internal,
                        message: format!("cannot start the peer checks: {e}"),
                    },
                };
                send(&mut tls, &answer)?;
            }
            Request::NodeHook { hook } => {
                let node = node.clone().unwrap_or_default();
                let answer = match (&shared.node_hooks, hook) {
                    (_, NodeHook::PostNodeRemove) => Response::Error {
                        kind: ErrorKind::Invalid,
                        message: "postNodeRemove runs when the cluster forgets the node".into(),
                    },
                    (None, _) => Response::HookDone { ran: false },
                    (Some(run), hook) => match run(hook, &node) {
                        Ok(ran) => Response::HookDone { ran },
                        Err(why) => Response::Error {
                            kind: ErrorKind::Internal,
                            message: format!("the {} hook failed: {why}", hook.name()),
                        },
                    },
                };
                send(&mut tls, &answer)?;
            }
            Request::ControlPlane { peer_url, pinned } => {
                let node = node.clone().unwrap_or_default();
                send(&mut tls, &control_plane(shared, &node, &peer_url, pinned))?;
            }
            Request::Promote => {
                let node = node.clone().unwrap_or_default();
                send(&mut tls, &promote(shared, &node))?;
            }
            Request::Drain => {
                let node = node.clone().unwrap_or_default();
                let answer = match &shared.drain {
                    None => Response::Drained { drained: false },
                    Some(drain) => match drain(&node) {
                        Ok(drained) => Response::Drained { drained },
                        Err(why) => internal(format!("cannot drain node {node}: {why}")),
                    },
                };
                send(&mut tls, &answer)?;
            }
            Request::RemoveMember => {
                let node = node.clone().unwrap_or_default();
                send(&mut tls, &remove_member(shared, &node))?;
            }
            Request::Uncordon => {
                let node = node.clone().unwrap_or_default();
                let answer = match &shared.uncordon {
                    None => Response::Uncordoned { uncordoned: false },
                    Some(uncordon) => match uncordon(&node) {
                        Ok(uncordoned) => Response::Uncordoned { uncordoned },
                        Err(why) => internal(format!("cannot uncordon node {node}: {why}")),
                    },
                };
                send(&mut tls, &answer)?;
            }
            Request::Sync { runs, step } => {
                let node = node.clone().unwrap_or_default();
                send(&mut tls, &sync(shared, &node, runs, step))?;
            }
            Request::Leave => {
                let node = node.clone().unwrap_or_default();
                send(&mut tls, &leave(shared, &node))?;
            }
        }
    }
}

/// What the cluster makes of a node's verified certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Its node is a member, and this is the certificate its join was given (or its record
    /// predates recorded certificates).
    Member,
    /// The node left or was removed: the cluster has no record of it.
    Forgotten,
    /// A later join of a node of that name was given another certificate.
    Replaced,
}

impl Standing {
    fn kind(self) -> ErrorKind {
        match self {
            // What a node's agent takes for "this node is no member": it stops asking.
            Standing::Forgotten => ErrorKind::NotFound,
            _ => ErrorKind::Unauthenticated,
        }
    }

    fn why(self, node: &str) -> String {
        match self {
            Standing::Forgotten => format!(
                "node {node} is not a member of the cluster (it left or was removed): its certificate is no longer accepted; join again with a token"
            ),
            _ => format!(
                "this certificate of node {node} is no longer accepted: the node joined again since, and was given another"
            ),
        }
    }
}

/// Whether `der`, a certificate the cluster CA signed for `node`, is the one the cluster
/// recorded for it.
fn standing(nodes_dir: &Path, node: &str, der: &[u8]) -> Standing {
    let Ok(bytes) = std::fs::read(record_in(nodes_dir, node)) else {
        return Standing::Forgotten;
    };
    let record: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    match record["certificate"].as_str() {
        Some(recorded) if recorded != fingerprint(der) => Standing::Replaced,
        _ => Standing::Member,
    }
}

/// `sha256:<hex>` of a certificate's DER.
fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(der)))
}

/// The node name of a verified client certificate: its common name, if it is a node's.
fn node_of(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let is_node = subject
        .iter_organization()
        .any(|o| o.as_str() == Ok(pki::issue::NODE_ORGANIZATION));
    let cn = subject.iter_common_name().next()?.as_str().ok()?;
    is_node.then(|| cn.to_string())
}

/// A node name Kubernetes and etcd both accept: a DNS-1123 subdomain.
pub fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Where a joined node is recorded.
pub fn record_in(nodes_dir: &Path, node: &str) -> PathBuf {
    nodes_dir.join(format!("{node}.json"))
}

/// The joined nodes recorded under `nodes_dir`, by name (none where it does not exist).
pub fn joined_in(nodes_dir: &Path) -> io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(nodes_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut nodes = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "json")
            && let Some(stem) = path.file_stem()
        {
            nodes.push(stem.to_string_lossy().into_owned());
        }
    }
    nodes.sort();
    Ok(nodes)
}

/// The id of the token a joined node used, from its record.
fn token_in(nodes_dir: &Path, node: &str) -> Option<String> {
    let bytes = std::fs::read(record_in(nodes_dir, node)).ok()?;
    let record: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    record["token"].as_str().map(str::to_string)
}

/// Forgets a joined node: its record under `nodes_dir`, and its use of its token (so that a
/// single-use token works again). Whether the node was recorded.
pub fn forget_joined(nodes_dir: &Path, tokens: &TokenStore, node: &str) -> Result<bool, String> {
    let path = record_in(nodes_dir, node);
    if let Some(id) = token_in(nodes_dir, node) {
        tokens.unredeem(&id, node).map_err(|e| e.to_string())?;
    }
    Rollout::of(nodes_dir)
        .forget(node)
        .map_err(|e| format!("cannot forget node {node}'s upgrade record: {e}"))?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

fn join(shared: &Shared, token: &str, node: &str, csr: &str, peer: SocketAddr) -> Response {
    let error = |kind, message: String| Response::Error { kind, message };
    if !valid_node_name(node) {
        return error(
            ErrorKind::Invalid,
            format!(
                "\"{node}\" is not a valid node name (lower-case letters, digits, '-' and '.')"
            ),
        );
    }
    let record_path = record_in(&shared.nodes_dir, node);
    let recorded_token = token_in(&shared.nodes_dir, node);
    let token_id = token.split('.').next().unwrap_or_default();
    // A node that joined already may only ask again with its own token (a retry whose first
    // answer was lost); no node may take the first node's name.
    if node == shared.first_node || recorded_token.as_deref().is_some_and(|t| t != token_id) {
        return error(
            ErrorKind::Invalid,
            format!(
                "a node named {node} is already in the cluster: give this host another name (--node-name)"
            ),
        );
    }
    let record = match shared.tokens.redeem(token, node) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(%peer, node, error = %e, "join refused");
            return error(ErrorKind::Token, e.to_string());
        }
    };
    let signed = shared
        .ca
        .sign_node(csr, node, time::OffsetDateTime::now_utc());
    let certificate = match signed {
        Ok(c) => c,
        Err(e) => {
            // Nothing is left of a refused join: give the use back.
            let _ = shared.tokens.unredeem(&record.id, node);
            return error(ErrorKind::Invalid, format!("the node's CSR: {e}"));
        }
    };
    let der = match x509_parser::pem::parse_x509_pem(certificate.as_bytes()) {
        Ok((_, pem)) => pem.contents,
        Err(e) => {
            let _ = shared.tokens.unredeem(&record.id, node);
            return error(ErrorKind::Internal, format!("the node's certificate: {e}"));
        }
    };
    // Only this certificate speaks for the node from now on: one from an earlier join of the
    // name, or of a node the cluster forgot, is refused.
    let entry = serde_json::json!({
        "node": node,
        "address": peer.ip().to_string(),
        "token": record.id,
        "joined": super::tokens::now(),
        "certificate": fingerprint(&der),
    });
    if let Err(e) = std::fs::create_dir_all(&shared.nodes_dir)
        .and_then(|()| durable::write_atomic(&record_path, entry.to_string().as_bytes()))
    {
        let _ = shared.tokens.unredeem(&record.id, node);
        return error(
            ErrorKind::Internal,
            format!("cannot record the node at {}: {e}", record_path.display()),
        );
    }
    tracing::info!(%peer, node, token = record.id, "node joined");
    Response::Joined {
        certificate,
        ca: shared.ca_pem.clone(),
    }
}

/// The version a node asks for and its unpacked image: the installed one, or the one an
/// upgrade staged beside it ([`Rollout::staged`]).
fn image_of(
    shared: &Shared,
    asked: Option<&str>,
) -> Result<(String, PathBuf), (ErrorKind, String)> {
    let installed = || (shared.version.clone(), shared.image_dir.clone());
    let Some(asked) = asked.filter(|v| *v != shared.version) else {
        return Ok(installed());
    };
    match Rollout::of(&shared.nodes_dir).staged() {
        Ok(Some(staged)) if staged.version == asked => Ok((staged.version, staged.image_dir)),
        Ok(_) => Err((
            ErrorKind::NotFound,
            format!(
                "the cluster runs {} {} and has no upgrade to {asked} under way",
                shared.cluster, shared.version
            ),
        )),
        Err(e) => Err((ErrorKind::Internal, format!("the staged version: {e}"))),
    }
}

/// The cluster image's index and what the node shares with the cluster, its profile included.
fn cluster(shared: &Shared, node: &str, asked: Option<&str>, version: Option<&str>) -> Response {
    let error = |kind, message: String| Response::Error { kind, message };
    let (version, image_dir) = match image_of(shared, version) {
        Ok(image) => image,
        Err((kind, message)) => return error(kind, message),
    };
    let index = match std::fs::read_to_string(image_dir.join(cluster_image::layout::INDEX)) {
        Ok(index) => index,
        Err(e) => {
            return error(
                ErrorKind::Internal,
                format!(
                    "the first node cannot read its cluster image at {}: {e}",
                    image_dir.display()
                ),
            );
        }
    };
    let role = match shared.roles.assign(&shared.nodes_dir, node, asked) {
        Ok(role) => role,
        Err(e @ RoleError::Unknown { .. }) => return error(ErrorKind::Invalid, e.to_string()),
        Err(e @ RoleError::Record(_)) => return error(ErrorKind::Internal, e.to_string()),
    };
    Response::Cluster(ClusterInfo {
        name: shared.cluster.clone(),
        version,
        index,
        facts: ClusterFacts {
            role,
            ..shared.facts.clone()
        },
    })
}

/// Signs a joined node's Kubernetes credentials, for the name its certificate carries.
fn kubernetes(
    shared: &Shared,
    node: &str,
    csrs: &[String; 3],
    ips: Vec<std::net::IpAddr>,
) -> Response {
    use pki::issue::NodeCredential;
    if shared.facts.apiserver.is_none() {
        return Response::Error {
            kind: ErrorKind::NotFound,
            message: "this cluster runs no Kubernetes".into(),
        };
    }
    if ips.is_empty() || ips.len() > 16 {
        return Response::Error {
            kind: ErrorKind::Invalid,
            message: format!("a node names 1 to 16 addresses, not {}", ips.len()),
        };
    }
    let now = time::OffsetDateTime::now_utc();
    let which = [
        NodeCredential::KubeletClient,
        NodeCredential::KubeletServing { ips },
        NodeCredential::KubeProxy,
    ];
    let mut signed = Vec::with_capacity(3);
    for (csr, which) in csrs.iter().zip(&which) {
        match shared.ca.sign_credential(csr, node, which, now) {
            Ok(pem) => signed.push(pem),
            Err(e) => {
                return Response::Error {
                    kind: ErrorKind::Invalid,
                    message: format!("the node's CSR: {e}"),
                };
            }
        }
    }
    tracing::info!(node, "signed the node's Kubernetes credentials");
    let [kubelet_client, kubelet_serving, kube_proxy] =
        <[String; 3]>::try_from(signed).expect("three signed");
    Response::Kubernetes(KubeCredentials {
        kubelet_client,
        kubelet_serving,
        kube_proxy,
    })
}

fn internal(message: String) -> Response {
    Response::Error {
        kind: ErrorKind::Internal,
        message,
    }
}

/// Answers with `refused` where the cluster runs no Kubernetes (no etcd members to change).
fn with_members(shared: &Shared, change: impl FnOnce(&dyn Members) -> Response) -> Response {
    match &shared.control_plane {
        Some(cp) => change(cp.members.as_ref()),
        None => Response::Error {
            kind: ErrorKind::Invalid,
            message: "this cluster runs no Kubernetes: it has no etcd members to change".into(),
        },
    }
}

fn promote(shared: &Shared, node: &str) -> Response {
    with_members(shared, |m| match m.promote(node) {
        Ok(()) => Response::Promoted,
        Err(why) => internal(format!("cannot promote node {node}'s etcd member: {why}")),
    })
}

fn remove_member(shared: &Shared, node: &str) -> Response {
    with_members(shared, |m| match m.remove(node) {
        Ok(removed) => Response::MemberRemoved { removed },
        Err(why) => internal(format!("cannot remove node {node}'s etcd member: {why}")),
    })
}

/// Makes `node` a control plane node: its etcd learner, and the cluster's shared secrets.
fn control_plane(shared: &Shared, node: &str, peer_url: &str, pinned: bool) -> Response {
    let Some(cp) = &shared.control_plane else {
        return Response::Worker {
            reason: "the cluster runs no Kubernetes".into(),
        };
    };
    let valid = peer_url
        .strip_prefix("https://")
        .and_then(|hp| hp.parse::<SocketAddr>().ok())
        .is_some();
    if !valid {
        return Response::Error {
            kind: ErrorKind::Invalid,
            message: format!("{peer_url:?} is not an etcd peer URL (https://IP:PORT)"),
        };
    }
    match cp.members.add(node, peer_url, pinned) {
        Ok(Some(initial_cluster)) => {
            tracing::info!(node, peer_url, "added the node's etcd member (a learner)");
            Response::ControlPlane(ControlPlaneJoin {
                ca_key: cp.secrets.ca_key.clone(),
                sa_key: cp.secrets.sa_key.clone(),
                initial_cluster,
            })
        }
        Ok(None) => Response::Worker {
            reason: "the cluster has its control plane nodes".into(),
        },
        Err(why) => internal(format!("cannot add node {node}'s etcd member: {why}")),
    }
}

/// How long an asked-for peer-check server waits for its client before it stops.
const PEER_IDLE: Duration = Duration::from_secs(30);

/// A peer-check server on a port of its own, for one joining node's measurements; it stops
/// once no client has been connected for [`PEER_IDLE`].
fn peer_server() -> Result<u16, crate::peer::PeerError> {
    let server = crate::peer::Server::bind("0.0.0.0:0")?;
    let port = server.local_addr().port();
    std::thread::spawn(move || server.serve(&AtomicBool::new(false), Some(PEER_IDLE)));
    Ok(port)
}

/// Forgets a node whose join was undone: its record, and its use of the token (so that a
/// single-use token works again for the retry).
fn leave(shared: &Shared, node: &str) -> Response {
    if let Some(forget) = &shared.forget
        && let Err(why) = forget(node)
    {
        return Response::Error {
            kind: ErrorKind::Internal,
            message: format!("cannot remove node {node} from the cluster: {why}"),
        };
    }
    if let Err(message) = forget_joined(&shared.nodes_dir, &shared.tokens, node) {
        return Response::Error {
            kind: ErrorKind::Internal,
            message,
        };
    }
    tracing::info!(node, "node left");
    if let Some(run) = &shared.node_hooks
        && let Err(why) = run(NodeHook::PostNodeRemove, node)
    {
        return Response::Error {
            kind: ErrorKind::Internal,
            message: format!(
                "node {node} is removed from the cluster, but its postNodeRemove hook failed: {why}"
            ),
        };
    }
    Response::Left {
        node: node.to_string(),
    }
}

/// Keeps what a joined node's agent says, and answers what the node should run.
fn sync(shared: &Shared, node: &str, runs: String, step: Option<Step>) -> Response {
    if !record_in(&shared.nodes_dir, node).exists() {
        return Response::Error {
            kind: ErrorKind::NotFound,
            message: format!("node {node} is not a member of the cluster (it was removed)"),
        };
    }
    let rollout = Rollout::of(&shared.nodes_dir);
    let report = Report {
        runs,
        step,
        at_ms: durable::now_ms(),
    };
    let apiservers = shared.apiservers.as_ref().map(|f| f()).unwrap_or_default();
    match rollout
        .set_report(node, &report)
        .and_then(|()| rollout.target(node))
    {
        Ok(target) => Response::Sync { target, apiservers },
        Err(e) => internal(format!("the rollout record of node {node}: {e}")),
    }
}

fn fetch(tls: &mut Tls, image_dir: &Path, path: &str, offset: u64) -> io::Result<()> {
    let index_path = image_dir.join(cluster_image::layout::INDEX);
    // Only what the image's index lists (and the index itself) is served: no path of the
    // client's choosing ever reaches the file system.
    let size = if path == cluster_image::layout::INDEX {
        std::fs::metadata(&index_path).map(|m| m.len()).ok()
    } else {
        std::fs::read(&index_path)
            .ok()
            .and_then(|b| ImageIndex::from_json(&b, &index_path).ok())
            .and_then(|i| i.get(path).filter(|e| e.kind == Kind::File).map(|e| e.size))
    };
    let Some(size) = size else {
        return refuse(
            tls,
            ErrorKind::NotFound,
            format!("{path} is not part of the cluster image"),
        );
    };
    let file_path = image_dir.join(path);
    let mut file = match std::fs::File::open(&file_path) {
        Ok(f) if f.metadata().is_ok_and(|m| m.len() == size) => f,
        _ => {
            return refuse(
                tls,
                ErrorKind::Internal,
                format!(
                    "the first node's copy of {path} ({}) is missing or damaged: check it with `gravity image verify {}`",
                    file_path.display(),
                    image_dir.display()
                ),
            );
        }
    };
    let offset = offset.min(size);
    file.seek(SeekFrom::Start(offset))?;
    send(
        tls,
        &Response::Data {
            path: path.to_string(),
            size,
            offset,
        },
    )?;
    let w = tls.get_mut();
    io::copy(&mut file.take(size - offset), w)?;
    w.flush()
}
