//! Certificates issued after install from the cluster's CA on disk: the join agent's serving
//! certificate, and the client certificate of each node that joins (signed from its CSR, so
//! its key never leaves the node).

use std::net::IpAddr;

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::{Error, LEAF_VALIDITY_DAYS, dn, generate_key};

/// The organization of every node's client certificate: what the join agent authorizes.
pub const NODE_ORGANIZATION: &str = "gravity:nodes";

/// The cluster's CA, loaded to sign with.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// The CA of `ca.crt` and `ca.key` (PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, Error> {
        let key = KeyPair::from_pem(key_pem).map_err(|source| Error::Generate {
            name: "ca.key",
            source,
        })?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(|source| Error::Generate {
            name: "ca.crt",
            source,
        })?;
        Ok(Ca { issuer })
    }

    /// A serving certificate and key for the join agent, valid for `ips` and `localhost`.
    pub fn agent_server(
        &self,
        ips: &[IpAddr],
        now: OffsetDateTime,
    ) -> Result<(String, String), Error> {
        let name = "agent.crt";
        let key = generate_key(name)?;
        let mut p = leaf_params("gravity-agent", None, now);
        p.subject_alt_names = vec![SanType::DnsName(
            "localhost"
                .try_into()
                .map_err(|source| Error::Generate { name, source })?,
        )];
        p.subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p
            .signed_by(&key, &self.issuer)
            .map_err(|source| Error::Generate { name, source })?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Signs a node's CSR as the client certificate of `node`: the subject and usages are the
    /// CA's choice, only the public key comes from the request (whose signature proves the
    /// node holds the key).
    pub fn sign_node(
        &self,
        csr_pem: &str,
        node: &str,
        now: OffsetDateTime,
    ) -> Result<String, Error> {
        let mut p = leaf_params(node, Some(NODE_ORGANIZATION), now);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign_key_of("node.crt", csr_pem, p)
    }

    /// Signs `params` for the public key of a CSR (PEM), whose signature proves that its
    /// sender holds the private key.
    fn sign_key_of(
        &self,
        name: &'static str,
        csr_pem: &str,
        params: CertificateParams,
    ) -> Result<String, Error> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|source| Error::Generate { name, source })?;
        let signed = CertificateSigningRequestParams {
            params,
            public_key: csr.public_key,
        };
        let cert = signed
            .signed_by(&self.issuer)
            .map_err(|source| Error::Generate { name, source })?;
        Ok(cert.pem())
    }
}

/// What a joined node's Kubernetes daemons authenticate with, each from a CSR of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeCredential {
    /// kubelet's client certificate: `system:node:<node>` in `system:nodes`, as the apiserver's
    /// Node authorizer expects.
    KubeletClient,
    /// kubelet's serving certificate, for the node's name and addresses.
    KubeletServing { ips: Vec<IpAddr> },
    /// kube-proxy's client certificate (`system:kube-proxy` in `system:node-proxier`).
    KubeProxy,
}

impl Ca {
    /// Signs a node's CSR as one of its Kubernetes credentials: as with [`Ca::sign_node`],
    /// the subject, names and usages are the CA's choice, only the key is the node's.
    pub fn sign_credential(
        &self,
        csr_pem: &str,
        node: &str,
        which: &NodeCredential,
        now: OffsetDateTime,
    ) -> Result<String, Error> {
        let name = match which {
            NodeCredential::KubeletClient => "kubelet-client.crt",
            NodeCredential::KubeletServing { .. } => "kubelet.crt",
            NodeCredential::KubeProxy => "kube-proxy.crt",
        };
        let user = format!("system:node:{node}");
        let mut p = match which {
            NodeCredential::KubeletClient => leaf_params(&user, Some("system:nodes"), now),
            NodeCredential::KubeletServing { .. } => leaf_params(node, None, now),
            NodeCredential::KubeProxy => {
                leaf_params("system:kube-proxy", Some("system:node-proxier"), now)
            }
        };
        if let NodeCredential::KubeletServing { ips } = which {
            for dns in [node, "localhost"] {
                p.subject_alt_names.push(SanType::DnsName(
                    dns.try_into()
                        .map_err(|source| Error::Generate { name, source })?,
                ));
            }
            let mut ips = ips.clone();
            ips.push(IpAddr::from([127, 0, 0, 1]));
            ips.dedup();
            p.subject_alt_names
                .extend(ips.into_iter().map(SanType::IpAddress));
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        } else {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        self.sign_key_of(name, csr_pem, p)
    }
}

/// A new key for node `node` and its certificate signing request (PEM each).
pub fn node_key_and_csr(node: &str) -> Result<(String, String), Error> {
    let name = "node.key";
    let key = generate_key(name)?;
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(node, Some(NODE_ORGANIZATION));
    let csr = p
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(|source| Error::Generate { name, source })?;
    Ok((key.serialize_pem(), csr))
}

fn leaf_params(cn: &str, org: Option<&str>, now: OffsetDateTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn, org);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.use_authority_key_identifier_extension = true;
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(LEAF_VALIDITY_DAYS);
    p
}
