//! Fields that may name a URI get their content at build time, so install never needs a network.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::types::Manifest;
use super::validate::Finding;

/// Fetches `http(s)://` content. The library does no networking itself; `tele` supplies this.
pub trait Fetch {
    fn fetch(&self, url: &str) -> Result<Vec<u8>, String>;
}

/// For reading manifests where nothing may be fetched.
pub struct Offline;

impl Fetch for Offline {
    fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        Err(format!(
            "{url} is not fetched here: remote content is fetched by `tele build`"
        ))
    }
}

pub fn is_uri(value: &str) -> bool {
    ["file://", "https://", "http://"]
        .iter()
        .any(|scheme| value.starts_with(scheme))
}

fn is_remote(value: &str) -> bool {
    value.starts_with("https://") || value.starts_with("http://")
}

/// What a resolved field came from, for the build log and for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSource {
    pub field: String,
    pub uri: String,
    pub bytes: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Content {
    Text,
    /// Remote logos stay URLs; local ones become `data:` URLs.
    Logo,
}

fn visit_uri_fields(m: &mut Manifest, mut visit: impl FnMut(String, &mut String, Content)) {
    if let Some(v) = m.release_notes.as_mut() {
        visit("releaseNotes".into(), v, Content::Text);
    }
    if let Some(v) = m.logo.as_mut() {
        visit("logo".into(), v, Content::Logo);
    }
    if let Some(installer) = m.installer.as_mut() {
        if let Some(eula) = installer.eula.as_mut() {
            visit(
                "installer.eula.source".into(),
                &mut eula.source,
                Content::Text,
            );
        }
        if let Some(v) = installer
            .flavors
            .as_mut()
            .and_then(|f| f.description.as_mut())
        {
            visit("installer.flavors.description".into(), v, Content::Text);
        }
    }
    if let Some(tf) = m
        .providers
        .as_mut()
        .and_then(|p| p.aws.as_mut())
        .and_then(|a| a.terraform.as_mut())
    {
        if let Some(v) = tf.script.as_mut() {
            visit("providers.aws.terraform.script".into(), v, Content::Text);
        }
        if let Some(v) = tf.instance_script.as_mut() {
            visit(
                "providers.aws.terraform.instanceScript".into(),
                v,
                Content::Text,
            );
        }
    }
    for (i, profile) in m.node_profiles.iter_mut().enumerate() {
        if let Some(r) = profile.requirements.as_mut() {
            for (j, check) in r.custom_checks.iter_mut().enumerate() {
                let path = format!("nodeProfiles[{i}].requirements.customChecks[{j}].script");
                visit(path, &mut check.script, Content::Text);
            }
        }
    }
    if let Some(hooks) = m.hooks.as_mut() {
        for (name, hook) in hooks.iter_mut() {
            visit(format!("hooks.{name}.job"), &mut hook.job, Content::Text);
        }
    }
}

/// Replaces every URI field with its content. Returns what was resolved, or the failures.
pub fn resolve(
    m: &mut Manifest,
    base_dir: &Path,
    fetch: &dyn Fetch,
) -> Result<Vec<ResolvedSource>, Vec<Finding>> {
    let mut sources = Vec::new();
    let mut failures = Vec::new();
    visit_uri_fields(m, |field, value, content| {
        if !is_uri(value) || (content == Content::Logo && is_remote(value)) {
            return;
        }
        let uri = value.clone();
        let bytes = if let Some(rest) = uri.strip_prefix("file://") {
            let path = local_path(base_dir, rest);
            std::fs::read(&path).map_err(|e| format!("cannot read {uri} ({}): {e}", path.display()))
        } else {
            fetch
                .fetch(&uri)
                .map_err(|e| format!("cannot fetch {uri}: {e}"))
        };
        let resolved = bytes.and_then(|bytes| {
            let len = bytes.len();
            let text = match content {
                Content::Logo => data_url(&uri, &bytes),
                Content::Text => {
                    String::from_utf8(bytes).map_err(|_| format!("{uri} is not UTF-8 text"))?
                }
            };
            Ok((text, len))
        });
        match resolved {
            Ok((text, len)) => {
                *value = text;
                sources.push(ResolvedSource {
                    field,
                    uri,
                    bytes: len,
                });
            }
            Err(message) => failures.push(Finding {
                path: field,
                message,
            }),
        }
    });
    if failures.is_empty() {
        Ok(sources)
    } else {
        Err(failures)
    }
}

/// `file://notes.html` is relative to the manifest's directory; `file:///abs` is absolute.
fn local_path(base_dir: &Path, rest: &str) -> PathBuf {
    if rest.starts_with('/') {
        PathBuf::from(rest)
    } else {
        base_dir.join(rest)
    }
}

fn data_url(uri: &str, bytes: &[u8]) -> String {
    let ext = uri.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    let mime = match ext.as_str() {
        "svg" => "image/svg+xml",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        _ => "image/png",
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    format!("url(data:{mime};base64,{encoded})")
}
