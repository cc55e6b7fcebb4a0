//! The protocol over real TLS on loopback: a cluster's agent, joining clients, and every
//! refusal the join must make.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use cluster_image::archive::{ImageIndex, IndexEntry, Kind};
use sha2::{Digest, Sha256};

use std::sync::{Arc, Mutex};

use super::tokens::{TokenError, TokenStore};
use super::*;

struct Cluster {
    dir: tempfile::TempDir,
    ca_pem: String,
    ca_key: String,
    hash: String,
    handle: ServerHandle,
    members: Arc<Recorder>,
}

/// etcd's membership as a list of what was asked: two members at most unless pinned.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
}

impl Members for Recorder {
    fn add(&self, node: &str, peer_url: &str, pinned: bool) -> Result<Option<String>, String> {
        let mut calls = self.calls.lock().unwrap();
        let members = calls.iter().filter(|c| c.starts_with("add ")).count() + 1;
        calls.push(format!("add {node} {peer_url} {pinned}"));
        Ok((members < 3 || pinned)
            .then(|| format!("first=https://127.0.0.1:2380,{node}={peer_url}")))
    }
    fn promote(&self, node: &str) -> Result<(), String> {
        self.calls.lock().unwrap().push(format!("promote {node}"));
        Ok(())
    }
    fn remove(&self, node: &str) -> Result<bool, String> {
        self.calls.lock().unwrap().push(format!("remove {node}"));
        Ok(true)
    }
}

const PAYLOAD_LEN: usize = 3 << 20;

fn payload() -> Vec<u8> {
    (0..PAYLOAD_LEN).map(|i| (i * 7 % 251) as u8).collect()
}

fn pki_of(name: &str) -> (String, String) {
    let req = pki::Request {
        node_name: name.into(),
        node_ips: vec![IpAddr::from([127, 0, 0, 1])],
        service_ip: IpAddr::from([10, 100, 0, 1]),
        cluster_domain: "cluster.local".into(),
        apiserver_url: "https://127.0.0.1:6443".into(),
    };
    let pki = pki::generate_now(&req).unwrap();
    let text = |n: &str| String::from_utf8(pki.file(n).unwrap().contents.clone()).unwrap();
    (text("ca.crt"), text("ca.key"))
}

fn image(dir: &Path, version: &str) {
    let data = payload();
    std::fs::create_dir_all(dir.join("planet")).unwrap();
    std::fs::write(dir.join("planet/rootfs.tar"), &data).unwrap();
    let index = ImageIndex {
        format: 1,
        name: "test".into(),
        version: version.into(),
        files: vec![IndexEntry {
            path: "planet/rootfs.tar".into(),
            kind: Kind::File,
            mode: 0o644,
            size: data.len() as u64,
            sha256: hex::encode(Sha256::digest(&data)),
            target: None,
        }],
    };
    std::fs::write(dir.join("index.json"), index.to_json()).unwrap();
}

fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, ca_key) = pki_of("first");
    let ca = pki::issue::Ca::from_pem(&ca_pem, &ca_key).unwrap();
    let (cert, key) = ca
        .agent_server(
            &[IpAddr::from([127, 0, 0, 1])],
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
    image(&dir.path().join("image"), "1.0.0");
    let members = Arc::new(Recorder::default());
    let shared = Shared {
        cluster: "test".into(),
        version: "1.0.0".into(),
        tls: tls::server_config(&ca_pem, &cert, &key).unwrap(),
        tokens: TokenStore::new(&dir.path().join("agent/tokens.json")),
        ca,
        ca_pem: ca_pem.clone(),
        image_dir: dir.path().join("image"),
        nodes_dir: dir.path().join("agent/nodes"),
        first_node: "first".into(),
        facts: ClusterFacts {
            service_uid: 1001,
            service_gid: 1002,
            role: "node".into(),
            first_node_ip: Some(IpAddr::from([127, 0, 0, 1])),
            apiserver: Some("https://127.0.0.1:6443".into()),
        },
        roles: Roles::new(vec![], vec![], "node".into()),
        forget: None,
        node_hooks: None,
        control_plane: Some(ControlPlane {
            secrets: pki::Secrets {
                ca_crt: ca_pem.clone(),
                ca_key: ca_key.clone(),
                sa_key: "sa key".into(),
            },
            members: Box::new(members.clone()),
        }),
        drain: Some({
            let members = members.clone();
            Box::new(move |node: &str| {
                members.calls.lock().unwrap().push(format!("drain {node}"));
                Ok(true)
            })
        }),
        uncordon: Some({
            let members = members.clone();
            Box::new(move |node: &str| {
                members
                    .calls
                    .lock()
                    .unwrap()
                    .push(format!("uncordon {node}"));
                Ok(true)
            })
        }),
        apiservers: Some(Box::new(|| {
            vec![
                SocketAddr::from(([10, 0, 0, 1], 6443)),
                SocketAddr::from(([10, 0, 0, 2], 6443)),
            ]
        })),
    };
    let server = Server::bind(SocketAddr::from(([127, 0, 0, 1], 0)), shared).unwrap();
    let handle = server.spawn().unwrap();
    let hash = tls::ca_hash(&tls::cert_from_pem(&ca_pem, "ca").unwrap()).unwrap();
    Cluster {
        dir,
        ca_pem,
        ca_key,
        hash,
        handle,
        members,
    }
}

impl Cluster {
    fn tokens(&self) -> TokenStore {
        TokenStore::new(&self.dir.path().join("agent/tokens.json"))
    }
    fn token(&self, single_use: bool) -> String {
        self.tokens()
            .create(Some(Duration::from_secs(3600)), single_use, "test")
            .unwrap()
            .0
    }
    fn addr(&self) -> String {
        self.handle.addr.to_string()
    }
    fn client(&self) -> Client {
        Client::new(&self.addr(), &self.hash, None).unwrap()
    }
    fn joined_nodes(&self) -> Vec<String> {
        match std::fs::read_dir(self.dir.path().join("agent/nodes")) {
            Ok(d) => d
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => vec![],
        }
    }
}

fn refused_kind(e: AgentError) -> (ErrorKind, String) {
    match e {
        AgentError::Refused { kind, message, .. } => (kind, message),
        other => panic!("expected a refusal, got: {other}"),
    }
}

#[test]
fn a_staged_upgrade_is_served_beside_the_installed_version_and_nothing_else() {
    let c = cluster();
    let joined = c.client().join(&c.token(false), "node-2").unwrap();
    let node = Client::new(&c.addr(), &c.hash, Some((&joined.certificate, &joined.key))).unwrap();
    let next = node.for_version("1.1.0");
    let (kind, message) = refused_kind(next.cluster(None).unwrap_err());
    assert_eq!(kind, ErrorKind::NotFound, "{message}");
    assert!(
        message.contains("runs test 1.0.0 and has no upgrade to 1.1.0 under way"),
        "{message}"
    );

    let staged_dir = c.dir.path().join("image-next");
    image(&staged_dir, "1.1.0");
    let rollout = rollout::Rollout::of(&c.dir.path().join("agent/nodes"));
    rollout
        .stage(&rollout::Staged {
            version: "1.1.0".into(),
            image_dir: staged_dir.clone(),
        })
        .unwrap();
    let info = next.cluster(None).unwrap();
    assert_eq!(info.version, "1.1.0");
    assert!(info.index.contains("\"1.1.0\""), "{}", info.index);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("rootfs.tar");
    let entry = ImageIndex::from_json(info.index.as_bytes(), Path::new("index.json")).unwrap();
    let entry = entry.get("planet/rootfs.tar").unwrap();
    next.fetch(&entry.path, &entry.sha256, &dest, &mut |_, _| {})
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), payload());
    // The installed version is what a client without a version, or asking for it, gets.
    assert_eq!(node.cluster(None).unwrap().version, "1.0.0");
    assert_eq!(
        node.for_version("1.0.0").cluster(None).unwrap().version,
        "1.0.0"
    );
    let (kind, _) = refused_kind(node.for_version("1.2.0").cluster(None).unwrap_err());
    assert_eq!(kind, ErrorKind::NotFound);
    // Only what the staged image's index lists.
    let (kind, _) = refused_kind(
        next.fetch("../image/index.json", "", &dest, &mut |_, _| {})
            .unwrap_err(),
    );
    assert_eq!(kind, ErrorKind::NotFound);
    rollout.unstage().unwrap();
    assert_eq!(
        refused_kind(next.cluster(None).unwrap_err()).0,
        ErrorKind::NotFound
    );
}

#[test]
fn a_node_joins_then_fetches_with_its_certificate_and_resumes_a_cut_transfer() {
    let c = cluster();
    let token = c.token(false);
    let joined = c.client().join(&token, "node-2").unwrap();
    assert!(joined.certificate.contains("BEGIN CERTIFICATE"));
    assert_eq!(joined.ca, c.ca_pem);
    assert_eq!(c.joined_nodes(), vec!["node-2.json".to_string()]);
    // Asking again (a lost answer) is not a second use; only the certificate of the last
    // answer is the node's.
    let joined = c.client().join(&token, "node-2").unwrap();
    let uses = &c.tokens().list().unwrap()[0].uses;
    assert_eq!(uses.len(), 1);
    assert_eq!(uses[0].node, "node-2");

    let node = Client::new(&c.addr(), &c.hash, Some((&joined.certificate, &joined.key))).unwrap();
    let info = node.cluster(None).unwrap();
    assert_eq!(
        (info.name.as_str(), info.version.as_str()),
        ("test", "1.0.0")
    );
    assert_eq!(info.facts.service_uid, 1001);
    // Its profile: the first node's by default; one it asks for is kept for it.
    assert_eq!(info.facts.role, "node");
    assert_eq!(node.cluster(Some("db")).unwrap().facts.role, "db");
    assert_eq!(node.cluster(None).unwrap().facts.role, "db");
    assert_eq!(
        info.facts.apiserver.as_deref(),
        Some("https://127.0.0.1:6443")
    );
    let index = ImageIndex::from_json(info.index.as_bytes(), Path::new("index.json")).unwrap();
    let entry = index.get("planet/rootfs.tar").unwrap();

    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("planet/rootfs.tar");
    // A transfer cut after its first MiB: the next fetch continues from there.
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::write(
        out.path().join("planet/rootfs.tar.part"),
        &payload()[..1 << 20],
    )
    .unwrap();
    let mut last = 0;
    let fetched = node
        .fetch(&entry.path, &entry.sha256, &dest, &mut |done, _| {
            last = done
        })
        .unwrap();
    assert_eq!(fetched.resumed_from, 1 << 20);
    assert_eq!(last, PAYLOAD_LEN as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), payload());
    assert!(!out.path().join("planet/rootfs.tar.part").exists());

    // Peer checks against the first node, through a server it starts on request.
    let peer = node.peer_server().unwrap();
    let mut client = crate::peer::Client::connect(&peer, Duration::from_secs(5)).unwrap();
    assert!(client.clock(3).is_ok());

    // A damaged partial file is caught by the index's hash and removed.
    std::fs::write(
        out.path().join("planet/rootfs.tar.part"),
        vec![0u8; 1 << 20],
    )
    .unwrap();
    let e = node
        .fetch(&entry.path, &entry.sha256, &dest, &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(e, AgentError::Damaged { .. }), "{e}");
    assert!(!out.path().join("planet/rootfs.tar.part").exists());

    // Only the image's own files are served.
    for path in ["../agent/tokens.json", "/etc/passwd", "planet"] {
        let e = node
            .fetch(path, "", &out.path().join("x"), &mut |_, _| {})
            .unwrap_err();
        assert_eq!(refused_kind(e).0, ErrorKind::NotFound, "{path}");
    }
}

#[test]
fn a_wrong_ca_hash_is_refused_before_the_token_is_sent() {
    let c = cluster();
    let token = c.token(true);
    let (other_ca, _) = pki_of("elsewhere");
    let other_hash = tls::ca_hash(&tls::cert_from_pem(&other_ca, "ca").unwrap()).unwrap();
    let e = Client::new(&c.addr(), &other_hash, None)
        .unwrap()
        .join(&token, "node-2")
        .unwrap_err();
    assert!(matches!(e, AgentError::CaMismatch { .. }), "{e}");
    assert!(e.to_string().contains("nothing was sent"), "{e}");
    // The single-use token was never seen: it still works.
    assert!(c.tokens().list().unwrap()[0].uses.is_empty());
    c.client().join(&token, "node-2").unwrap();

    let e = Client::new(&c.addr(), "sha256:abc", None).err().unwrap();
    assert!(e.to_string().contains("64 hex digits"), "{e}");
}

#[test]
fn unknown_expired_revoked_and_replayed_tokens_are_refused_and_leave_nothing() {
    let c = cluster();
    let refused = |token: &str| {
        let e = c.client().join(token, "node-9").unwrap_err();
        let (kind, message) = refused_kind(e);
        assert_eq!(kind, ErrorKind::Token, "{message}");
        message
    };
    assert!(refused("abcdef.0123456789abcdef").contains("unknown token"));
    assert!(refused("not-a-token").contains("unknown token"));
    // The right id with a wrong secret is just as unknown.
    let good = c.token(false);
    let id = good.split('.').next().unwrap();
    assert!(refused(&format!("{id}.0000000000000000")).contains("unknown token"));

    let (short, _) = c
        .tokens()
        .create(Some(Duration::from_secs(1)), false, "")
        .unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    assert!(refused(&short).contains("expired"));

    c.tokens().revoke(id).unwrap();
    assert!(refused(&good).contains("revoked"));

    let once = c.token(true);
    c.client().join(&once, "node-2").unwrap();
    let message = refused(&once);
    assert!(
        message.contains("one use only") && message.contains("node-2"),
        "{message}"
    );

    // Only node-2's successful join left anything on the cluster's side.
    assert_eq!(c.joined_nodes(), vec!["node-2.json".to_string()]);
    let store = std::fs::metadata(c.tokens().path()).unwrap();
    assert_eq!(store.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(c.tokens().path()).unwrap();
    let secret = once.split('.').nth(1).unwrap();
    assert!(!text.contains(secret), "the token store holds hashes only");
}

#[test]
fn requests_without_a_node_certificate_or_with_another_clusters_are_refused() {
    let c = cluster();
    let e = c.client().cluster(None).unwrap_err();
    assert_eq!(refused_kind(e).0, ErrorKind::Unauthenticated);
    let e = c.client().peer_server().unwrap_err();
    assert_eq!(refused_kind(e).0, ErrorKind::Unauthenticated);
    let e = c
        .client()
        .fetch("index.json", "", &c.dir.path().join("x"), &mut |_, _| {})
        .unwrap_err();
    assert_eq!(refused_kind(e).0, ErrorKind::Unauthenticated);

    // A node certificate signed by another cluster's CA.
    let (other_ca, other_key) = pki_of("elsewhere");
    let other = pki::issue::Ca::from_pem(&other_ca, &other_key).unwrap();
    let (key, csr) = pki::issue::node_key_and_csr("intruder").unwrap();
    let cert = other
        .sign_node(&csr, "intruder", time::OffsetDateTime::now_utc())
        .unwrap();
    let e = Client::new(&c.addr(), &c.hash, Some((&cert, &key)))
        .unwrap()
        .cluster(None)
        .unwrap_err();
    assert!(matches!(e, AgentError::CertificateRefused { .. }), "{e}");

    // A certificate of this cluster's CA that is not a node's (no gravity:nodes organization).
    let ca = pki::issue::Ca::from_pem(&c.ca_pem, &c.ca_key).unwrap();
    let (server_cert, server_key) = ca
        .agent_server(
            &[IpAddr::from([127, 0, 0, 1])],
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
    let e = Client::new(&c.addr(), &c.hash, Some((&server_cert, &server_key)))
        .unwrap()
        .cluster(None);
    assert!(e.is_err(), "a serving certificate is no node's identity");
}

#[test]
fn bad_node_names_are_refused_and_keep_the_token() {
    let c = cluster();
    let token = c.token(true);
    for name in ["", "Node_2", "-x", &"a".repeat(64)] {
        let e = c.client().join(&token, name);
        // Names the CSR cannot even carry fail on the node before anything is sent.
        if let Err(AgentError::Refused { kind, .. }) = &e {
            assert_eq!(*kind, ErrorKind::Invalid, "{name}");
        } else {
            assert!(e.is_err(), "{name}");
        }
    }
    assert!(c.tokens().list().unwrap()[0].uses.is_empty());
    assert!(c.joined_nodes().is_empty());
}

#[test]
fn token_store_lists_without_secrets_and_revokes_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = TokenStore::new(&dir.path().join("tokens.json"));
    assert!(store.list().unwrap().is_empty());
    let (token, record) = store.create(None, false, "for the lab").unwrap();
    let (id, secret) = token.split_once('.').unwrap();
    assert_eq!((id.len(), secret.len()), (6, 16));
    assert_eq!(record.id, id);
    assert_eq!(record.expires, None);
    assert_eq!(record.state(tokens::now()), "valid");
    assert!(matches!(
        store.revoke("zzzzzz"),
        Err(TokenError::NoSuchId(_))
    ));
    assert_eq!(store.revoke(&token).unwrap().state(0), "revoked");
    assert!(matches!(
        store.redeem(&token, "n"),
        Err(TokenError::Revoked { .. })
    ));
}

#[test]
fn joins_at_the_same_time_all_end_well_and_a_single_use_token_admits_one() {
    let c = cluster();
    let token = c.token(false);
    let once = c.token(true);
    let (addr, hash) = (c.addr(), c.hash.clone());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (addr, hash, token, once) =
                (addr.clone(), hash.clone(), token.clone(), once.clone());
            std::thread::spawn(move || {
                let client = Client::new(&addr, &hash, None).unwrap();
                let joined = client.join(&token, &format!("node-{i}")).is_ok();
                let raced = client.join(&once, &format!("racer-{i}")).is_ok();
                (joined, raced)
            })
        })
        .collect();
    let results: Vec<(bool, bool)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(results.iter().all(|(joined, _)| *joined), "{results:?}");
    assert_eq!(
        results.iter().filter(|(_, raced)| *raced).count(),
        1,
        "{results:?}"
    );
    let tokens = c.tokens().list().unwrap();
    assert_eq!(tokens.iter().map(|t| t.uses.len()).sum::<usize>(), 9);
    assert_eq!(c.joined_nodes().len(), 9);
}

/// kubelet's and kube-proxy's certificates come for the name the node's own certificate
/// carries, whatever the node asks; they verify against the cluster CA.
#[test]
fn a_joined_node_gets_kubernetes_credentials_for_its_own_name() {
    let c = cluster();
    let joined = c.client().join(&c.token(false), "node-2").unwrap();
    let node = Client::new(&c.addr(), &c.hash, Some((&joined.certificate, &joined.key))).unwrap();
    let ips = [IpAddr::from([10, 0, 0, 7])];
    let (creds, keys) = node.kubernetes("intruder", &ips).unwrap();
    let subject = |pem: &str| {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents).unwrap();
        cert.subject().to_string()
    };
    assert_eq!(
        subject(&creds.kubelet_client),
        "O=system:nodes, CN=system:node:node-2"
    );
    assert_eq!(subject(&creds.kubelet_serving), "CN=node-2");
    assert_eq!(
        subject(&creds.kube_proxy),
        "O=system:node-proxier, CN=system:kube-proxy"
    );
    assert!(keys.kubelet_client.contains("PRIVATE KEY"));
    // Each certificate carries the key the node kept.
    let signed_key = |cert: &str, key: &str| {
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents).unwrap();
        let key = rcgen::KeyPair::from_pem(key).unwrap();
        cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw()
    };
    assert!(signed_key(&creds.kubelet_client, &keys.kubelet_client));
    assert!(signed_key(&creds.kubelet_serving, &keys.kubelet_serving));
    assert!(signed_key(&creds.kube_proxy, &keys.kube_proxy));
    // A stranger without a certificate gets nothing.
    let e = c.client().kubernetes("node-2", &ips).unwrap_err();
    assert_eq!(refused_kind(e).0, ErrorKind::Unauthenticated);
}

/// etcd members are added, promoted and removed (and nodes drained) for the name the node's
/// certificate carries;
/// the cluster's secrets go to control plane nodes only, and only to nodes with a certificate.
#[test]
fn control_plane_nodes_get_the_shared_secrets_and_an_etcd_member_of_their_own_name() {
    let c = cluster();
    let node = |name: &str| {
        let joined = c.client().join(&c.token(false), name).unwrap();
        Client::new(&c.addr(), &c.hash, Some((&joined.certificate, &joined.key))).unwrap()
    };
    let second = node("second");
    let join = second
        .control_plane("https://10.0.0.2:2380", false)
        .unwrap()
        .expect("the second node runs the control plane");
    assert_eq!(join.ca_key, c.ca_key);
    assert_eq!(join.sa_key, "sa key");
    assert_eq!(
        join.initial_cluster,
        "first=https://127.0.0.1:2380,second=https://10.0.0.2:2380"
    );
    assert!(!format!("{join:?}").contains("PRIVATE"), "{join:?}");
    second.promote().unwrap();
    // The third is one too; a fourth is a worker unless its profile pins it.
    let third = node("third");
    assert!(
        third
            .control_plane("https://10.0.0.3:2380", false)
            .unwrap()
            .is_some()
    );
    let fourth = node("fourth");
    assert!(
        fourth
            .control_plane("https://10.0.0.4:2380", false)
            .unwrap()
            .is_none()
    );
    assert!(
        fourth
            .control_plane("https://10.0.0.4:2380", true)
            .unwrap()
            .is_some()
    );
    assert!(second.drain().unwrap());
    assert!(second.remove_member().unwrap());
    // Nonsense peer URLs, and strangers, are refused before etcd is asked.
    let e = third
        .control_plane("http://10.0.0.3:2380", false)
        .unwrap_err();
    assert_eq!(refused_kind(e).0, ErrorKind::Invalid);
    let e = c
        .client()
        .control_plane("https://10.0.0.9:2380", false)
        .unwrap_err();
    assert_eq!(refused_kind(e).0, ErrorKind::Unauthenticated);
    let e = c.client().remove_member().unwrap_err();
    assert_eq!(refused_kind(e).0, ErrorKind::Unauthenticated);
    assert_eq!(
        *c.members.calls.lock().unwrap(),
        [
            "add second https://10.0.0.2:2380 false",
            "promote second",
            "add third https://10.0.0.3:2380 false",
            "add fourth https://10.0.0.4:2380 false",
            "add fourth https://10.0.0.4:2380 true",
            "drain second",
            "remove second",
        ]
    );
}

/// A rolling upgrade's exchange: a joined node's agent says what it runs and gets its target;
/// the report is kept for the first node's upgrade; a node that left is told so.
#[test]
fn a_joined_nodes_agent_syncs_its_upgrade_target_and_reports_its_steps() {
    use super::rollout::{Action, Rollout, Step, StepState, Target};
    let c = cluster();
    let joined = c.client().join(&c.token(false), "second").unwrap();
    let second = Client::new(&c.addr(), &c.hash, Some((&joined.certificate, &joined.key))).unwrap();
    let nodes = c.dir.path().join("agent/nodes");
    let rollout = Rollout::of(&nodes);
    let synced = second.sync("1.0.0", None).unwrap();
    assert_eq!(synced.target, None);
    // Where the apiservers are, for a worker's proxy.
    assert_eq!(
        synced.apiservers,
        [
            SocketAddr::from(([10, 0, 0, 1], 6443)),
            SocketAddr::from(([10, 0, 0, 2], 6443))
        ]
    );
    let report = rollout.report("second").unwrap().expect("a report");
    assert_eq!((report.runs.as_str(), report.step), ("1.0.0", None));
    let target = Target {
        ignore_preflight_errors: vec!["ports".into()],
        ..Target::new("op-1", Action::Upgrade, "1.1.0")
    };
    rollout.set_target("second", &target).unwrap();
    let step = Step {
        operation: "op-1".into(),
        action: Action::Upgrade,
        state: StepState::Running,
        message: "fetching".into(),
    };
    assert_eq!(
        second.sync("1.0.0", Some(step.clone())).unwrap().target,
        Some(target)
    );
    assert_eq!(rollout.report("second").unwrap().unwrap().step, Some(step));
    assert!(second.uncordon().unwrap());
    assert!(
        c.members
            .calls
            .lock()
            .unwrap()
            .contains(&"uncordon second".to_string())
    );
    // Strangers get nothing; a node that left is told it is no member.
    let e = c.client().sync("1.0.0", None).unwrap_err();
    assert_eq!(refused_kind(e).0, ErrorKind::Unauthenticated);
    second.leave().unwrap();
    assert_eq!(rollout.target("second").unwrap(), None);
    let e = second.sync("1.0.0", None).unwrap_err();
    assert_eq!(refused_kind(e).0, ErrorKind::NotFound);
}

#[test]
fn a_forgotten_node_or_an_earlier_join_of_its_name_is_refused_its_certificate() {
    let c = cluster();
    let token = c.token(false);
    let first = c.client().join(&token, "node-2").unwrap();
    let old = Client::new(&c.addr(), &c.hash, Some((&first.certificate, &first.key))).unwrap();
    old.cluster(None).unwrap();

    // The cluster forgets the node (a master's `gravity remove`): its certificate, still
    // valid under the CA, asks for nothing any more, except to leave, which changes nothing.
    let nodes_dir = c.dir.path().join("agent/nodes");
    assert!(forget_joined(&nodes_dir, &c.tokens(), "node-2").unwrap());
    let e = old.cluster(None).unwrap_err();
    assert!(e.node_forgotten(), "{e}");
    let (kind, message) = refused_kind(e);
    assert_eq!(kind, ErrorKind::NotFound);
    assert!(message.contains("not a member of the cluster"), "{message}");
    let e = old.sync("1.0.0", None).unwrap_err();
    assert!(e.node_forgotten(), "{e}");
    old.leave().unwrap();
    assert!(c.joined_nodes().is_empty());

    // The name joins again: only the new certificate speaks for it.
    let again = c.client().join(&token, "node-2").unwrap();
    let new = Client::new(&c.addr(), &c.hash, Some((&again.certificate, &again.key))).unwrap();
    new.cluster(None).unwrap();
    let (kind, message) = refused_kind(old.cluster(None).unwrap_err());
    assert_eq!(kind, ErrorKind::Unauthenticated);
    assert!(message.contains("joined again since"), "{message}");
    // Nor may the old one make the cluster forget the new node.
    refused_kind(old.leave().unwrap_err());
    assert_eq!(c.joined_nodes(), vec!["node-2.json".to_string()]);
}
