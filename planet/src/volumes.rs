//! Volumes at start time: wildcards expanded, missing directories created (or skipped, or an
//! error), each turned into a host source and a target inside planet.

use std::path::PathBuf;

use super::config::{VolumeMount, wildcard_target};
use crate::host::fs::HostFs;

/// A bind mount into planet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedVolume {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
    pub recursive: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error(
        "volume {volume}: {path} does not exist on this host: create it, set createIfMissing or skipIfMissing in the manifest, or point it elsewhere with --mount NAME:PATH"
    )]
    Missing { volume: String, path: PathBuf },
    #[error("volume {volume}: cannot create {path}: {source}")]
    Create {
        volume: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("volume {volume}: invalid pattern {pattern:?}: {detail}")]
    Pattern {
        volume: String,
        pattern: String,
        detail: String,
    },
}

/// Resolves `volumes` (in their configured order) against the host.
pub fn prepare(
    volumes: &[VolumeMount],
    fs: &dyn HostFs,
) -> Result<Vec<ResolvedVolume>, VolumeError> {
    let mut out = Vec::new();
    for v in volumes {
        let mount = |source: PathBuf, target: PathBuf| ResolvedVolume {
            source,
            target,
            read_only: v.read_only,
            recursive: v.recursive,
        };
        if v.wildcard {
            let matches = fs.glob(&v.source).map_err(|detail| VolumeError::Pattern {
                volume: v.label(),
                pattern: v.source.clone(),
                detail,
            })?;
            if matches.is_empty() {
                tracing::warn!(volume = %v.label(), "no path on this host matches: nothing mounted");
            }
            for m in matches {
                let target = wildcard_target(v, &m);
                out.push(mount(m, target));
            }
            continue;
        }
        let source = PathBuf::from(&v.source);
        if !fs.exists(&source) {
            if v.skip_if_missing {
                tracing::info!(volume = %v.label(), "{} is missing: skipped (skipIfMissing)", source.display());
                continue;
            }
            if !v.create_if_missing {
                return Err(VolumeError::Missing {
                    volume: v.label(),
                    path: source,
                });
            }
            fs.create_dir(&source, v.uid, v.gid, v.mode.map(|m| m.0))
                .map_err(|e| VolumeError::Create {
                    volume: v.label(),
                    path: source.clone(),
                    source: e,
                })?;
            tracing::info!(volume = %v.label(), "created {}", source.display());
        }
        out.push(mount(source, PathBuf::from(&v.target)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fs::RecordingFs;
    use std::path::Path;

    #[test]
    fn expands_creates_skips_and_refuses() {
        let config = crate::config::tests::fixture();
        let fs = RecordingFs::with(&["/srv/models/set-01", "/srv/models/set-02", "/var/log/app"]);
        let resolved = prepare(&config.volumes, &fs).unwrap();
        let pairs: Vec<(String, String)> = resolved
            .iter()
            .map(|r| {
                (
                    r.source.display().to_string(),
                    r.target.display().to_string(),
                )
            })
            .collect();
        assert!(pairs.contains(&("/srv/models/set-01".into(), "/models/set-01".into())));
        assert!(pairs.contains(&("/srv/models/set-02".into(), "/models/set-02".into())));
        assert!(pairs.contains(&("/mnt/fast/app-data".into(), "/var/lib/app".into())));
        assert!(pairs.contains(&("/var/log/app".into(), "/var/log/app".into())));
        assert!(
            resolved
                .iter()
                .any(|r| r.target == Path::new("/var/lib/app/cache") && r.recursive)
        );
        let calls = fs.calls();
        assert!(
            calls.contains(&"mkdir /mnt/fast/app-data 1001:1001 0750".to_string()),
            "{calls:?}"
        );
        assert!(
            calls.contains(&"mkdir /var/lib/gravity/planet/data/etcd -:- 0700".to_string()),
            "{calls:?}"
        );
        assert!(
            !calls.iter().any(|c| c.contains("/var/log/app")),
            "existing: not created"
        );

        // skipIfMissing with nothing matching: mounted nowhere, no error.
        let fs = RecordingFs::default();
        let resolved = prepare(&config.volumes, &fs).unwrap();
        assert!(!resolved.iter().any(|r| r.target.starts_with("/models")));

        // createIfMissing: false and missing: an error naming the volume and the way out.
        let mut strict = config.volumes.clone();
        for v in &mut strict {
            v.create_if_missing = false;
        }
        let err = prepare(&strict, &RecordingFs::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist on this host"), "{err}");
        assert!(err.contains("--mount NAME:PATH"), "{err}");
    }
}
