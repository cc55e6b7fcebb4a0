//! The join plan against a real join agent on loopback (TLS, tokens, the transfer), with the
//! joining host's checks over the recording fakes: what a join leaves on both sides, a
//! resumed transfer, and a rollback that both sides forget.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use super::plan::{self, JoinParams, Start};
use crate::effects::fake::FakeHost;
use crate::install::tests::{Phases, cluster_image_version};
use crate::state_dir::StateDir;

/// The first node's side: its CA and agent, serving an example image.
struct First {
    dir: tempfile::TempDir,
    hash: String,
    _agent: rpc::agent::ServerHandle,
    addr: String,
}

impl First {
    fn new() -> First {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("image");
        cluster_image_version(&image, "1.0.0", "test-1", "");
        let pki = pki::generate_now(&pki::Request {
            node_name: "first".into(),
            node_ips: vec![IpAddr::from([127, 0, 0, 1])],
            service_ip: IpAddr::from([10, 100, 0, 1]),
            cluster_domain: "cluster.local".into(),
            apiserver_url: "https://127.0.0.1:6443".into(),
        })
        .unwrap();
        let text = |n: &str| String::from_utf8(pki.file(n).unwrap().contents.clone()).unwrap();
        let ca = pki::issue::Ca::from_pem(&text("ca.crt"), &text("ca.key")).unwrap();
        let (cert, key) = ca
            .agent_server(
                &[IpAddr::from([127, 0, 0, 1])],
                time::OffsetDateTime::now_utc(),
            )
            .unwrap();
        let shared = rpc::agent::Shared {
            cluster: "example".into(),
            version: "1.0.0".into(),
            tls: rpc::agent::tls::server_config(&text("ca.crt"), &cert, &key).unwrap(),
            tokens: rpc::agent::tokens::TokenStore::new(&dir.path().join("agent/tokens.json")),
            ca,
            ca_pem: text("ca.crt"),
            image_dir: image,
            nodes_dir: dir.path().join("agent/nodes"),
            first_node: "first".into(),
            facts: rpc::agent::ClusterFacts {
                service_uid: 1001,
                service_gid: 1001,
                role: "node".into(),
                first_node_ip: Some(IpAddr::from([127, 0, 0, 1])),
                apiserver: None,
            },
            roles: rpc::agent::Roles::new(vec![], vec![], "node".into()),
            forget: None,
            node_hooks: None,
            control_plane: None,
            drain: None,
            uncordon: None,
            apiservers: None,
        };
        let server =
            rpc::agent::Server::bind(SocketAddr::from(([127, 0, 0, 1], 0)), shared).unwrap();
        let agent = server.spawn().unwrap();
        let der = rpc::agent::tls::cert_from_pem(&text("ca.crt"), "ca").unwrap();
        First {
            hash: rpc::agent::tls::ca_hash(&der).unwrap(),
            addr: agent.addr.to_string(),
            _agent: agent,
            dir,
        }
    }

    fn token(&self) -> String {
        rpc::agent::tokens::TokenStore::new(&self.dir.path().join("agent/tokens.json"))
            .create(None, true, "")
            .unwrap()
            .0
    }

    fn nodes(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("agent/nodes"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

fn params(first: &First) -> JoinParams {
    JoinParams {
        addr: first.addr.clone(),
        ca_hash: first.hash.clone(),
        node_name: "second".into(),
        role: None,
        advertise_ip: None,
        ignore_preflight_errors: vec![],
        mounts: vec![],
    }
}

fn tree(dir: &Path) -> Vec<String> {
    let mut out = vec![];
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn a_join_authenticates_fetches_checks_and_its_rollback_is_forgotten_on_both_sides() {
    let first = First::new();
    let tmp = tempfile::tempdir().unwrap();
    let host = FakeHost::new(&tmp.path().join("root"), true);
    let state = tmp.path().join("state");
    let token = first.token();

    // A transfer cut in the middle of a file: the join continues it.
    let image = first.dir.path().join("image");
    let big = "app.yaml";
    let part = state.join(format!("images/example-1.0.0/{big}.part"));
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    let whole = std::fs::read(image.join(big)).unwrap();
    std::fs::write(&part, &whole[..whole.len() / 2]).unwrap();

    let (ctx, plan) = plan::run(
        Start::New(params(&first)),
        &state,
        Some(token.clone()),
        host.effects(),
        &mut Phases(host.log.clone()),
    )
    .unwrap();
    assert_eq!(plan.state, operation::OpState::Completed);
    let layout = StateDir::new(&state);
    assert!(layout.node_cert().is_file() && layout.node_key().is_file());
    assert_eq!(first.nodes(), 1);
    let fetched = state.join("images/example-1.0.0");
    assert_eq!(
        std::fs::read(fetched.join(big)).unwrap(),
        whole,
        "the resumed file is the whole file"
    );
    assert!(!part.exists());
    cluster_image::archive::verify_dir(&fetched).unwrap();
    assert!(layout.join_checks_report().is_file());
    // Then the install's own steps set up this node: its record says whose it is, and its
    // planet runs no control plane of its own but uses the first node's.
    let record = crate::install::state::ClusterRecord::load(&layout)
        .unwrap()
        .expect("a cluster record");
    let joined = record.node.joined.expect("recorded as joined");
    assert_eq!(joined.control_plane, IpAddr::from([127, 0, 0, 1]));
    assert_eq!(record.service_uid, 1001);
    let config = planet::config::PlanetConfig::load(&state).unwrap();
    assert!(!config.node.control_plane());
    assert_eq!(config.node.registry_ip(), IpAddr::from([127, 0, 0, 1]));
    let log = host.lines().join("\n");
    assert!(log.contains("preflight node of example"), "{log}");
    // The token never reaches the journal.
    let journal = std::fs::read_to_string(state.join("operation/current.json")).unwrap();
    assert!(!journal.contains(token.split('.').nth(1).unwrap()));
    drop(ctx);

    // A second join from this state directory is refused: it holds a join already.
    let e = plan::run(
        Start::New(params(&first)),
        &state,
        Some(first.token()),
        host.effects(),
        &mut Phases(host.log.clone()),
    )
    .err()
    .unwrap();
    assert!(format!("{e:#}").contains("already holds a join"), "{e:#}");

    plan::rollback(&state, host.effects(), &mut Phases(host.log.clone())).unwrap();
    assert_eq!(first.nodes(), 0, "the cluster still records the node");
    let left: Vec<String> = tree(&state)
        .into_iter()
        .filter(|p| !p.starts_with("operation/"))
        .collect();
    assert!(left.is_empty(), "the rollback left {left:?}");
    // The single-use token works again.
    let again = rpc::agent::Client::new(&first.addr, &first.hash, None)
        .unwrap()
        .join(&token, "second");
    assert!(again.is_ok());
}

#[test]
fn a_resumed_join_without_a_certificate_needs_the_token_again() {
    let first = First::new();
    let tmp = tempfile::tempdir().unwrap();
    let host = FakeHost::new(&tmp.path().join("root"), true);
    let state = tmp.path().join("state");
    // Refused: an unknown token. The plan stays at its first phase.
    let e = plan::run(
        Start::New(params(&first)),
        &state,
        Some("abcdef.0123456789abcdef".into()),
        host.effects(),
        &mut Phases(host.log.clone()),
    )
    .err()
    .unwrap();
    assert!(format!("{e:#}").contains("unknown token"), "{e:#}");
    let e = plan::run(
        Start::Resume,
        &state,
        None,
        host.effects(),
        &mut Phases(host.log.clone()),
    )
    .err()
    .unwrap();
    assert!(format!("{e:#}").contains("pass the token again"), "{e:#}");
    plan::run(
        Start::Resume,
        &state,
        Some(first.token()),
        host.effects(),
        &mut Phases(host.log.clone()),
    )
    .unwrap();
    assert_eq!(first.nodes(), 1);
}
