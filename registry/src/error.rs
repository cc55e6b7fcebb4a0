//! Vendoring errors: each names the image, file, blob or registry involved.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{origin}: {source}")]
    Reference {
        /// Where the reference was written: `file: yaml.path`.
        origin: String,
        #[source]
        source: crate::reference::ReferenceError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Layout { path: PathBuf, reason: String },
    #[error("blob {digest}: {reason}")]
    Digest { digest: String, reason: String },
    #[error("cannot vendor {image} (referenced by {referenced_by}): {reason}")]
    Pull {
        image: String,
        referenced_by: String,
        reason: String,
    },
    #[error("the Helm chart {chart} does not render: {message}")]
    Chart { chart: PathBuf, message: String },
    #[error("cannot push {image} to {registry}: {reason}")]
    Push {
        image: String,
        registry: String,
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn layout(path: &Path, reason: impl Into<String>) -> Error {
        Error::Layout {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// An error and its causes on one line: the OCI client's top-level messages are vague.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out = format!("{out}: {s_text}");
        }
        source = s.source();
    }
    out
}
