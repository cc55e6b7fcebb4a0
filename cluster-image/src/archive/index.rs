//! `index.json`: every file of a cluster image with its size, mode and SHA-256.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ArchiveError;

pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageIndex {
    pub format: u32,
    pub name: String,
    pub version: String,
    pub files: Vec<IndexEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    pub path: String,
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    #[serde(default)]
    pub size: u64,
    /// Hex SHA-256 of a file's content.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// A symlink's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Symlink,
}

impl ImageIndex {
    pub fn get(&self, path: &str) -> Option<&IndexEntry> {
        self.files
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }

    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("index serialises");
        out.push(b'\n');
        out
    }

    pub fn from_json(bytes: &[u8], origin: &Path) -> Result<ImageIndex, ArchiveError> {
        let bad = |reason: String| ArchiveError::Index {
            path: origin.to_path_buf(),
            reason,
        };
        let index: ImageIndex = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if index.format != FORMAT {
            return Err(bad(format!(
                "index format {} is not supported by this gravity (it reads format {FORMAT})",
                index.format
            )));
        }
        // Sorted and unique, so lookups are binary searches and duplicates are impossible.
        if let Some(w) = index.files.windows(2).find(|w| w[0].path >= w[1].path) {
            return Err(bad(format!(
                "entries are not sorted and unique at `{}`",
                w[1].path
            )));
        }
        for entry in &index.files {
            super::paths::normalize_entry_path(&entry.path)?;
        }
        Ok(index)
    }
}

/// SHA-256 and length of a file.
pub fn hash_file(path: &Path) -> Result<(String, u64), ArchiveError> {
    durable::sha256_file(path).map_err(ArchiveError::io(path))
}
