//! The join command a sysadmin copies to another host: the agent's address, a token, and
//! the hash that pins the cluster's CA.

use anyhow::Context;
use rpc::agent::tokens::TokenStore;

use crate::state_dir::StateDir;

/// `sha256:...` of the cluster CA in `<state>/pki`.
pub fn ca_hash(layout: &StateDir) -> anyhow::Result<String> {
    let path = layout.pki().join("ca.crt");
    let pem = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the cluster CA {}", path.display()))?;
    let der = rpc::agent::tls::cert_from_pem(&pem, "the cluster CA")?;
    Ok(rpc::agent::tls::ca_hash(&der)?)
}

/// `gravity join ADDR --token=TOKEN --ca-hash=HASH`.
pub fn render(addr: &str, token: &str, ca_hash: &str) -> String {
    format!("gravity join {addr} --token={token} --ca-hash={ca_hash}")
}

pub fn tokens(layout: &StateDir) -> TokenStore {
    TokenStore::new(&layout.join_tokens())
}

/// The install's token, whole, while it can still be used.
pub fn install_token(layout: &StateDir) -> Option<String> {
    let token = std::fs::read_to_string(layout.join_token()).ok()?;
    let token = token.trim().to_string();
    let id = token.split('.').next()?;
    let now = rpc::agent::tokens::now();
    tokens(layout)
        .list()
        .ok()?
        .iter()
        .any(|t| t.id == id && t.state(now) == "valid")
        .then_some(token)
}
