//! Container image references: parsing with Docker's defaults, and the names images get in the
//! cluster's own registry.

use std::fmt;
use std::str::FromStr;

/// The registry a reference without a host names.
pub const DOCKER_HUB: &str = "docker.io";
/// Planet's registry as pods inside the cluster reach it.
pub const LOCAL_REGISTRY: &str = "registry.local:5000";

/// A normalized image reference: the registry host is explicit, Docker Hub's official images
/// carry `library/`, and a reference without tag or digest gets `latest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    /// `docker.io`, `quay.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// The repository path inside the registry: `library/nginx`, `bitnami/redis`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference `{reference}`: {reason}")]
pub struct ReferenceError {
    pub reference: String,
    pub reason: String,
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<ImageRef, ReferenceError> {
        let fail = |reason: &str| ReferenceError {
            reference: input.to_string(),
            reason: reason.to_string(),
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(fail("it is empty"));
        }
        if s.contains("{{") || s.contains('$') {
            return Err(fail(
                "it looks like a template or a variable, not a concrete image",
            ));
        }
        if s.len() > 512 {
            return Err(fail("it is longer than 512 characters"));
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(parse_digest(d).map_err(|r| fail(&r))?)),
            None => (s, None),
        };
        // A tag follows the last ':' that comes after the last '/' (a ':' before is a port).
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &name[last_slash + i + 1..];
                if !valid_tag(tag) {
                    return Err(fail(&format!(
                        "the tag `{tag}` must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
                    )));
                }
                (&name[..last_slash + i], Some(tag.to_string()))
            }
            None => (name, None),
        };
        let (registry, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                if !valid_host(first) {
                    return Err(fail(&format!("`{first}` is not a valid registry host")));
                }
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        if path.is_empty() {
            return Err(fail("the repository name is empty"));
        }
        if let Some(bad) = path.split('/').find(|c| !valid_path_component(c)) {
            return Err(fail(&format!(
                "the repository component `{bad}` must be lowercase letters and digits, separated by '.', '_', '__' or '-'"
            )));
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The repository as people write it: Docker Hub's `library/` dropped.
    pub fn familiar_repository(&self) -> &str {
        if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .filter(|r| !r.contains('/'))
                .unwrap_or(&self.repository)
        } else {
            &self.repository
        }
    }

    /// The same image in another registry, keeping the repository path (Gravity's rule: the
    /// source host is dropped, so `quay.io/bitnami/redis:5.0` becomes
    /// `registry.local:5000/bitnami/redis:5.0` and `nginx:1.11` `registry.local:5000/nginx:1.11`).
    pub fn in_registry(&self, registry: &str) -> ImageRef {
        ImageRef {
            registry: registry.to_string(),
            repository: self.familiar_repository().to_string(),
            tag: self.tag.clone(),
            digest: self.digest.clone(),
        }
    }

    /// Every name the image has in `registry`: [`ImageRef::in_registry`] and, for Docker Hub's
    /// official images, also the full path (`library/nginx`) that a registry mirror is asked
    /// for when a pod names the image as written upstream (`nginx:1.25`).
    pub fn names_in_registry(&self, registry: &str) -> Vec<ImageRef> {
        let short = self.in_registry(registry);
        let mut names = vec![short.clone()];
        if short.repository != self.repository {
            names.push(ImageRef {
                repository: self.repository.clone(),
                ..short
            });
        }
        names
    }

    /// The name pods use inside the cluster: `registry.local:5000/<repository>:<tag>`.
    pub fn local_name(&self) -> String {
        self.in_registry(LOCAL_REGISTRY).to_string()
    }

    /// The reference the OCI client resolves (it maps `docker.io` to Docker Hub's API host).
    pub fn to_oci(&self) -> oci_client::Reference {
        match (&self.tag, &self.digest) {
            (Some(t), Some(d)) => oci_client::Reference::with_tag_and_digest(
                self.registry.clone(),
                self.repository.clone(),
                t.clone(),
                d.clone(),
            ),
            (_, Some(d)) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                d.clone(),
            ),
            (t, None) => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                t.clone().unwrap_or_else(|| "latest".to_string()),
            ),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

/// Checks a `sha256:<hex>` digest; other algorithms are refused because the store verifies
/// SHA-256 only.
pub fn parse_digest(d: &str) -> Result<String, String> {
    match d.split_once(':') {
        Some(("sha256", hex))
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(d.to_string())
        }
        Some(("sha256", _)) => Err(format!(
            "the digest `{d}` must be sha256: followed by 64 lowercase hex digits"
        )),
        Some((alg, _)) => Err(format!(
            "the digest algorithm `{alg}` is not supported (only sha256)"
        )),
        None => Err(format!("`{d}` is not a digest (sha256:<hex>)")),
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_host(h: &str) -> bool {
    let (host, port) = match h.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || h.starts_with('[') => (host, Some(port)),
        _ => (h, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = if host.starts_with('[') {
        host.ends_with(']')
            && host[1..host.len() - 1]
                .parse::<std::net::Ipv6Addr>()
                .is_ok()
    } else {
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    port_ok && host_ok
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, Docker's rule for a repository path component.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_hub_defaults_apply() {
        let r = ImageRef::parse("nginx").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
        assert_eq!(r.local_name(), "registry.local:5000/nginx:latest");
        let names: Vec<String> = r
            .names_in_registry("10.0.0.5:5000")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            names,
            [
                "10.0.0.5:5000/nginx:latest",
                "10.0.0.5:5000/library/nginx:latest"
            ]
        );
        let r = ImageRef::parse("bitnami/redis:5.0").unwrap();
        assert_eq!(r.to_string(), "docker.io/bitnami/redis:5.0");
        assert_eq!(r.local_name(), "registry.local:5000/bitnami/redis:5.0");
        assert_eq!(
            ImageRef::parse("index.docker.io/library/nginx:1.11.0").unwrap(),
            ImageRef::parse("nginx:1.11.0").unwrap()
        );
    }

    #[test]
    fn other_registries_keep_their_path_and_lose_their_host_locally() {
        let r = ImageRef::parse("quay.io/gravitational/debian-tall:buster").unwrap();
        assert_eq!(r.registry, "quay.io");
        assert_eq!(r.repository, "gravitational/debian-tall");
        assert_eq!(
            r.local_name(),
            "registry.local:5000/gravitational/debian-tall:buster"
        );
        let r = ImageRef::parse("127.0.0.1:5000/app/web:1.0").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.local_name(), "registry.local:5000/app/web:1.0");
        let r = ImageRef::parse("localhost/x").unwrap();
        assert_eq!(r.registry, "localhost");
        assert_eq!(r.tag.as_deref(), Some("latest"));
    }

    #[test]
    fn digests_and_tags() {
        let r = ImageRef::parse(&format!("nginx@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.local_name(), format!("registry.local:5000/nginx@{D}"));
        let r = ImageRef::parse(&format!("registry:5000/a/b:v1@{D}")).unwrap();
        assert_eq!(r.registry, "registry:5000");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.to_string(), format!("registry:5000/a/b:v1@{D}"));
    }

    #[test]
    fn bad_references_say_why() {
        for (input, says) in [
            ("", "empty"),
            ("Nginx:1", "lowercase"),
            ("nginx:", "tag"),
            ("nginx:-x", "tag"),
            ("nginx@sha256:abc", "64"),
            ("nginx@md5:abc", "not supported"),
            ("{{ .Values.image }}", "template"),
            ("a//b", "repository component"),
            ("quay.io/", "empty"),
        ] {
            let e = ImageRef::parse(input).unwrap_err();
            assert!(e.to_string().contains(says), "{input}: {e}");
        }
    }

    #[test]
    fn path_components_follow_dockers_grammar() {
        for ok in ["a", "a.b", "a_b", "a__b", "a---b", "a1-2"] {
            assert!(valid_path_component(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a..b", "a___b", "A"] {
            assert!(!valid_path_component(bad), "{bad}");
        }
    }
}
