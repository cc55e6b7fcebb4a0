use std::fmt::Write as _;

use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;
use x509_parser::prelude::*;

use super::*;

fn request() -> Request {
    Request {
        node_name: "node-1".into(),
        node_ips: vec!["10.0.0.5".parse().unwrap()],
        service_ip: "10.100.0.1".parse().unwrap(),
        cluster_domain: "cluster.local".into(),
        apiserver_url: "https://10.0.0.5:6443".into(),
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

/// What a reviewer checks of one certificate: subject, CA or not, usages, SANs, validity,
/// and that the CA's key signed it.
fn describe(pem: &[u8], ca_der: &[u8], out: &mut String) {
    let (_, pem) = parse_x509_pem(pem).unwrap();
    let (_, cert) = X509Certificate::from_der(&pem.contents).unwrap();
    let (_, ca) = X509Certificate::from_der(ca_der).unwrap();
    cert.verify_signature(Some(ca.public_key()))
        .expect("signed by the CA");
    writeln!(out, "  subject: {}", cert.subject()).unwrap();
    writeln!(out, "  issuer: {}", cert.issuer()).unwrap();
    writeln!(out, "  ca: {}", cert.is_ca()).unwrap();
    if let Ok(Some(ku)) = cert.key_usage() {
        writeln!(out, "  key usage: {}", ku.value).unwrap();
    }
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        let mut v = vec![];
        if eku.value.server_auth {
            v.push("server auth");
        }
        if eku.value.client_auth {
            v.push("client auth");
        }
        writeln!(out, "  extended key usage: {}", v.join(", ")).unwrap();
    }
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                GeneralName::IPAddress(b) if b.len() == 4 => {
                    format!("IP:{}", std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                }
                other => format!("{other:?}"),
            })
            .collect();
        writeln!(out, "  SANs: {}", names.join(", ")).unwrap();
    }
    let v = cert.validity();
    writeln!(
        out,
        "  valid: {} days, from 1 h before",
        (v.not_after.timestamp() - now().unix_timestamp()) / 86400
    )
    .unwrap();
    assert_eq!(v.not_before.timestamp(), now().unix_timestamp() - 3600);
}

fn kubeconfig_field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .unwrap()
        .trim()
}

#[test]
fn the_generated_pki_matches_the_golden_summary() {
    let pki = generate(&request(), now()).unwrap();
    golden::check_in(
        env!("CARGO_MANIFEST_DIR"),
        "pki-summary.txt",
        &summary(&pki),
    );
}

#[test]
fn another_control_plane_node_shares_the_ca_and_service_account_keys_only() {
    let first = generate(&request(), now()).unwrap();
    let text = |n: &str| String::from_utf8(first.file(n).unwrap().contents.clone()).unwrap();
    let secrets = Secrets {
        ca_crt: text("ca.crt"),
        ca_key: text("ca.key"),
        sa_key: text("sa.key"),
    };
    // For the same node it is what the first node's own is, the CA's signature included.
    let again = generate_member(&request(), &secrets, now()).unwrap();
    assert_eq!(summary(&again), summary(&first));
    let second = Request {
        node_name: "node-2".into(),
        node_ips: vec!["10.0.0.6".parse().unwrap()],
        apiserver_url: "https://10.0.0.6:6443".into(),
        ..request()
    };
    let member = generate_member(&second, &secrets, now()).unwrap();
    let summary = summary(&member);
    assert!(
        summary.contains("IP:10.0.0.6") && !summary.contains("10.0.0.5"),
        "{summary}"
    );
    assert!(
        summary.contains("CN=node-2") && !summary.contains("node-1"),
        "{summary}"
    );
    for f in &member.files {
        let shared = ["ca.crt", "ca.key", "sa.key", "sa.pub"].contains(&f.name.as_str());
        let same = first.file(&f.name).unwrap().contents == f.contents;
        assert_eq!(same, shared, "{}", f.name);
    }
    assert_eq!(format!("{secrets:?}"), "Secrets { .. }");
}

/// Every file's mode and, for certificates (also those in kubeconfigs), what [`describe`]
/// says, each checked to be signed by the PKI's CA.
fn summary(pki: &Pki) -> String {
    let names: Vec<&str> = pki.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, FILE_NAMES);
    let (_, ca_pem) = parse_x509_pem(&pki.file("ca.crt").unwrap().contents).unwrap();
    let ca_der = ca_pem.contents.clone();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = String::new();
    for f in &pki.files {
        writeln!(out, "{} {:o}", f.name, f.mode).unwrap();
        let text = std::str::from_utf8(&f.contents).unwrap();
        if f.name.ends_with(".crt") {
            describe(&f.contents, &ca_der, &mut out);
        } else if f.name.ends_with(".key") {
            assert_eq!(f.mode, 0o600);
            assert!(
                text.starts_with("-----BEGIN PRIVATE KEY-----"),
                "{}",
                f.name
            );
        } else if f.name == "sa.pub" {
            assert!(text.starts_with("-----BEGIN PUBLIC KEY-----"));
        } else if f.name.ends_with(".kubeconfig") {
            assert_eq!(f.mode, 0o600);
            writeln!(out, "  server: {}", kubeconfig_field(text, "server:")).unwrap();
            writeln!(
                out,
                "  current-context: {}",
                kubeconfig_field(text, "current-context:")
            )
            .unwrap();
            let ca = b64
                .decode(kubeconfig_field(text, "certificate-authority-data:"))
                .unwrap();
            assert_eq!(ca, pki.file("ca.crt").unwrap().contents);
            let cert = b64
                .decode(kubeconfig_field(text, "client-certificate-data:"))
                .unwrap();
            describe(&cert, &ca_der, &mut out);
            let key = b64
                .decode(kubeconfig_field(text, "client-key-data:"))
                .unwrap();
            assert!(key.starts_with(b"-----BEGIN PRIVATE KEY-----"));
        }
    }
    out
}

#[test]
fn write_makes_keys_0600_and_the_directory_0700() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = dir.path().join("pki");
    let pki = generate(&request(), now()).unwrap();
    assert!(!Pki::complete_in(&pki_dir));
    pki.write(&pki_dir).unwrap();
    assert!(Pki::complete_in(&pki_dir));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&pki_dir), 0o700);
    for f in &pki.files {
        assert_eq!(mode(&pki_dir.join(&f.name)), f.mode, "{}", f.name);
        assert_eq!(std::fs::read(pki_dir.join(&f.name)).unwrap(), f.contents);
    }
}

#[test]
fn debug_output_never_shows_key_material() {
    let pki = generate(&request(), now()).unwrap();
    let text = format!("{pki:?}");
    assert!(!text.contains("PRIVATE"), "{text}");
    assert!(text.contains("ca.key"));
}

/// A joined node's kubelet and kube-proxy credentials, signed from its CSRs, are what the
/// first node's own are: the same subjects, usages and names, so the apiserver's Node
/// authorizer and RBAC treat both alike.
#[test]
fn a_joined_nodes_credentials_match_the_first_nodes() {
    use crate::issue::{Ca, NodeCredential, node_key_and_csr};
    let pki = generate(&request(), now()).unwrap();
    let text = |n: &str| String::from_utf8(pki.file(n).unwrap().contents.clone()).unwrap();
    let (_, ca_pem) = parse_x509_pem(pki.file("ca.crt").unwrap().contents.as_slice()).unwrap();
    let ca = Ca::from_pem(&text("ca.crt"), &text("ca.key")).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let embedded = |kubeconfig: &str| {
        b64.decode(kubeconfig_field(
            &text(kubeconfig),
            "client-certificate-data:",
        ))
        .unwrap()
    };
    let summary = |pem: &[u8]| {
        let mut out = String::new();
        describe(pem, &ca_pem.contents, &mut out);
        out
    };
    let (_, csr) = node_key_and_csr("node-1").unwrap();
    let ips = vec!["10.0.0.5".parse().unwrap()];
    for (which, own) in [
        (
            NodeCredential::KubeletClient,
            embedded("kubelet.kubeconfig"),
        ),
        (NodeCredential::KubeProxy, embedded("kube-proxy.kubeconfig")),
        (
            NodeCredential::KubeletServing { ips },
            pki.file("kubelet.crt").unwrap().contents.clone(),
        ),
    ] {
        let signed = ca.sign_credential(&csr, "node-1", &which, now()).unwrap();
        assert_eq!(summary(signed.as_bytes()), summary(&own), "{which:?}");
    }
}
