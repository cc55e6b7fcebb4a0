//! The cluster's PKI, generated on the first node at install: one CA (ECDSA P-256, rcgen on
//! ring, the tree's one crypto provider), the serving and client certificates of
//! kube-apiserver, kubelet and etcd, the components' client certificates, the service-account
//! key pair, and kubeconfigs with everything embedded.
//!
//! [`generate`] makes it in memory; [`Pki::write`] writes every file under one directory:
//! keys and kubeconfigs 0600, certificates and the service-account public key 0644. Nothing
//! here logs: key material only ever goes to those files.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// How long the CA is valid.
pub const CA_VALIDITY_DAYS: i64 = 3650;
/// How long every other certificate is valid (no rotation yet: long enough for now).
pub const LEAF_VALIDITY_DAYS: i64 = 1825;

/// What the certificates are made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The node's name (Kubernetes node name, etcd member name).
    pub node_name: String,
    /// The node's addresses, the advertise address first.
    pub node_ips: Vec<IpAddr>,
    /// The first address of the service CIDR: the `kubernetes` Service's cluster IP.
    pub service_ip: IpAddr,
    /// The cluster DNS domain, e.g. `cluster.local`.
    pub cluster_domain: String,
    /// The URL clients use to reach kube-apiserver, e.g. `https://10.0.0.5:6443`.
    pub apiserver_url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("generating the certificate or key {name}: {source}")]
    Generate {
        name: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("writing {path}: {source}; check that the state directory is writable")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One generated file.
#[derive(Clone, PartialEq, Eq)]
pub struct File {
    /// Name under the PKI directory, e.g. `apiserver.crt`.
    pub name: String,
    pub contents: Vec<u8>,
    /// 0o600 for secrets (keys, kubeconfigs), 0o644 for the rest.
    pub mode: u32,
}

impl fmt::Debug for File {
    // Never the contents: they may be a private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("name", &self.name)
            .field("len", &self.contents.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

/// Every file of the PKI, in a fixed order.
#[derive(Debug, Clone)]
pub struct Pki {
    pub files: Vec<File>,
}

impl Pki {
    /// The file called `name`.
    pub fn file(&self, name: &str) -> Option<&File> {
        self.files.iter().find(|f| f.name == name)
    }

    /// Writes every file into `dir` (made 0700), each atomically and durably with its mode
    /// from the first byte on.
    pub fn write(&self, dir: &Path) -> Result<(), Error> {
        durable::create_private_dir(dir).map_err(|source| Error::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        for f in &self.files {
            let path = dir.join(&f.name);
            durable::write_atomic_mode(&path, &f.contents, f.mode)
                .map_err(|source| Error::Write { path, source })?;
        }
        Ok(())
    }

    /// Whether every file is already in `dir` (a resumed install keeps the PKI it made).
    pub fn complete_in(dir: &Path) -> bool {
        FILE_NAMES.iter().all(|n| dir.join(n).is_file())
    }
}

/// The names of every file [`generate`] makes.
pub const FILE_NAMES: &[&str] = &[
    "ca.crt",
    "ca.key",
    "apiserver.crt",
    "apiserver.key",
    "apiserver-kubelet-client.crt",
    "apiserver-kubelet-client.key",
    "apiserver-etcd-client.crt",
    "apiserver-etcd-client.key",
    "kubelet.crt",
    "kubelet.key",
    "kubelet-client.crt",
    "kubelet-client.key",
    "etcd-server.crt",
    "etcd-server.key",
    "etcd-peer.crt",
    "etcd-peer.key",
    "etcdctl.crt",
    "etcdctl.key",
    "sa.key",
    "sa.pub",
    "admin.kubeconfig",
    "controller-manager.kubeconfig",
    "scheduler.kubeconfig",
    "kubelet.kubeconfig",
    "kube-proxy.kubeconfig",
];

const SECRET: u32 = 0o600;
const PUBLIC: u32 = 0o644;

struct Leaf<'a> {
    name: &'static str,
    common_name: &'a str,
    organization: Option<&'a str>,
    dns: Vec<String>,
    ips: Vec<IpAddr>,
    server: bool,
    client: bool,
}

fn generate_key(name: &'static str) -> Result<KeyPair, Error> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|source| Error::Generate { name, source })
}

fn dn(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Generates the whole PKI for `req`, valid from an hour ago (clocks of other nodes may lag).
pub fn generate_now(req: &Request) -> Result<Pki, Error> {
    generate(req, OffsetDateTime::now_utc())
}

/// What every control plane node of a cluster shares (PEM): the CA that signs, and the key
/// pair that signs service-account tokens. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets {
    pub ca_crt: String,
    pub ca_key: String,
    pub sa_key: String,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

impl Secrets {
    /// The secrets in `dir` (a control plane node's PKI directory).
    pub fn read(dir: &Path) -> std::io::Result<Secrets> {
        let read = |n: &str| std::fs::read_to_string(dir.join(n));
        Ok(Secrets {
            ca_crt: read("ca.crt")?,
            ca_key: read("ca.key")?,
            sa_key: read("sa.key")?,
        })
    }
}

/// Generates the whole PKI for `req` with a new CA and service-account key, valid from one
/// hour before `now`.
pub fn generate(req: &Request, now: OffsetDateTime) -> Result<Pki, Error> {
    let (ca_key, ca_params) = new_ca(now)?;
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(|source| Error::Generate {
            name: "ca.crt",
            source,
        })?;
    let ca_pem = ca_cert.pem();
    let sa = generate_key("sa.key")?;
    let secrets = Secrets {
        ca_crt: ca_pem,
        ca_key: ca_key.serialize_pem(),
        sa_key: sa.serialize_pem(),
    };
    issue_all(req, &secrets, Issuer::new(ca_params, ca_key), now)
}

/// Generates the PKI of another control plane node of the cluster whose `secrets` these are:
/// the same CA and service-account keys, every other certificate and key its own.
pub fn generate_member(
    req: &Request,
    secrets: &Secrets,
    now: OffsetDateTime,
) -> Result<Pki, Error> {
    let key = KeyPair::from_pem(&secrets.ca_key).map_err(|source| Error::Generate {
        name: "ca.key",
        source,
    })?;
    let issuer =
        Issuer::from_ca_cert_pem(&secrets.ca_crt, key).map_err(|source| Error::Generate {
            name: "ca.crt",
            source,
        })?;
    issue_all(req, secrets, issuer, now)
}

fn new_ca(now: OffsetDateTime) -> Result<(KeyPair, CertificateParams), Error> {
    let not_before = now - Duration::hours(1);
    let ca_key = generate_key("ca.key")?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = dn("gravity-ca", None);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = not_before;
    ca_params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
    Ok((ca_key, ca_params))
}

/// Every file of a node's PKI: the shared `secrets`, and the node's own certificates signed by
/// `issuer` (the CA of `secrets`).
fn issue_all(
    req: &Request,
    secrets: &Secrets,
    issuer: Issuer<'_, KeyPair>,
    now: OffsetDateTime,
) -> Result<Pki, Error> {
    let not_before = now - Duration::hours(1);
    let ca_pem = secrets.ca_crt.clone();
    let mut files = vec![
        File {
            name: "ca.crt".into(),
            contents: ca_pem.clone().into_bytes(),
            mode: PUBLIC,
        },
        File {
            name: "ca.key".into(),
            contents: secrets.ca_key.clone().into_bytes(),
            mode: SECRET,
        },
    ];

    let node = req.node_name.as_str();
    let loopback: IpAddr = [127, 0, 0, 1].into();
    let mut node_ips = req.node_ips.clone();
    node_ips.push(loopback);
    node_ips.dedup();
    let domain = &req.cluster_domain;
    let apiserver_dns = vec![
        node.to_string(),
        "localhost".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        format!("kubernetes.default.svc.{domain}"),
    ];
    let mut apiserver_ips = node_ips.clone();
    apiserver_ips.push(req.service_ip);
    let node_dns = vec![node.to_string(), "localhost".into()];
    let node_user = format!("system:node:{node}");

    let leaves = [
        Leaf {
            name: "apiserver",
            common_name: "kube-apiserver",
            organization: None,
            dns: apiserver_dns,
            ips: apiserver_ips,
            server: true,
            client: false,
        },
        Leaf {
            name: "apiserver-kubelet-client",
            common_name: "kube-apiserver-kubelet-client",
            organization: Some("system:masters"),
            dns: vec![],
            ips: vec![],
            server: false,
            client: true,
        },
        Leaf {
            name: "apiserver-etcd-client",
            common_name: "kube-apiserver-etcd-client",
            organization: None,
            dns: vec![],
            ips: vec![],
            server: false,
            client: true,
        },
        Leaf {
            name: "kubelet",
            common_name: node,
            organization: None,
            dns: node_dns.clone(),
            ips: node_ips.clone(),
            server: true,
            client: false,
        },
        Leaf {
            name: "kubelet-client",
            common_name: &node_user,
            organization: Some("system:nodes"),
            dns: vec![],
            ips: vec![],
            server: false,
            client: true,
        },
        Leaf {
            name: "etcd-server",
            common_name: node,
            organization: None,
            dns: node_dns.clone(),
            ips: node_ips.clone(),
            server: true,
            client: true,
        },
        Leaf {
            name: "etcd-peer",
            common_name: node,
            organization: None,
            dns: node_dns,
            ips: node_ips,
            server: true,
            client: true,
        },
        Leaf {
            name: "etcdctl",
            common_name: "etcdctl",
            organization: None,
            dns: vec![],
            ips: vec![],
            server: false,
            client: true,
        },
    ];
    for leaf in &leaves {
        let (cert, key) = sign(&issuer, leaf, not_before, now)?;
        files.push(File {
            name: format!("{}.crt", leaf.name),
            contents: cert.into_bytes(),
            mode: PUBLIC,
        });
        files.push(File {
            name: format!("{}.key", leaf.name),
            contents: key.into_bytes(),
            mode: SECRET,
        });
    }

    // Service-account tokens: kube-apiserver signs (ES256) with the private key and verifies
    // with the public one.
    let sa = KeyPair::from_pem(&secrets.sa_key).map_err(|source| Error::Generate {
        name: "sa.key",
        source,
    })?;
    files.push(File {
        name: "sa.key".into(),
        contents: secrets.sa_key.clone().into_bytes(),
        mode: SECRET,
    });
    files.push(File {
        name: "sa.pub".into(),
        contents: sa.public_key_pem().into_bytes(),
        mode: PUBLIC,
    });

    // kubeconfigs with their own client certificates, everything embedded.
    let users = [
        (
            "admin",
            "kubernetes-admin",
            Some("system:masters"),
            "admin.kubeconfig",
        ),
        (
            "controller-manager",
            "system:kube-controller-manager",
            None,
            "controller-manager.kubeconfig",
        ),
        (
            "scheduler",
            "system:kube-scheduler",
            None,
            "scheduler.kubeconfig",
        ),
        (
            "kubelet",
            node_user.as_str(),
            Some("system:nodes"),
            "kubelet.kubeconfig",
        ),
        (
            "kube-proxy",
            "system:kube-proxy",
            Some("system:node-proxier"),
            "kube-proxy.kubeconfig",
        ),
    ];
    for (name, cn, org, file) in users {
        let leaf = Leaf {
            name: "kubeconfig",
            common_name: cn,
            organization: org,
            dns: vec![],
            ips: vec![],
            server: false,
            client: true,
        };
        let (cert, key) = sign(&issuer, &leaf, not_before, now)?;
        files.push(File {
            name: file.into(),
            contents: kubeconfig(&req.apiserver_url, &ca_pem, name, &cert, &key).into_bytes(),
            mode: SECRET,
        });
    }
    Ok(Pki { files })
}

fn sign(
    issuer: &Issuer<'_, KeyPair>,
    leaf: &Leaf<'_>,
    not_before: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(String, String), Error> {
    let key = generate_key(leaf.name)?;
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(leaf.common_name, leaf.organization);
    p.subject_alt_names = leaf
        .dns
        .iter()
        .map(|d| {
            d.clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|source| Error::Generate {
                    name: leaf.name,
                    source,
                })
        })
        .collect::<Result<_, _>>()?;
    p.subject_alt_names
        .extend(leaf.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    if leaf.server {
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if leaf.client {
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    p.use_authority_key_identifier_extension = true;
    p.not_before = not_before;
    p.not_after = now + Duration::days(LEAF_VALIDITY_DAYS);
    let cert = p
        .signed_by(&key, issuer)
        .map_err(|source| Error::Generate {
            name: leaf.name,
            source,
        })?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A kubeconfig for `user` with the CA, client certificate and key embedded.
pub fn kubeconfig(server: &str, ca_pem: &str, user: &str, cert_pem: &str, key_pem: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: gravity
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: {user}@gravity
  context:
    cluster: gravity
    user: {user}
current-context: {user}@gravity
",
        ca = b64(ca_pem),
        cert = b64(cert_pem),
        key = b64(key_pem),
    )
}

pub mod issue;

#[cfg(test)]
mod tests;
