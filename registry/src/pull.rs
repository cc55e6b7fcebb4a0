//! Fetching images into a [`OciLayout`] without a Docker daemon: from registries over the OCI
//! distribution API, from OCI image layout directories, and from `docker save` archives.
//!
//! A multi-platform image is stored as the one manifest for the chosen platform (linux and this
//! machine's architecture by default): planet runs on the build's architecture, an index with
//! children left out would be refused by a registry, and all platforms would multiply the size.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, stream};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;

use crate::auth::DockerConfig;
use crate::discover::Origin;
use crate::error::{Error, chain};
use crate::reference::ImageRef;
use crate::store::{
    Descriptor, MANIFEST_TYPES, ManifestDoc, OCI_CONFIG, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD,
    OCI_MANIFEST, OciLayout, Platform, REF_NAME, sha256_digest,
};

/// Where an image may come from besides its registry; local sources are tried first.
#[derive(Debug, Clone)]
pub enum LocalSource {
    /// An OCI image layout whose `index.json` names images with the
    /// `org.opencontainers.image.ref.name` annotation (full references, e.g.
    /// `skopeo copy ... oci:DIR:quay.io/acme/web:1.0`).
    OciLayout(PathBuf),
    /// A `docker save` tarball (uncompressed); images are found by their `RepoTags`.
    DockerArchive(PathBuf),
}

impl LocalSource {
    /// A directory with `oci-layout` is a layout, a file a `docker save` archive.
    pub fn detect(path: &Path) -> Result<LocalSource, Error> {
        if path.join(crate::store::OCI_LAYOUT_FILE).is_file() {
            Ok(LocalSource::OciLayout(path.to_path_buf()))
        } else if path.is_file() {
            Ok(LocalSource::DockerArchive(path.to_path_buf()))
        } else if path.is_dir() {
            Err(Error::layout(
                path,
                "is a directory without an oci-layout file: give an OCI image layout or a `docker save` tarball",
            ))
        } else {
            Err(Error::layout(path, "does not exist"))
        }
    }
}

pub struct PullOptions<'a> {
    /// Registries (`host:port`) reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    pub platform: Platform,
    pub sources: Vec<LocalSource>,
    pub credentials: DockerConfig,
    /// Downloads in flight at once.
    pub concurrency: usize,
    /// Called with (bytes done, bytes total) while blobs download.
    pub progress: Option<&'a dyn Fn(u64, u64)>,
}

impl Default for PullOptions<'_> {
    fn default() -> Self {
        PullOptions {
            insecure_registries: Vec::new(),
            platform: Platform::host(),
            sources: Vec::new(),
            credentials: DockerConfig::default(),
            concurrency: 4,
            progress: None,
        }
    }
}

/// One image now in the layout.
#[derive(Debug, Clone)]
pub struct Vendored {
    pub reference: ImageRef,
    /// The index entry: the image's manifest, annotated with the reference.
    pub descriptor: Descriptor,
    /// Every blob the image needs, its manifest first.
    pub blobs: Vec<Descriptor>,
    /// `registry`, or the local source's path.
    pub from: String,
}

impl Vendored {
    pub fn size(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }
}

/// Fetches every image in `images` (reference -> where it was referenced) into `store`.
pub fn pull_all(
    store: &OciLayout,
    images: &BTreeMap<ImageRef, Vec<Origin>>,
    opts: &PullOptions<'_>,
) -> Result<Vec<Vendored>, Error> {
    let fail = |r: &ImageRef, reason: String| Error::Pull {
        image: r.to_string(),
        referenced_by: referenced_by(&images[r]),
        reason,
    };
    let mut local = LocalIndex::default();
    for (i, s) in opts.sources.iter().enumerate() {
        local.add(i, s)?;
    }
    let mut out = Vec::new();
    let mut remote = Vec::new();
    for r in images.keys() {
        match local.find(r) {
            Some(found) => out.push(
                import_local(store, r, found, &opts.sources, &opts.platform)
                    .map_err(|e| fail(r, chain(&e)))?,
            ),
            None => remote.push(r.clone()),
        }
    }
    if !remote.is_empty() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io(Path::new("tokio runtime"))(e))?;
        out.extend(rt.block_on(pull_remote(store, &remote, opts, &fail))?);
    }
    out.sort_by(|a, b| a.reference.cmp(&b.reference));
    Ok(out)
}

fn referenced_by(origins: &[Origin]) -> String {
    let mut s: Vec<String> = origins.iter().take(3).map(Origin::to_string).collect();
    if origins.len() > 3 {
        s.push(format!("and {} more", origins.len() - 3));
    }
    s.join("; ")
}

pub(crate) fn client(protocol: ClientProtocol) -> oci_client::Client {
    // The tree links rustls without a default provider: install ring before the first client.
    crate::install_crypto_provider();
    oci_client::Client::new(ClientConfig {
        protocol,
        platform_resolver: None,
        connect_timeout: Some(Duration::from_secs(15)),
        read_timeout: Some(Duration::from_secs(120)),
        user_agent: concat!("gravity-vendor/", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    })
}

struct Resolved {
    reference: ImageRef,
    descriptor: Descriptor,
    manifest: Descriptor,
    blobs: Vec<Descriptor>,
}

async fn pull_remote(
    store: &OciLayout,
    images: &[ImageRef],
    opts: &PullOptions<'_>,
    fail: &dyn Fn(&ImageRef, String) -> Error,
) -> Result<Vec<Vendored>, Error> {
    let client = client(ClientProtocol::HttpsExcept(
        opts.insecure_registries.clone(),
    ));
    let mut auths: HashMap<String, RegistryAuth> = HashMap::new();
    for r in images {
        if !auths.contains_key(&r.registry) {
            let auth = opts
                .credentials
                .auth_for(&r.registry)
                .map_err(|e| fail(r, chain(&e)))?;
            auths.insert(r.registry.clone(), auth);
        }
    }
    let concurrency = opts.concurrency.max(1);
    // Manifests first: they say which blobs are needed and how large the whole download is.
    let resolved: Vec<Resolved> = stream::iter(images.iter())
        .map(|r| {
            let auth = &auths[&r.registry];
            let client = &client;
            async move {
                resolve(client, store, r, auth, &opts.platform)
                    .await
                    .map_err(|reason| fail(r, reason))
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;

    // Each blob once, from the first image that needs it.
    let mut wanted: BTreeMap<String, (Descriptor, &ImageRef)> = BTreeMap::new();
    for r in &resolved {
        for b in &r.blobs {
            wanted
                .entry(b.digest.clone())
                .or_insert((b.clone(), &r.reference));
        }
    }
    let total: u64 = wanted.values().map(|(d, _)| d.size).sum();
    let done = std::cell::Cell::new(0u64);
    let report = |n: u64| {
        done.set(done.get() + n);
        if let Some(p) = opts.progress {
            p(done.get(), total);
        }
    };
    stream::iter(wanted.values())
        .map(|(d, r)| {
            let client = &client;
            let report = &report;
            async move {
                if store.has_blob(&d.digest, d.size) {
                    // A cache from an earlier build: trust it only after hashing it again.
                    if store.verify_blob(&d.digest, d.size).is_ok() {
                        report(d.size);
                        return Ok(());
                    }
                    let _ = std::fs::remove_file(store.blob_path(&d.digest)?);
                }
                download(client, store, r, d, report)
                    .await
                    .map_err(|reason| fail(r, reason))
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await?;

    Ok(resolved
        .into_iter()
        .map(|r| Vendored {
            blobs: std::iter::once(r.manifest).chain(r.blobs).collect(),
            descriptor: r.descriptor,
            reference: r.reference,
            from: "registry".to_string(),
        })
        .collect())
}

/// Fetches the manifest (choosing the platform from an index) and stores it.
async fn resolve(
    client: &oci_client::Client,
    store: &OciLayout,
    r: &ImageRef,
    auth: &RegistryAuth,
    platform: &Platform,
) -> Result<Resolved, String> {
    let oci = r.to_oci();
    let (bytes, digest) = client
        .pull_manifest_raw(&oci, auth, MANIFEST_TYPES)
        .await
        .map_err(|e| describe_registry_error(&e, r))?;
    let what = r.to_string();
    let doc = ManifestDoc::parse(&bytes, &what)?;
    let (bytes, digest, doc) = if doc.is_index() {
        let child = doc
            .manifests
            .iter()
            .find(|m| m.platform.as_ref().is_some_and(|p| platform.matches(p)))
            .ok_or_else(|| {
                let have: Vec<String> = doc
                    .manifests
                    .iter()
                    .filter_map(|m| m.platform.as_ref().map(Platform::to_string))
                    .collect();
                format!(
                    "it has no {platform} image (it has {}): choose one with --platform",
                    have.join(", ")
                )
            })?;
        let child_ref = oci.clone_with_digest(child.digest.clone());
        let (child_bytes, child_digest) = client
            .pull_manifest_raw(&child_ref, auth, MANIFEST_TYPES)
            .await
            .map_err(|e| describe_registry_error(&e, r))?;
        let child_doc = ManifestDoc::parse(&child_bytes, &what)?;
        if child_doc.is_index() {
            return Err("its platform entry is itself an index, which is not supported".into());
        }
        (child_bytes, child_digest, child_doc)
    } else {
        (bytes, digest, doc)
    };
    store.write_blob(&digest, &bytes).map_err(|e| chain(&e))?;
    let manifest = Descriptor {
        media_type: doc.media_type_or(OCI_MANIFEST),
        digest,
        size: bytes.len() as u64,
        platform: None,
        annotations: None,
        urls: None,
    };
    Ok(Resolved {
        reference: r.clone(),
        descriptor: annotated(&manifest, r),
        manifest,
        blobs: doc.blobs().cloned().collect(),
    })
}

/// Streams one blob into the store; the store checks digest and size before it keeps it.
async fn download(
    client: &oci_client::Client,
    store: &OciLayout,
    r: &ImageRef,
    d: &Descriptor,
    report: &dyn Fn(u64),
) -> Result<(), String> {
    let desc = OciDescriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.clone(),
        size: d.size as i64,
        ..OciDescriptor::default()
    };
    let mut s = client
        .pull_blob_stream(&r.to_oci(), &desc)
        .await
        .map_err(|e| format!("blob {}: {}", d.digest, describe_registry_error(&e, r)))?;
    let mut w = store
        .blob_writer(Some(&d.digest), Some(d.size))
        .map_err(|e| chain(&e))?;
    while let Some(chunk) = s.next().await {
        let chunk = chunk.map_err(|e| format!("blob {}: {}", d.digest, chain(&e)))?;
        // Page-cache writes are short: done inline rather than on a blocking thread.
        w.write_all(&chunk)
            .map_err(|e| format!("blob {}: {}", d.digest, chain(&e)))?;
        report(chunk.len() as u64);
    }
    w.finish().map_err(|e| chain(&e))?;
    Ok(())
}

fn describe_registry_error(e: &oci_client::errors::OciDistributionError, r: &ImageRef) -> String {
    let text = chain(e);
    if text.contains("Connection refused") || text.contains("dns error") {
        format!("cannot reach the registry {}: {text}", r.registry)
    } else if text.contains("InvalidContentType")
        || text.contains("invalid HTTP version")
        || text.contains("InvalidMessage")
        || text.contains("CorruptMessage")
    {
        format!(
            "{text} (if {} serves plain HTTP, pass --insecure-registry {})",
            r.registry, r.registry
        )
    } else if text.contains("Not authorized") || text.contains("Authentication failure") {
        format!(
            "{text} (the registry wants credentials tele did not have or that it refused: `docker login {}` writes them to ~/.docker/config.json; $DOCKER_CONFIG names another directory)",
            r.registry
        )
    } else {
        text
    }
}

fn annotated(manifest: &Descriptor, r: &ImageRef) -> Descriptor {
    let mut d = manifest.clone();
    d.annotations = Some(BTreeMap::from([(REF_NAME.to_string(), r.to_string())]));
    d
}

/// What the local sources hold, by normalized reference.
#[derive(Default)]
struct LocalIndex {
    images: BTreeMap<ImageRef, LocalImage>,
}

#[derive(Clone)]
enum LocalImage {
    Layout {
        source: usize,
        descriptor: Descriptor,
    },
    Archive {
        source: usize,
        entry: DockerSaveEntry,
        files: BTreeMap<String, (u64, u64)>,
    },
}

#[derive(Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerSaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

impl LocalIndex {
    fn add(&mut self, i: usize, s: &LocalSource) -> Result<(), Error> {
        match s {
            LocalSource::OciLayout(dir) => {
                let layout = OciLayout::open(dir)?;
                for d in layout.read_index()?.manifests {
                    let Some(name) = d.ref_name() else { continue };
                    match ImageRef::parse(name) {
                        Ok(r) => {
                            self.images.entry(r).or_insert(LocalImage::Layout {
                                source: i,
                                descriptor: d.clone(),
                            });
                        }
                        Err(_) => tracing::debug!(
                            name,
                            layout = %dir.display(),
                            "index entry is not named by a full reference, skipped"
                        ),
                    }
                }
            }
            LocalSource::DockerArchive(path) => {
                let (entries, files) = scan_docker_archive(path)?;
                for entry in entries {
                    for tag in entry.repo_tags.iter().flatten() {
                        if let Ok(r) = ImageRef::parse(tag) {
                            self.images.entry(r).or_insert(LocalImage::Archive {
                                source: i,
                                entry: entry.clone(),
                                files: files.clone(),
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn find(&self, r: &ImageRef) -> Option<&LocalImage> {
        self.images.get(r)
    }
}

fn import_local(
    store: &OciLayout,
    r: &ImageRef,
    found: &LocalImage,
    sources: &[LocalSource],
    platform: &Platform,
) -> Result<Vendored, Error> {
    match found {
        LocalImage::Layout { source, descriptor } => {
            let LocalSource::OciLayout(dir) = &sources[*source] else {
                unreachable!("layout entries come from layout sources")
            };
            let src = OciLayout::open(dir)?;
            let mut manifest = descriptor.clone();
            manifest.annotations = None;
            let mut doc = ManifestDoc::parse(&src.read_blob(&manifest.digest)?, &r.to_string())
                .map_err(|e| Error::layout(dir, e))?;
            if doc.is_index() {
                let child = doc
                    .manifests
                    .iter()
                    .find(|m| m.platform.as_ref().is_some_and(|p| platform.matches(p)))
                    .ok_or_else(|| Error::layout(dir, format!("{r} has no {platform} image")))?
                    .clone();
                doc = ManifestDoc::parse(&src.read_blob(&child.digest)?, &r.to_string())
                    .map_err(|e| Error::layout(dir, e))?;
                manifest = child;
                manifest.platform = None;
            }
            let mut blobs = vec![manifest.clone()];
            blobs.extend(doc.blobs().cloned());
            for b in &blobs {
                if store.has_blob(&b.digest, b.size) && store.verify_blob(&b.digest, b.size).is_ok()
                {
                    continue;
                }
                let path = src.blob_path(&b.digest)?;
                let mut from = File::open(&path).map_err(Error::io(&path))?;
                let mut w = store.blob_writer(Some(&b.digest), Some(b.size))?;
                std::io::copy(&mut from, &mut w).map_err(Error::io(&path))?;
                w.finish()?;
            }
            Ok(Vendored {
                reference: r.clone(),
                descriptor: annotated(&manifest, r),
                blobs,
                from: dir.display().to_string(),
            })
        }
        LocalImage::Archive {
            source,
            entry,
            files,
        } => {
            let LocalSource::DockerArchive(path) = &sources[*source] else {
                unreachable!("archive entries come from archive sources")
            };
            import_docker_save(store, r, path, entry, files)
        }
    }
}

/// Lists a `docker save` tarball: its `manifest.json` and where each member's data lies, so
/// members can be read later by seeking instead of unpacking.
#[allow(clippy::type_complexity)]
fn scan_docker_archive(
    path: &Path,
) -> Result<(Vec<DockerSaveEntry>, BTreeMap<String, (u64, u64)>), Error> {
    let mut file = File::open(path).map_err(Error::io(path))?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).map_err(Error::io(path))?;
    if n >= 2 && magic[..2] == [0x1f, 0x8b] || n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        return Err(Error::layout(
            path,
            "is compressed: give the plain `docker save` tarball (decompress it first)",
        ));
    }
    file.seek(SeekFrom::Start(0)).map_err(Error::io(path))?;
    let mut archive = tar::Archive::new(file);
    let mut files = BTreeMap::new();
    let mut manifest = None;
    for entry in archive.entries().map_err(Error::io(path))? {
        let mut entry = entry.map_err(Error::io(path))?;
        let name = entry
            .path()
            .map_err(Error::io(path))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if name == "manifest.json" {
            let mut text = Vec::new();
            entry.read_to_end(&mut text).map_err(Error::io(path))?;
            manifest = Some(text);
        } else if entry.header().entry_type().is_file() {
            files.insert(name, (entry.raw_file_position(), entry.size()));
        }
    }
    let manifest = manifest.ok_or_else(|| {
        Error::layout(
            path,
            "has no manifest.json: it is not a `docker save` archive",
        )
    })?;
    let entries: Vec<DockerSaveEntry> = serde_json::from_slice(&manifest)
        .map_err(|e| Error::layout(path, format!("manifest.json: {e}")))?;
    Ok((entries, files))
}

/// Turns one `docker save` image into an OCI manifest: the config and layer tars become blobs
/// (digests computed as they are copied), layers keep their compression, if any.
fn import_docker_save(
    store: &OciLayout,
    r: &ImageRef,
    path: &Path,
    entry: &DockerSaveEntry,
    files: &BTreeMap<String, (u64, u64)>,
) -> Result<Vendored, Error> {
    let member = |name: &str| -> Result<(u64, u64), Error> {
        files.get(name).copied().ok_or_else(|| {
            Error::layout(
                path,
                format!("manifest.json names {name}, which the archive does not hold"),
            )
        })
    };
    let mut file = File::open(path).map_err(Error::io(path))?;
    let mut copy = |name: &str, media: Option<&str>| -> Result<Descriptor, Error> {
        let (offset, size) = member(name)?;
        file.seek(SeekFrom::Start(offset))
            .map_err(Error::io(path))?;
        let mut head = [0u8; 4];
        let mut part = (&mut file).take(size);
        let n = read_full(&mut part, &mut head).map_err(Error::io(path))?;
        let media = media.map(str::to_string).unwrap_or_else(|| {
            match head {
                [0x1f, 0x8b, ..] => OCI_LAYER_GZIP,
                [0x28, 0xb5, 0x2f, 0xfd] => OCI_LAYER_ZSTD,
                _ => OCI_LAYER,
            }
            .to_string()
        });
        let mut w = store.blob_writer(None, Some(size))?;
        w.write_all(&head[..n]).map_err(Error::io(path))?;
        std::io::copy(&mut part, &mut w).map_err(Error::io(path))?;
        let (digest, size) = w.finish()?;
        Ok(Descriptor {
            media_type: media,
            digest,
            size,
            platform: None,
            annotations: None,
            urls: None,
        })
    };
    let config = copy(&entry.config, Some(OCI_CONFIG))?;
    let layers = entry
        .layers
        .iter()
        .map(|l| copy(l, None))
        .collect::<Result<Vec<_>, _>>()?;
    let manifest_json = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest_json).expect("a manifest serialises");
    let digest = sha256_digest(&bytes);
    store.write_blob(&digest, &bytes)?;
    let manifest = Descriptor {
        media_type: OCI_MANIFEST.to_string(),
        digest,
        size: bytes.len() as u64,
        platform: None,
        annotations: None,
        urls: None,
    };
    let mut blobs = vec![manifest.clone(), config];
    blobs.extend(layers);
    Ok(Vendored {
        reference: r.clone(),
        descriptor: annotated(&manifest, r),
        blobs,
        from: path.display().to_string(),
    })
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
