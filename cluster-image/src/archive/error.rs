use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The archive tries something an honest cluster image never does.
    #[error("refusing archive entry `{entry}`: {reason}")]
    Unsafe { entry: String, reason: String },
    #[error("the archive {} is corrupt or truncated: {reason}", archive.display())]
    Corrupt { archive: PathBuf, reason: String },
    #[error(
        "{path}: checksum mismatch (expected sha256 {expected}, found {actual}); the image was modified or damaged: get a fresh copy"
    )]
    Checksum {
        path: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{path}: size mismatch (index says {expected} bytes, found {actual}); the image was modified or damaged: get a fresh copy"
    )]
    Size {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error("{path} is listed in the image index but missing from the image")]
    Missing { path: String },
    #[error("the image index is missing or invalid ({}): {reason}", path.display())]
    Index { path: PathBuf, reason: String },
    #[error("refusing to unpack: {reason}")]
    Limit { reason: String },
    #[error("cannot unpack into {}: it exists and is not empty; choose another directory or remove it", path.display())]
    TargetNotEmpty { path: PathBuf },
}

impl ArchiveError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ArchiveError {
        let path = path.into();
        move |source| ArchiveError::Io { path, source }
    }

    pub(crate) fn unsafe_entry(entry: &str, reason: impl Into<String>) -> ArchiveError {
        ArchiveError::Unsafe {
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }
}
