//! An OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`) on disk: blobs are
//! content-addressed, so images that share a layer store it once; every blob is hashed on its
//! way in and only lands under its digest when the hash and size match.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::Error;
use crate::reference::parse_digest;

pub const OCI_LAYOUT_FILE: &str = "oci-layout";
pub const INDEX_FILE: &str = "index.json";
/// The annotation holding the reference an index entry was vendored from.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Every manifest media type we read, for a registry's `Accept` header.
pub const MANIFEST_TYPES: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Foreign layers (Windows base layers) live elsewhere; we refuse them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// linux/<this machine's architecture>, in Go's names as registries use them.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            architecture: arch.to_string(),
            os: "linux".to_string(),
            variant: None,
        }
    }

    /// `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: parts.get(2).map(|v| v.to_string()),
            }),
            _ => Err(format!(
                "`{s}` is not a platform: write it as OS/ARCH[/VARIANT], e.g. linux/amd64"
            )),
        }
    }

    /// Whether an index entry's platform is this one (no variant asked matches any variant).
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || self.variant == other.variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

impl Index {
    pub fn new(mut manifests: Vec<Descriptor>) -> Index {
        // Sorted by reference so the same images give the same bytes.
        manifests.sort_by(|a, b| (a.ref_name(), &a.digest).cmp(&(b.ref_name(), &b.digest)));
        Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_string()),
            manifests,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("an index always serialises");
        out.push(b'\n');
        out
    }
}

impl Descriptor {
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations.as_ref()?.get(REF_NAME).map(String::as_str)
    }

    pub fn is_index(&self) -> bool {
        self.media_type == OCI_INDEX || self.media_type == DOCKER_LIST
    }
}

/// What vendoring reads from an image manifest or index; tolerant of both OCI and Docker v2.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestDoc {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

impl ManifestDoc {
    /// Parses a manifest and checks it is one we can carry: schema 2, no foreign layers.
    pub fn parse(bytes: &[u8], what: &str) -> Result<ManifestDoc, String> {
        let doc: ManifestDoc = serde_json::from_slice(bytes)
            .map_err(|e| format!("{what} is not a valid image manifest: {e}"))?;
        if doc.schema_version != 2 {
            return Err(format!(
                "{what} is a schema {} manifest; only schema 2 (Docker v2, OCI) is supported: push the image again with a current tool",
                doc.schema_version
            ));
        }
        if doc.manifests.is_empty() && doc.config.is_none() {
            return Err(format!("{what} has neither a config nor manifests"));
        }
        if let Some(l) = doc.layers.iter().find(|l| l.urls.is_some()) {
            return Err(format!(
                "{what} has a foreign layer {} (stored outside the registry), which cannot be vendored",
                l.digest
            ));
        }
        Ok(doc)
    }

    pub fn is_index(&self) -> bool {
        !self.manifests.is_empty() && self.config.is_none()
    }

    /// The media type to send when pushing: the declared one, else what the content implies.
    pub fn media_type_or(&self, fallback: &str) -> String {
        self.media_type.clone().unwrap_or_else(|| {
            if self.is_index() {
                OCI_INDEX.to_string()
            } else {
                fallback.to_string()
            }
        })
    }

    /// Config and layers: the blobs a single-platform manifest needs.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(self.layers.iter())
    }
}

/// One image in a layout: its index entry and every blob it needs, manifests first.
#[derive(Debug, Clone)]
pub struct StoredImage {
    /// The reference it was vendored from (the `ref.name` annotation).
    pub reference: String,
    pub descriptor: Descriptor,
    /// For an index: the child manifests with their bytes, in index order.
    pub children: Vec<(Descriptor, Vec<u8>)>,
    /// The top manifest's bytes.
    pub manifest: Vec<u8>,
    /// Configs and layers, deduplicated, in manifest order.
    pub blobs: Vec<Descriptor>,
}

#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
}

const LAYOUT_JSON: &[u8] = b"{\"imageLayoutVersion\":\"1.0.0\"}\n";

impl OciLayout {
    /// Creates the layout's skeleton (or reuses an existing one: blobs are a cache).
    pub fn create(root: &Path) -> Result<OciLayout, Error> {
        let blobs = root.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(Error::io(&blobs))?;
        let marker = root.join(OCI_LAYOUT_FILE);
        std::fs::write(&marker, LAYOUT_JSON).map_err(Error::io(&marker))?;
        Ok(OciLayout {
            root: root.to_path_buf(),
        })
    }

    /// Opens an existing layout; it must have an `oci-layout` file of version 1.x.
    pub fn open(root: &Path) -> Result<OciLayout, Error> {
        let marker = root.join(OCI_LAYOUT_FILE);
        let text = std::fs::read(&marker).map_err(Error::io(&marker))?;
        let v: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| Error::layout(&marker, format!("not JSON: {e}")))?;
        match v["imageLayoutVersion"].as_str() {
            Some(ver) if ver.starts_with("1.") => Ok(OciLayout {
                root: root.to_path_buf(),
            }),
            other => Err(Error::layout(
                &marker,
                format!("unsupported imageLayoutVersion {other:?} (expected 1.x)"),
            )),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, Error> {
        let d = parse_digest(digest).map_err(|reason| Error::Digest {
            digest: digest.to_string(),
            reason,
        })?;
        Ok(self.root.join("blobs/sha256").join(&d["sha256:".len()..]))
    }

    /// Whether the blob is present with the expected size (its content was verified on entry).
    pub fn has_blob(&self, digest: &str, size: u64) -> bool {
        self.blob_path(digest)
            .ok()
            .and_then(|p| std::fs::metadata(p).ok())
            .is_some_and(|m| m.is_file() && m.len() == size)
    }

    /// Re-hashes a stored blob: for blobs found in a cache from an earlier build.
    pub fn verify_blob(&self, digest: &str, size: u64) -> Result<(), Error> {
        let path = self.blob_path(digest)?;
        let (actual, len) =
            hash_reader(File::open(&path).map_err(Error::io(&path))?).map_err(Error::io(&path))?;
        check(digest, size, &actual, len)
    }

    /// Writes a blob held in memory, verifying digest and size.
    pub fn write_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), Error> {
        if self.has_blob(digest, bytes.len() as u64) {
            return Ok(());
        }
        let mut w = self.blob_writer(Some(digest), Some(bytes.len() as u64))?;
        w.write_all(bytes).map_err(Error::io(&w.tmp))?;
        w.finish().map(|_| ())
    }

    /// A writer for a blob of known digest (verified on `finish`), or of unknown digest (named
    /// by what was written, for imports that compute it).
    pub fn blob_writer(
        &self,
        digest: Option<&str>,
        size: Option<u64>,
    ) -> Result<BlobWriter, Error> {
        if let Some(d) = digest {
            self.blob_path(d)?;
        }
        let dir = self.root.join("blobs/sha256");
        let tmp = tempfile_in(&dir);
        let file = File::create(&tmp).map_err(Error::io(&tmp))?;
        Ok(BlobWriter {
            layout: self.clone(),
            expected: digest.map(str::to_string),
            expected_size: size,
            hasher: Sha256::new(),
            len: 0,
            file: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
            tmp,
        })
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, Error> {
        let path = self.blob_path(digest)?;
        std::fs::read(&path).map_err(Error::io(&path))
    }

    pub fn read_index(&self) -> Result<Index, Error> {
        let path = self.root.join(INDEX_FILE);
        let bytes = std::fs::read(&path).map_err(Error::io(&path))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::layout(&path, format!("not an OCI index: {e}")))
    }

    pub fn write_index(&self, index: &Index) -> Result<(), Error> {
        let path = self.root.join(INDEX_FILE);
        std::fs::write(&path, index.to_json()).map_err(Error::io(&path))
    }

    /// Every image the index lists, with the blobs each needs; checks that all are present.
    pub fn images(&self) -> Result<Vec<StoredImage>, Error> {
        let index = self.read_index()?;
        index.manifests.iter().map(|d| self.image(d)).collect()
    }

    /// One index entry's manifest tree.
    pub fn image(&self, descriptor: &Descriptor) -> Result<StoredImage, Error> {
        let reference = descriptor
            .ref_name()
            .unwrap_or(&descriptor.digest)
            .to_string();
        let manifest = self.read_manifest(descriptor, &reference)?;
        let doc =
            ManifestDoc::parse(&manifest, &reference).map_err(|r| Error::layout(&self.root, r))?;
        let mut children = Vec::new();
        let mut seen = BTreeSet::new();
        let mut blobs = Vec::new();
        let mut add = |blobs: &mut Vec<Descriptor>, doc: &ManifestDoc| {
            for b in doc.blobs() {
                if seen.insert(b.digest.clone()) {
                    blobs.push(b.clone());
                }
            }
        };
        if doc.is_index() {
            for child in &doc.manifests {
                let bytes = self.read_manifest(child, &reference)?;
                let child_doc = ManifestDoc::parse(&bytes, &reference)
                    .map_err(|r| Error::layout(&self.root, r))?;
                if child_doc.is_index() {
                    return Err(Error::layout(
                        &self.root,
                        format!("{reference}: nested image indexes are not supported"),
                    ));
                }
                add(&mut blobs, &child_doc);
                children.push((child.clone(), bytes));
            }
        } else {
            add(&mut blobs, &doc);
        }
        for b in &blobs {
            if !self.has_blob(&b.digest, b.size) {
                return Err(Error::layout(
                    &self.root,
                    format!(
                        "{reference}: blob {} ({} bytes) is missing",
                        b.digest, b.size
                    ),
                ));
            }
        }
        Ok(StoredImage {
            reference,
            descriptor: descriptor.clone(),
            children,
            manifest,
            blobs,
        })
    }

    fn read_manifest(&self, d: &Descriptor, reference: &str) -> Result<Vec<u8>, Error> {
        let bytes = self.read_blob(&d.digest).map_err(|e| {
            Error::layout(
                &self.root,
                format!("{reference}: manifest {}: {e}", d.digest),
            )
        })?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        check(&d.digest, d.size, &actual, bytes.len() as u64)?;
        Ok(bytes)
    }
}

/// Streams a blob into `blobs/sha256/.tmp-*`, hashing as it goes; `finish` moves it into place.
pub struct BlobWriter {
    layout: OciLayout,
    expected: Option<String>,
    expected_size: Option<u64>,
    hasher: Sha256,
    len: u64,
    file: Option<std::io::BufWriter<File>>,
    tmp: PathBuf,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self
            .file
            .as_mut()
            .expect("written after finish")
            .write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("flushed after finish").flush()
    }
}

impl BlobWriter {
    /// Verifies what was written and renames it to its digest; returns the descriptor's
    /// digest and size.
    pub fn finish(mut self) -> Result<(String, u64), Error> {
        let file = self.file.take().expect("finished once");
        let file = file
            .into_inner()
            .map_err(|e| Error::io(&self.tmp)(e.into_error()))?;
        drop(file);
        let actual = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
        let digest = self.expected.clone().unwrap_or_else(|| actual.clone());
        check(
            &digest,
            self.expected_size.unwrap_or(self.len),
            &actual,
            self.len,
        )?;
        let dest = self.layout.blob_path(&digest)?;
        std::fs::rename(&self.tmp, &dest).map_err(Error::io(&dest))?;
        Ok((digest, self.len))
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Unfinished or refused: the partial file must not linger in the store.
        if self.file.is_some() || self.tmp.exists() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn check(digest: &str, size: u64, actual: &str, len: u64) -> Result<(), Error> {
    if actual != digest {
        return Err(Error::Digest {
            digest: digest.to_string(),
            reason: format!("the content's digest is {actual}: it was corrupted or tampered with"),
        });
    }
    if len != size {
        return Err(Error::Digest {
            digest: digest.to_string(),
            reason: format!("{len} bytes, but its descriptor says {size}"),
        });
    }
    Ok(())
}

/// SHA-256 and length of everything `r` yields.
pub fn hash_reader(r: impl Read) -> std::io::Result<(String, u64)> {
    let (hex, len) = durable::sha256_reader(r)?;
    Ok((format!("sha256:{hex}"), len))
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A fresh temporary name in `dir` (the store's own directory, so the rename stays atomic).
fn tempfile_in(dir: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".tmp-{}-{n}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> (tempfile::TempDir, OciLayout) {
        let dir = tempfile::tempdir().unwrap();
        let l = OciLayout::create(dir.path()).unwrap();
        (dir, l)
    }

    #[test]
    fn blobs_land_under_their_digest_only_when_they_match() {
        let (_d, l) = layout();
        let digest = sha256_digest(b"hello");
        l.write_blob(&digest, b"hello").unwrap();
        assert!(l.has_blob(&digest, 5));
        assert_eq!(l.read_blob(&digest).unwrap(), b"hello");

        let wrong = sha256_digest(b"other");
        let e = l.write_blob(&wrong, b"hello").unwrap_err();
        assert!(e.to_string().contains("corrupted"), "{e}");
        assert!(!l.has_blob(&wrong, 5));
        // No temporary file is left behind by the refused write.
        let left: Vec<_> = std::fs::read_dir(l.root().join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }

    #[test]
    fn size_mismatch_is_refused() {
        let (_d, l) = layout();
        let digest = sha256_digest(b"hello");
        let mut w = l.blob_writer(Some(&digest), Some(6)).unwrap();
        w.write_all(b"hello").unwrap();
        assert!(
            w.finish()
                .unwrap_err()
                .to_string()
                .contains("descriptor says 6")
        );
    }

    #[test]
    fn unknown_digest_is_computed() {
        let (_d, l) = layout();
        let mut w = l.blob_writer(None, None).unwrap();
        w.write_all(b"abc").unwrap();
        let (digest, len) = w.finish().unwrap();
        assert_eq!(digest, sha256_digest(b"abc"));
        assert_eq!(len, 3);
        l.verify_blob(&digest, 3).unwrap();
    }

    #[test]
    fn images_list_their_blobs_and_missing_ones_are_named() {
        let (_d, l) = layout();
        let config = b"{}".to_vec();
        let layer = b"layer".to_vec();
        l.write_blob(&sha256_digest(&config), &config).unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(&config), "size": 2},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha256_digest(&layer), "size": 5}],
        }))
        .unwrap();
        let md = sha256_digest(&manifest);
        l.write_blob(&md, &manifest).unwrap();
        let entry = Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: md,
            size: manifest.len() as u64,
            platform: None,
            annotations: Some([(REF_NAME.to_string(), "docker.io/library/x:1".to_string())].into()),
            urls: None,
        };
        l.write_index(&Index::new(vec![entry])).unwrap();
        let e = l.images().unwrap_err().to_string();
        assert!(
            e.contains("docker.io/library/x:1") && e.contains("missing"),
            "{e}"
        );
        l.write_blob(&sha256_digest(&layer), &layer).unwrap();
        let images = l.images().unwrap();
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].blobs.len(), 2);
        assert_eq!(images[0].reference, "docker.io/library/x:1");
    }

    #[test]
    fn platforms_parse_and_match() {
        let p = Platform::parse("linux/arm64").unwrap();
        assert!(p.matches(&Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into())
        }));
        assert!(Platform::parse("linux").is_err());
        assert!(
            !Platform::parse("linux/arm/v7")
                .unwrap()
                .matches(&Platform::parse("linux/arm/v6").unwrap())
        );
    }
}
