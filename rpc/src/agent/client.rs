//! The joining node's side: join with a token, then ask with the node's certificate.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use sha2::{Digest, Sha256};

use super::messages::{
    ClusterInfo, ControlPlaneJoin, KubeCredentials, NodeHook, Request, Response,
};
use super::rollout::{Step, Target};
use super::tls::{self, PIN_MISMATCH};
use super::{AgentError, PORT, VERSION};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_LINE: u64 = 4 << 20;
/// How long a node hook may run on the first node (its Job's own limit is 20 minutes).
const HOOK_TIMEOUT: Duration = Duration::from_secs(25 * 60);
/// How long a request the cluster works on may take: an etcd membership change (waiting for
/// another node's learner, or this one's to catch up), a drain.
const LONG_CALL: Duration = Duration::from_secs(15 * 60);

type Tls = BufReader<StreamOwned<ClientConnection, TcpStream>>;

/// A client of one cluster's agent.
#[derive(Clone)]
pub struct Client {
    addr: String,
    ca_hash: String,
    config: Arc<ClientConfig>,
    /// The version whose image `cluster` and `fetch` ask for; the installed one where none.
    version: Option<String>,
}

/// What a join brings back: the node's certificate and key, and the cluster CA.
pub struct Joined {
    pub certificate: String,
    pub key: String,
    pub ca: String,
}

impl std::fmt::Debug for Joined {
    // Never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Joined").finish_non_exhaustive()
    }
}

/// The private keys (PEM) of a node's Kubernetes credentials; they never leave the node.
pub struct NodeKubeKeys {
    pub kubelet_client: String,
    pub kubelet_serving: String,
    pub kube_proxy: String,
}

impl std::fmt::Debug for NodeKubeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKubeKeys").finish_non_exhaustive()
    }
}

/// The cluster's answer to a node's sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    pub target: Option<Target>,
    /// Every control plane node's apiserver; none where the cluster runs no Kubernetes.
    pub apiservers: Vec<SocketAddr>,
}

/// A file fetched into place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub path: PathBuf,
    pub size: u64,
    /// Bytes that were already there from a cut transfer.
    pub resumed_from: u64,
}

/// `ADDR` with the agent's port when it has none.
pub fn with_port(addr: &str) -> String {
    if addr.parse::<SocketAddr>().is_ok()
        || addr
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.contains(':') && p.parse::<u16>().is_ok())
    {
        addr.to_string()
    } else if addr.contains(':') && !addr.starts_with('[') {
        format!("[{addr}]:{PORT}")
    } else {
        format!("{addr}:{PORT}")
    }
}

impl Client {
    /// A client that trusts the agent at `addr` only if its CA hashes to `ca_hash`; with
    /// `identity` (the node's certificate and key), it authenticates as that node.
    pub fn new(
        addr: &str,
        ca_hash: &str,
        identity: Option<(&str, &str)>,
    ) -> Result<Client, AgentError> {
        let ca_hash = ca_hash.trim().to_ascii_lowercase();
        let hex = ca_hash.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AgentError::Certificate(format!(
                "--ca-hash \"{ca_hash}\" is not sha256:<64 hex digits> (copy it from `gravity status` on the first node)"
            )));
        }
        Ok(Client {
            addr: with_port(addr),
            config: tls::client_config(&ca_hash, identity)?,
            ca_hash,
            version: None,
        })
    }

    /// This client, asking for `version`'s cluster image: one the first node stages beside
    /// the installed one for an upgrade (or the installed one itself).
    pub fn for_version(&self, version: &str) -> Client {
        Client {
            version: Some(version.to_string()),
            ..self.clone()
        }
    }

    fn io(&self, what: &str, source: io::Error) -> AgentError {
        AgentError::Io {
            addr: self.addr.clone(),
            what: what.to_string(),
            source,
        }
    }

    /// A TLS connection that has said hello, and the cluster's name from the answer.
    fn connect_named(&self) -> Result<(Tls, String), AgentError> {
        let mut tls = self.handshake()?;
        match self.call(&mut tls, &Request::Hello { version: VERSION })? {
            Response::Hello { cluster, .. } => Ok((tls, cluster)),
            other => Err(self.unexpected(other)),
        }
    }

    /// A TLS connection that has said hello.
    fn connect(&self) -> Result<Tls, AgentError> {
        Ok(self.connect_named()?.0)
    }

    /// A TLS connection, its handshake done.
    fn handshake(&self) -> Result<Tls, AgentError> {
        let connect_err = |source| AgentError::Connect {
            addr: self.addr.clone(),
            source,
        };
        let sa = self
            .addr
            .to_socket_addrs()
            .map_err(connect_err)?
            .next()
            .ok_or_else(|| connect_err(io::Error::other("the name has no address")))?;
        let sock = TcpStream::connect_timeout(&sa, CONNECT_TIMEOUT).map_err(connect_err)?;
        sock.set_read_timeout(Some(IO_TIMEOUT))
            .map_err(connect_err)?;
        sock.set_write_timeout(Some(IO_TIMEOUT))
            .map_err(connect_err)?;
        let name = ServerName::IpAddress(sa.ip().into());
        let conn =
            ClientConnection::new(self.config.clone(), name).map_err(|e| AgentError::Tls {
                addr: self.addr.clone(),
                detail: e.to_string(),
            })?;
        let mut tls = BufReader::new(StreamOwned::new(conn, sock));
        while tls.get_ref().conn.is_handshaking() {
            let s = tls.get_mut();
            if let Err(e) = s.conn.complete_io(&mut s.sock) {
                return Err(self.tls_error(e));
            }
        }
        Ok(tls)
    }

    /// What a failed handshake means for the user.
    fn tls_error(&self, e: io::Error) -> AgentError {
        let text = e.to_string();
        let addr = self.addr.clone();
        if text.contains(PIN_MISMATCH) {
            AgentError::CaMismatch { addr }
        } else if text.contains("UnknownCA")
            || text.contains("BadCertificate")
            || text.contains("CertificateUnknown")
            || text.contains("DecryptError")
        {
            AgentError::CertificateRefused { addr }
        } else {
            AgentError::Tls { addr, detail: text }
        }
    }

    /// A connection whose answer may take up to `wait` (the cluster works on the request).
    fn connect_waiting(&self, wait: Duration) -> Result<Tls, AgentError> {
        let tls = self.connect()?;
        tls.get_ref()
            .sock
            .set_read_timeout(Some(wait))
            .map_err(|e| self.io("a socket option", e))?;
        Ok(tls)
    }

    fn call(&self, tls: &mut Tls, request: &Request) -> Result<Response, AgentError> {
        let mut line = serde_json::to_vec(request).expect("requests serialize");
        line.push(b'\n');
        let w = tls.get_mut();
        w.write_all(&line)
            .and_then(|()| w.flush())
            .map_err(|e| self.tls_error(e))?;
        let mut answer = String::new();
        let n = tls
            .take(MAX_LINE)
            .read_line(&mut answer)
            .map_err(|e| self.tls_error(e))?;
        if n == 0 {
            return Err(AgentError::Protocol {
                addr: self.addr.clone(),
                detail: "the connection closed without an answer".into(),
            });
        }
        match serde_json::from_str(&answer) {
            Ok(Response::Error { kind, message }) => Err(AgentError::Refused {
                addr: self.addr.clone(),
                kind,
                message,
            }),
            Ok(r) => Ok(r),
            Err(e) => Err(AgentError::Protocol {
                addr: self.addr.clone(),
                detail: format!("unreadable answer: {e}"),
            }),
        }
    }

    fn unexpected(&self, r: Response) -> AgentError {
        AgentError::Protocol {
            addr: self.addr.clone(),
            detail: format!("unexpected answer {r:?}"),
        }
    }

    /// The cluster's name, from its agent's hello (no certificate needed).
    pub fn hello(&self) -> Result<String, AgentError> {
        Ok(self.connect_named()?.1)
    }

    /// Joins as `node` with `token`: a new key stays here, the cluster signs its CSR.
    pub fn join(&self, token: &str, node: &str) -> Result<Joined, AgentError> {
        let (key, csr) = pki::issue::node_key_and_csr(node)
            .map_err(|e| AgentError::Certificate(e.to_string()))?;
        let mut tls = self.connect()?;
        let request = Request::Join {
            token: token.to_string(),
            node: node.to_string(),
            csr,
        };
        match self.call(&mut tls, &request)? {
            Response::Joined { certificate, ca } => {
                // The CA handed over must be the one pinned.
                let der = tls::cert_from_pem(&ca, "the cluster's CA")?;
                if tls::ca_hash(&der)? != self.ca_hash {
                    return Err(AgentError::CaMismatch {
                        addr: self.addr.clone(),
                    });
                }
                Ok(Joined {
                    certificate,
                    key,
                    ca,
                })
            }
            other => Err(self.unexpected(other)),
        }
    }

    /// Starts a peer-check server on the first node; returns `HOST:PORT` for `rpc::peer`.
    pub fn peer_server(&self) -> Result<String, AgentError> {
        let mut tls = self.connect()?;
        let port = match self.call(&mut tls, &Request::Peer)? {
            Response::Peer { port } => port,
            other => return Err(self.unexpected(other)),
        };
        let ip = tls
            .get_ref()
            .sock
            .peer_addr()
            .map_err(|e| self.io("the agent's address", e))?
            .ip();
        Ok(SocketAddr::new(ip, port).to_string())
    }

    /// This node's Kubernetes credentials: new keys stay here (kubelet's client and serving
    /// keys, kube-proxy's), the cluster signs their CSRs. The keys come back in the order of
    /// [`NodeKubeKeys`].
    pub fn kubernetes(
        &self,
        node: &str,
        ips: &[std::net::IpAddr],
    ) -> Result<(KubeCredentials, NodeKubeKeys), AgentError> {
        let key_and_csr = || {
            pki::issue::node_key_and_csr(node).map_err(|e| AgentError::Certificate(e.to_string()))
        };
        let (kubelet_client, kubelet_client_csr) = key_and_csr()?;
        let (kubelet_serving, kubelet_serving_csr) = key_and_csr()?;
        let (kube_proxy, kube_proxy_csr) = key_and_csr()?;
        let mut tls = self.connect()?;
        let request = Request::Kubernetes {
            kubelet_client_csr,
            kubelet_serving_csr,
            kube_proxy_csr,
            ips: ips.to_vec(),
        };
        match self.call(&mut tls, &request)? {
            Response::Kubernetes(creds) => Ok((
                creds,
                NodeKubeKeys {
                    kubelet_client,
                    kubelet_serving,
                    kube_proxy,
                },
            )),
            other => Err(self.unexpected(other)),
        }
    }

    /// Has the first node run the application's `hook` for this node; whether the application
    /// defines it. Waits as long as a hook may run.
    pub fn node_hook(&self, hook: NodeHook) -> Result<bool, AgentError> {
        let mut tls = self.connect_waiting(HOOK_TIMEOUT)?;
        match self.call(&mut tls, &Request::NodeHook { hook })? {
            Response::HookDone { ran } => Ok(ran),
            other => Err(self.unexpected(other)),
        }
    }

    /// Asks to make this node a control plane node with its etcd member at `peer_url`:
    /// `None` when it joins as a worker. Waits while another node's member is being added.
    pub fn control_plane(
        &self,
        peer_url: &str,
        pinned: bool,
    ) -> Result<Option<ControlPlaneJoin>, AgentError> {
        let mut tls = self.connect_waiting(LONG_CALL)?;
        let request = Request::ControlPlane {
            peer_url: peer_url.to_string(),
            pinned,
        };
        match self.call(&mut tls, &request)? {
            Response::ControlPlane(join) => Ok(Some(join)),
            Response::Worker { .. } => Ok(None),
            other => Err(self.unexpected(other)),
        }
    }

    /// Has the cluster promote this node's etcd learner (once it caught up).
    pub fn promote(&self) -> Result<(), AgentError> {
        let mut tls = self.connect_waiting(LONG_CALL)?;
        match self.call(&mut tls, &Request::Promote)? {
            Response::Promoted => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    /// Has the cluster cordon this node and evict its pods; whether it had the node to drain.
    pub fn drain(&self) -> Result<bool, AgentError> {
        let mut tls = self.connect_waiting(LONG_CALL)?;
        match self.call(&mut tls, &Request::Drain)? {
            Response::Drained { drained } => Ok(drained),
            other => Err(self.unexpected(other)),
        }
    }

    /// Has the cluster make this node schedulable again; whether it had the node.
    pub fn uncordon(&self) -> Result<bool, AgentError> {
        let mut tls = self.connect()?;
        match self.call(&mut tls, &Request::Uncordon)? {
            Response::Uncordoned { uncordoned } => Ok(uncordoned),
            other => Err(self.unexpected(other)),
        }
    }

    /// Says what this node runs and how its upgrade step goes; what the cluster wants it to
    /// run, if anything new, and where its apiservers are.
    pub fn sync(&self, runs: &str, step: Option<Step>) -> Result<Synced, AgentError> {
        let mut tls = self.connect()?;
        let request = Request::Sync {
            runs: runs.to_string(),
            step,
        };
        match self.call(&mut tls, &request)? {
            Response::Sync { target, apiservers } => Ok(Synced { target, apiservers }),
            other => Err(self.unexpected(other)),
        }
    }

    /// Has the cluster remove this node's etcd member; whether there was one.
    pub fn remove_member(&self) -> Result<bool, AgentError> {
        let mut tls = self.connect()?;
        match self.call(&mut tls, &Request::RemoveMember)? {
            Response::MemberRemoved { removed } => Ok(removed),
            other => Err(self.unexpected(other)),
        }
    }

    /// Asks the cluster to forget this node (an undone join).
    pub fn leave(&self) -> Result<(), AgentError> {
        let mut tls = self.connect()?;
        match self.call(&mut tls, &Request::Leave)? {
            Response::Left { .. } => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    /// The cluster's name, version, image index and what the node shares with it, its profile
    /// included: `role` if it asks for one (needs the node's certificate).
    pub fn cluster(&self, role: Option<&str>) -> Result<ClusterInfo, AgentError> {
        let mut tls = self.connect()?;
        let request = Request::Cluster {
            role: role.map(str::to_string),
            version: self.version.clone(),
        };
        match self.call(&mut tls, &request)? {
            Response::Cluster(info) => Ok(info),
            other => Err(self.unexpected(other)),
        }
    }

    /// Fetches the image's `path` into `dest`, checked against `sha256`: a `<dest>.part` left
    /// by a cut transfer is continued, not restarted. `progress` hears the bytes so far.
    pub fn fetch(
        &self,
        path: &str,
        sha256: &str,
        dest: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Fetched, AgentError> {
        let part = PathBuf::from(format!("{}.part", dest.display()));
        let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        let mut tls = self.connect()?;
        let request = Request::Fetch {
            path: path.to_string(),
            offset: have,
            version: self.version.clone(),
        };
        let (size, offset) = match self.call(&mut tls, &request)? {
            Response::Data { size, offset, .. } => (size, offset),
            other => return Err(self.unexpected(other)),
        };
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| self.io("creating the download directory", e))?;
        }
        let mut out = std::fs::File::options()
            .create(true)
            .append(offset > 0)
            .write(true)
            .truncate(offset == 0)
            .open(&part)
            .map_err(|e| self.io(&format!("writing {}", part.display()), e))?;
        let mut done = offset;
        let mut buf = vec![0u8; 256 << 10];
        let mut body = (&mut tls).take(size - offset);
        loop {
            let n = body.read(&mut buf).map_err(|e| self.tls_error(e))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])
                .map_err(|e| self.io(&format!("writing {}", part.display()), e))?;
            done += n as u64;
            progress(done, size);
        }
        if done != size {
            return Err(self.io(
                &format!("fetching {path}"),
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("cut at {done} of {size} bytes; run again to continue"),
                ),
            ));
        }
        out.sync_all()
            .map_err(|e| self.io("syncing the download", e))?;
        drop(out);
        let got =
            hash_file(&part).map_err(|e| self.io(&format!("reading {}", part.display()), e))?;
        if !sha256.is_empty() && got != sha256 {
            let _ = std::fs::remove_file(&part);
            return Err(AgentError::Damaged {
                addr: self.addr.clone(),
                path: path.to_string(),
                got,
                want: sha256.to_string(),
            });
        }
        std::fs::rename(&part, dest)
            .map_err(|e| self.io(&format!("moving {} into place", dest.display()), e))?;
        Ok(Fetched {
            path: dest.to_path_buf(),
            size,
            resumed_from: offset,
        })
    }
}

fn hash_file(path: &Path) -> io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}
