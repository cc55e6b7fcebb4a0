//! Registry credentials from Docker's `config.json`, as `docker login` leaves them: inline
//! `auths` entries and credential helpers (`credsStore`, `credHelpers`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use crate::error::Error;
use crate::reference::DOCKER_HUB;

/// The key `docker login` uses for Docker Hub.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(skip)]
    path: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperReply {
    username: String,
    secret: String,
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`; none at all means anonymous.
    pub fn load_default() -> Result<DockerConfig, Error> {
        let path = match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) => PathBuf::from(dir).join("config.json"),
            None => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(".docker/config.json"),
                None => return Ok(DockerConfig::default()),
            },
        };
        if !path.exists() {
            return Ok(DockerConfig::default());
        }
        DockerConfig::load(&path)
    }

    pub fn load(path: &Path) -> Result<DockerConfig, Error> {
        let bytes = std::fs::read(path).map_err(Error::io(path))?;
        let mut config: DockerConfig = serde_json::from_slice(&bytes)
            .map_err(|e| Error::layout(path, format!("not a Docker config.json: {e}")))?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// The credentials for `registry` (a host[:port] as in [`crate::reference::ImageRef`]).
    pub fn auth_for(&self, registry: &str) -> Result<RegistryAuth, Error> {
        let here = || {
            self.path
                .clone()
                .unwrap_or_else(|| PathBuf::from("config.json"))
        };
        if let Some(helper) = self.cred_helpers.get(registry) {
            return helper_get(helper, registry).map_err(|r| Error::layout(&here(), r));
        }
        if let Some(entry) = self
            .auths
            .iter()
            .find(|(k, _)| normalize_key(k) == registry)
            .map(|(_, v)| v)
        {
            return entry_auth(entry, registry).map_err(|r| Error::layout(&here(), r));
        }
        if let Some(helper) = &self.creds_store {
            return helper_get(helper, registry).map_err(|r| Error::layout(&here(), r));
        }
        Ok(RegistryAuth::Anonymous)
    }
}

/// `https://index.docker.io/v1/` -> `docker.io`, `https://host:5000/v2/` -> `host:5000`.
fn normalize_key(key: &str) -> String {
    let host = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        h => h.to_string(),
    }
}

fn entry_auth(e: &AuthEntry, registry: &str) -> Result<RegistryAuth, String> {
    if let Some(token) = &e.registrytoken {
        return Ok(RegistryAuth::Bearer(token.clone()));
    }
    if e.identitytoken.is_some() {
        return Err(format!(
            "the login for {registry} is an identity token (OAuth refresh token), which tele cannot use: log in with a username and password or access token"
        ));
    }
    if let (Some(u), Some(p)) = (&e.username, &e.password) {
        return Ok(RegistryAuth::Basic(u.clone(), p.clone()));
    }
    let Some(auth) = &e.auth else {
        return Ok(RegistryAuth::Anonymous);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|e| format!("the auth for {registry} is not base64: {e}"))?;
    let text =
        String::from_utf8(decoded).map_err(|_| format!("the auth for {registry} is not UTF-8"))?;
    let (u, p) = text
        .split_once(':')
        .ok_or_else(|| format!("the auth for {registry} is not user:password"))?;
    Ok(RegistryAuth::Basic(u.to_string(), p.to_string()))
}

/// Runs `docker-credential-<helper> get` with the server on standard input.
fn helper_get(helper: &str, registry: &str) -> Result<RegistryAuth, String> {
    let program = format!("docker-credential-{helper}");
    let server = if registry == DOCKER_HUB {
        DOCKER_HUB_KEY
    } else {
        registry
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run the credential helper {program}: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(server.as_bytes())
        .map_err(|e| format!("{program}: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // Helpers answer "credentials not found" when there is no login: that is anonymous.
        if stdout.contains("credentials not found") {
            return Ok(RegistryAuth::Anonymous);
        }
        return Err(format!(
            "{program} get {server} failed: {}{}",
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let reply: HelperReply = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{program} answered something that is not credentials: {e}"))?;
    if reply.username == "<token>" {
        return Err(format!(
            "{program} holds an identity token for {server}, which tele cannot use: log in with a username and password or access token"
        ));
    }
    Ok(RegistryAuth::Basic(reply.username, reply.secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> DockerConfig {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(&p, json).unwrap();
        DockerConfig::load(&p).unwrap()
    }

    #[test]
    fn inline_auths_match_normalized_hosts() {
        let c = config(
            r#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"},
                "127.0.0.1:5000": {"username": "a", "password": "b"},
                "https://quay.io": {"registrytoken": "tok"}
            }}"#,
        );
        assert_eq!(
            c.auth_for("docker.io").unwrap(),
            RegistryAuth::Basic("user".into(), "pass".into())
        );
        assert_eq!(
            c.auth_for("127.0.0.1:5000").unwrap(),
            RegistryAuth::Basic("a".into(), "b".into())
        );
        assert_eq!(
            c.auth_for("quay.io").unwrap(),
            RegistryAuth::Bearer("tok".into())
        );
        assert_eq!(c.auth_for("ghcr.io").unwrap(), RegistryAuth::Anonymous);
    }

    #[test]
    fn identity_tokens_are_refused_with_advice() {
        let c = config(r#"{"auths": {"ghcr.io": {"identitytoken": "x"}}}"#);
        let e = c.auth_for("ghcr.io").unwrap_err().to_string();
        assert!(
            e.contains("identity token") && e.contains("config.json"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_helper_is_named() {
        let c = config(r#"{"credHelpers": {"gcr.io": "no-such-helper-xyz"}}"#);
        let e = c.auth_for("gcr.io").unwrap_err().to_string();
        assert!(e.contains("docker-credential-no-such-helper-xyz"), "{e}");
    }
}
