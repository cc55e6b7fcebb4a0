//! TLS 1.3 for the join agent: the server's configuration, the joining node's (which trusts
//! the cluster CA only by the hash it was given, as kubeadm does), and that hash.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use sha2::{Digest, Sha256};

use super::AgentError;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `sha256:<hex>` of the certificate's SubjectPublicKeyInfo (the form of kubeadm's
/// `--discovery-token-ca-cert-hash`, so the same CA gives the same hash in both).
pub fn ca_hash(cert: &CertificateDer<'_>) -> Result<String, AgentError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| AgentError::Certificate(format!("cannot parse the CA certificate: {e}")))?;
    let spki = parsed.tbs_certificate.subject_pki.raw;
    Ok(format!("sha256:{}", hex::encode(Sha256::digest(spki))))
}

/// The first certificate of a PEM text.
pub fn cert_from_pem(pem: &str, what: &str) -> Result<CertificateDer<'static>, AgentError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| AgentError::Certificate(format!("{what} is not a PEM certificate: {e}")))
}

pub fn key_from_pem(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, AgentError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| AgentError::Certificate(format!("{what} is not a PEM private key: {e}")))
}

/// The agent's server: TLS 1.3 only, its certificate chain ending in the cluster CA (the
/// joining node pins that CA by hash), client certificates of the cluster CA verified when
/// presented. A client without one may only ask to join; the server enforces that per request.
pub fn server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<ServerConfig>, AgentError> {
    let ca = cert_from_pem(ca_pem, "the cluster CA")?;
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.clone())
        .map_err(|e| AgentError::Certificate(format!("the cluster CA: {e}")))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| AgentError::Certificate(format!("the client verifier: {e}")))?;
    let chain = vec![cert_from_pem(cert_pem, "the agent's certificate")?, ca];
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| AgentError::Certificate(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key_from_pem(key_pem, "the agent's key")?)
        .map_err(|e| AgentError::Certificate(format!("the agent's certificate and key: {e}")))?;
    Ok(Arc::new(config))
}

/// A joining node's client: TLS 1.3 only, the server trusted only if its chain carries a CA
/// whose hash is `ca_hash` and its certificate verifies against that CA. With `identity`
/// (certificate and key PEM), the node authenticates with its own certificate.
pub fn client_config(
    ca_hash: &str,
    identity: Option<(&str, &str)>,
) -> Result<Arc<ClientConfig>, AgentError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| AgentError::Certificate(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCa {
            hash: ca_hash.to_string(),
            provider: provider(),
        }));
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![cert_from_pem(cert, "the node's certificate")?],
                key_from_pem(key, "the node's key")?,
            )
            .map_err(|e| AgentError::Certificate(format!("the node's certificate: {e}")))?,
    };
    Ok(Arc::new(config))
}

/// What the client learns when the pin does not match: rustls carries only the error's text.
pub const PIN_MISMATCH: &str = "the server's CA does not match --ca-hash";

#[derive(Debug)]
struct PinnedCa {
    hash: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| ca_hash(c).is_ok_and(|h| h == self.hash))
            .ok_or_else(|| rustls::Error::General(PIN_MISMATCH.into()))?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        webpki.verify_server_cert(end_entity, &[], server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
