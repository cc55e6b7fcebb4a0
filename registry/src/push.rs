//! Pushing every image of an OCI layout into a registry: blobs first (each once, in parallel,
//! skipping those the registry has, mounting those already pushed to another repository),
//! manifests last so a tag never points at missing content.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, stream};
use oci_client::client::{ClientConfig, ClientProtocol};
pub use oci_client::secrets::RegistryAuth as Auth;
use tokio::io::AsyncReadExt;

use crate::error::{Error, chain};
use crate::reference::ImageRef;
use crate::store::{Descriptor, OciLayout, StoredImage};

pub struct PushOptions<'a> {
    /// `host:port` of the target registry.
    pub registry: String,
    /// Talk plain HTTP (planet's registry, test registries).
    pub plain_http: bool,
    pub auth: Auth,
    /// Blob uploads in flight at once.
    pub concurrency: usize,
    /// Called about twice a second while pushing, and once at the end.
    pub progress: Option<&'a dyn Fn(&PushProgress)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushProgress {
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub blobs_done: usize,
    pub blobs_total: usize,
}

/// What a push did.
#[derive(Debug, Clone, Default)]
pub struct PushReport {
    /// The pushed images by their name in the target registry, sorted.
    pub images: Vec<String>,
    /// Blobs sent over the wire.
    pub uploaded: usize,
    /// Blobs the registry already had in the repository.
    pub existing: usize,
    /// Blobs linked from another repository of the same registry without sending them.
    pub mounted: usize,
    pub bytes_uploaded: u64,
}

/// Pushes `layout_dir` with a single-threaded runtime of its own (the caller may be a process
/// that must stay single-threaded otherwise, like gravity).
pub fn push_layout(layout_dir: &Path, opts: &PushOptions<'_>) -> Result<PushReport, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::io(Path::new("tokio runtime")))?;
    rt.block_on(push_layout_async(layout_dir, opts))
}

struct Target {
    stored: StoredImage,
    /// The image in the target registry.
    name: ImageRef,
}

pub async fn push_layout_async(
    layout_dir: &Path,
    opts: &PushOptions<'_>,
) -> Result<PushReport, Error> {
    let layout = OciLayout::open(layout_dir)?;
    let mut targets: Vec<Target> = Vec::new();
    for stored in layout.images()? {
        let r = ImageRef::parse(&stored.reference).map_err(|source| Error::Reference {
            origin: format!("{}: index.json", layout_dir.display()),
            source,
        })?;
        for name in r.names_in_registry(&opts.registry) {
            targets.push(Target {
                name,
                stored: stored.clone(),
            });
        }
    }

    crate::install_crypto_provider();
    let client = oci_client::Client::new(ClientConfig {
        protocol: if opts.plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        use_monolithic_push: true,
        platform_resolver: None,
        connect_timeout: Some(Duration::from_secs(15)),
        read_timeout: Some(Duration::from_secs(300)),
        user_agent: concat!("gravity-vendor/", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    });
    client
        .store_auth_if_needed(&opts.registry, &opts.auth)
        .await;

    // Each blob once, with every repository that needs it; the first uploads, the rest mount.
    let mut blobs: BTreeMap<String, (Descriptor, Vec<&ImageRef>)> = BTreeMap::new();
    for t in &targets {
        for b in &t.stored.blobs {
            let entry = blobs
                .entry(b.digest.clone())
                .or_insert_with(|| (b.clone(), Vec::new()));
            if !entry.1.iter().any(|r| r.repository == t.name.repository) {
                entry.1.push(&t.name);
            }
        }
    }
    let counters = Counters::default();
    let total = PushProgress {
        bytes_total: blobs.values().map(|(d, _)| d.size).sum(),
        blobs_total: blobs.len(),
        ..PushProgress::default()
    };
    let report_now = || {
        if let Some(p) = opts.progress {
            p(&PushProgress {
                bytes_done: counters.bytes.load(Ordering::Relaxed),
                blobs_done: counters.blobs.load(Ordering::Relaxed),
                ..total.clone()
            });
        }
    };

    let work = async {
        stream::iter(blobs.values())
            .map(|(d, repos)| push_blob(&client, &layout, d, repos, &counters, &opts.registry))
            .buffer_unordered(opts.concurrency.max(1))
            .try_collect::<()>()
            .await?;
        // Manifests after all blobs: children of an index before the index, tags last.
        stream::iter(targets.iter())
            .map(|t| push_manifests(&client, t, &opts.registry))
            .buffer_unordered(opts.concurrency.max(1))
            .try_collect::<()>()
            .await
    };
    let ticker = async {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            report_now();
        }
    };
    futures_util::pin_mut!(work, ticker);
    match futures_util::future::select(work, ticker).await {
        futures_util::future::Either::Left((result, _)) => result?,
        futures_util::future::Either::Right(_) => unreachable!("the ticker never ends"),
    }
    report_now();

    let mut images: Vec<String> = targets.iter().map(|t| t.name.to_string()).collect();
    images.sort();
    Ok(PushReport {
        images,
        uploaded: counters.uploaded.load(Ordering::Relaxed),
        existing: counters.existing.load(Ordering::Relaxed),
        mounted: counters.mounted.load(Ordering::Relaxed),
        bytes_uploaded: counters.uploaded_bytes.load(Ordering::Relaxed),
    })
}

#[derive(Default)]
struct Counters {
    /// Bytes accounted for: sent, or skipped because present.
    bytes: Arc<AtomicU64>,
    blobs: AtomicUsize,
    uploaded: AtomicUsize,
    uploaded_bytes: AtomicU64,
    existing: AtomicUsize,
    mounted: AtomicUsize,
}

async fn push_blob(
    client: &oci_client::Client,
    layout: &OciLayout,
    d: &Descriptor,
    repos: &[&ImageRef],
    c: &Counters,
    registry: &str,
) -> Result<(), Error> {
    let fail = |r: &ImageRef, reason: String| Error::Push {
        image: r.to_string(),
        registry: registry.to_string(),
        reason: format!("blob {}: {reason}", d.digest),
    };
    let first = repos[0];
    let exists = client
        .blob_exists(&first.to_oci(), &d.digest)
        .await
        .map_err(|e| fail(first, chain(&e)))?;
    if exists {
        c.existing.fetch_add(1, Ordering::Relaxed);
        c.bytes.fetch_add(d.size, Ordering::Relaxed);
    } else {
        let path = layout.blob_path(&d.digest)?;
        upload(client, first, d, &path, c)
            .await
            .map_err(|reason| fail(first, reason))?;
    }
    for r in &repos[1..] {
        let target = r.to_oci();
        if client
            .blob_exists(&target, &d.digest)
            .await
            .map_err(|e| fail(r, chain(&e)))?
        {
            c.existing.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match client.mount_blob(&target, &first.to_oci(), &d.digest).await {
            Ok(()) => {
                c.mounted.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                // A registry may refuse cross-repository mounts: send the bytes instead.
                tracing::debug!(digest = %d.digest, error = %chain(&e), "mount refused, uploading");
                let path = layout.blob_path(&d.digest)?;
                let before = c.bytes.load(Ordering::Relaxed);
                upload(client, r, d, &path, c)
                    .await
                    .map_err(|reason| fail(r, reason))?;
                // The blob was counted once already.
                c.bytes.store(before, Ordering::Relaxed);
            }
        }
    }
    c.blobs.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Streams a blob file in one monolithic PUT; retried twice, since a resumed install pushes
/// everything again anyway and a transient error should not fail the phase.
async fn upload(
    client: &oci_client::Client,
    r: &ImageRef,
    d: &Descriptor,
    path: &PathBuf,
    c: &Counters,
) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
        }
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let sent = Arc::new(AtomicU64::new(0));
        let (bytes, sent_in) = (c.bytes.clone(), sent.clone());
        let body = stream::try_unfold(file, move |mut f| {
            let (bytes, sent) = (bytes.clone(), sent_in.clone());
            async move {
                let mut buf = vec![0u8; 1 << 20];
                let n = f.read(&mut buf).await.map_err(|e| {
                    oci_client::errors::OciDistributionError::GenericError(Some(e.to_string()))
                })?;
                if n == 0 {
                    return Ok(None);
                }
                buf.truncate(n);
                bytes.fetch_add(n as u64, Ordering::Relaxed);
                sent.fetch_add(n as u64, Ordering::Relaxed);
                Ok(Some((bytes::Bytes::from(buf), f)))
            }
        });
        match client
            .push_blob_stream(&r.to_oci(), body, &d.digest, Some(d.size))
            .await
        {
            Ok(_) => {
                c.uploaded.fetch_add(1, Ordering::Relaxed);
                c.uploaded_bytes.fetch_add(d.size, Ordering::Relaxed);
                return Ok(());
            }
            Err(e) => {
                c.bytes
                    .fetch_sub(sent.load(Ordering::Relaxed), Ordering::Relaxed);
                last = chain(&e);
                tracing::debug!(digest = %d.digest, attempt, error = %last, "upload failed");
            }
        }
    }
    Err(last)
}

async fn push_manifests(
    client: &oci_client::Client,
    t: &Target,
    registry: &str,
) -> Result<(), Error> {
    let fail = |reason: String| Error::Push {
        image: t.stored.reference.clone(),
        registry: registry.to_string(),
        reason,
    };
    let by_digest = |digest: &str| t.name.to_oci().clone_with_digest(digest.to_string());
    for (child, bytes) in &t.stored.children {
        put_manifest(
            client,
            &by_digest(&child.digest),
            bytes.clone(),
            &child.media_type,
        )
        .await
        .map_err(|e| fail(format!("manifest {}: {e}", child.digest)))?;
    }
    let d = &t.stored.descriptor;
    let top = match &t.name.tag {
        Some(tag) => oci_client::Reference::with_tag(
            t.name.registry.clone(),
            t.name.repository.clone(),
            tag.clone(),
        ),
        None => by_digest(&d.digest),
    };
    put_manifest(client, &top, t.stored.manifest.clone(), &d.media_type)
        .await
        .map_err(|e| fail(format!("manifest {}: {e}", d.digest)))?;
    // The registry must now resolve the name to exactly what we carry.
    let got = client
        .fetch_manifest_digest(&top, &Auth::Anonymous)
        .await
        .map_err(|e| {
            fail(format!(
                "the pushed manifest cannot be read back: {}",
                chain(&e)
            ))
        })?;
    if got != d.digest {
        return Err(fail(format!(
            "the registry resolves {} to {got}, not the pushed {}",
            t.name, d.digest
        )));
    }
    Ok(())
}

async fn put_manifest(
    client: &oci_client::Client,
    r: &oci_client::Reference,
    bytes: Vec<u8>,
    media_type: &str,
) -> Result<(), String> {
    let content_type = reqwest::header::HeaderValue::from_str(media_type)
        .map_err(|_| format!("the media type {media_type:?} is not a valid header"))?;
    client
        .push_manifest_raw(r, bytes, content_type)
        .await
        .map(|_| ())
        .map_err(|e| chain(&e))
}
